"""Every deploy file runs a worker for each queue of config/queues.py, with the same command
as deploy/Procfile and a liveness probe, so the Procfile, compose and k8s cannot drift."""
from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from config import queues, schedule
from pipeline.devtools.stack import procfile

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ALIVE = "/tmp/pingtree-worker-alive"


def worker_queue(argv: list[str]) -> str | None:
    """The queue a `celery -A tasks worker -Q <queue>` command consumes, else None."""
    if "worker" not in argv or "-Q" not in argv:
        return None
    return argv[argv.index("-Q") + 1]


def k8s_documents() -> list[dict]:
    return [doc for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_the_procfile_runs_one_worker_per_queue_a_beat_an_api_and_flower():
    entries = {name: shlex.split(command) for name, command in procfile(DEPLOY / "Procfile").items()}
    workers = {worker_queue(argv): name for name, argv in entries.items() if worker_queue(argv)}
    assert set(workers) == set(queues.ALL)
    assert {"api", "beat", "flower"} <= set(entries)
    # Every routed task and every beat job goes to a queue some worker consumes.
    assert {route["queue"] for route in queues.ROUTES.values()} <= set(queues.ALL)
    assert {entry["options"]["queue"] for entry in schedule.BEAT_SCHEDULE.values()} <= set(queues.ALL)
    assert all(entry["task"] in queues.ROUTES for entry in schedule.BEAT_SCHEDULE.values())


def test_compose_runs_the_procfile_workers_with_a_liveness_check():
    procs = {worker_queue(shlex.split(c)): c for c in procfile(DEPLOY / "Procfile").values()}
    services = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    found = {}
    for name, service in services.items():
        command = service.get("command")
        argv = shlex.split(command) if isinstance(command, str) else (command or [])
        queue = worker_queue(argv)
        if queue is None:
            continue
        found[queue] = name
        assert shlex.split(procs[queue]) == argv, name
        assert service["environment"]["PINGTREE_WORKER_ALIVE_FILE"] == ALIVE, name
        check = service["healthcheck"]
        assert not check.get("disable") and ALIVE in " ".join(check["test"]), name
    assert set(found) == set(queues.ALL)
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    assert "beat" in services and services["flower"]["environment"]["FLOWER_BASIC_AUTH"]


def test_k8s_has_a_deployment_with_a_liveness_probe_and_a_scaler_per_queue():
    procs = {worker_queue(shlex.split(c)): c for c in procfile(DEPLOY / "Procfile").values()}
    docs = k8s_documents()
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    assert config["PINGTREE_WORKER_ALIVE_FILE"] == ALIVE
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    found = {}
    for name, deployment in deployments.items():
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        queue = worker_queue(container.get("args", []))
        if queue is None:
            continue
        found[queue] = name
        assert container["args"] == shlex.split(procs[queue]), name
        probe = container["livenessProbe"]["exec"]["command"]
        assert ALIVE in " ".join(probe), name
    assert set(found) == set(queues.ALL)
    scaled = {d["spec"]["scaleTargetRef"]["name"]: d["spec"]["triggers"][0]["metadata"]["listName"]
              for d in docs if d["kind"] == "ScaledObject"}
    assert scaled == {found[q]: q for q in queues.ALL}
    # The award workers run the overdue-auction close: never scaled to zero.
    award = next(d for d in docs if d["kind"] == "ScaledObject"
                 and d["spec"]["scaleTargetRef"]["name"] == found[queues.AWARD])
    assert award["spec"]["minReplicaCount"] >= 1
    assert "--without-deadline-close" not in procs[queues.AWARD]
    [api] = deployments["api"]["spec"]["template"]["spec"]["containers"]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert "beat" in deployments and "flower" in deployments


def test_every_flower_leaves_the_workers_events_to_their_own_setting_and_keeps_10000_tasks():
    # Flower's default broadcasts enable_events to every worker each 5 s: PINGTREE_TASK_EVENTS=0
    # would be undone, and every worker handles a control message for nothing. And it keeps
    # 100,000 tasks in memory: a full garbage-collector pass over them stalls it ~0.4 s
    # (python -m tests.flower_heap), 10,000 ~60 ms.
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]["flower"]
    [k8s] = [doc for doc in k8s_documents()
             if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "flower"]
    makefile = (DEPLOY.parent / "Makefile").read_text()
    commands = [shlex.split(procfile(DEPLOY / "Procfile")["flower"]), shlex.split(compose["command"]),
                k8s["spec"]["template"]["spec"]["containers"][0]["args"],
                shlex.split(next(line for line in makefile.splitlines() if "tasks flower" in line))]
    for argv in commands:
        assert "flower" in argv and "--enable_events=False" in argv, argv
        assert "--max_tasks=10000" in argv, argv
