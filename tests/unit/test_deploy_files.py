"""The deploy files are safe as shipped: Redis with a password and TLS, only pingtree reaching its
stores and Flower, the API behind TLS, PostgreSQL certificates checked."""
from __future__ import annotations

from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / "k8s" / name).read_text()) if d]


def test_k8s_secret_uses_redis_tls_with_a_user_and_postgres_verify_full():
    [secret] = documents("secret.example.yaml")
    redis_url = secret["stringData"]["PINGTREE_REDIS_URL"]
    assert redis_url.startswith("rediss://pingtree:") and "ssl_cert_reqs=required" in redis_url
    assert "sslmode=verify-full" in secret["stringData"]["PINGTREE_DATABASE_URL"]
    assert "PINGTREE_SUPPRESSION_KEY" in secret["stringData"]
    [config] = documents("configmap.yaml")
    assert "PINGTREE_REDIS_URL" not in config["data"]


def test_every_k8s_process_gets_the_redis_url_from_the_secret():
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") not in ("Deployment", "Job"):
                continue
            for container in doc["spec"]["template"]["spec"]["containers"]:
                env = {e["name"]: e for e in container.get("env", [])}
                source = env["PINGTREE_REDIS_URL"]["valueFrom"]["secretKeyRef"]
                assert source["name"] == "pingtree-secrets", path


def test_network_policies_let_only_pingtree_reach_redis_postgres_and_flower():
    policies = documents("networkpolicy.yaml")
    by_name = {p["metadata"]["name"]: p for p in policies}
    assert by_name["default-deny-ingress"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    for target in ("redis", "postgres", "flower"):
        policy = next(p for p in policies if p["spec"]["podSelector"].get("matchLabels", {})
                      .get("app.kubernetes.io/name") == target)
        sources = [rule for ingress in policy["spec"]["ingress"] for rule in ingress["from"]]
        assert all("podSelector" in s or "namespaceSelector" in s for s in sources)
        assert {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "pingtree"}}} in sources


def test_the_api_is_published_through_a_tls_ingress():
    [ingress] = documents("ingress.yaml")
    assert ingress["kind"] == "Ingress" and ingress["spec"]["tls"]


def test_compose_redis_requires_a_password():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    command = " ".join(compose["services"]["redis"]["command"])
    assert "${REDIS_PASSWORD:?" in command and "default off" in command
    assert "${REDIS_PASSWORD:?" in compose["x-pingtree"]["environment"]["PINGTREE_REDIS_URL"]
