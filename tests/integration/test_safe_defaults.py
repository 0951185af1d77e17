"""What a production install gets by default: the SSRF guard on, no API without keys, no open ports."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from pipeline.devtools.mockbuyers import free_port

ROOT = Path(__file__).resolve().parents[2]


def recipes_env(target: str, tmp_path: Path) -> list[str]:
    """Run ``make TARGET`` with a shell that only records the guard flag each recipe line sees."""
    shell = tmp_path / "shell"
    log = tmp_path / "seen"
    shell.write_text(f'#!/bin/sh\necho "${{PINGTREE_ALLOW_PRIVATE_BUYERS:-unset}}" >> {log}\n')
    shell.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PINGTREE_ALLOW_PRIVATE_BUYERS"}
    subprocess.run(["make", "-B", f"SHELL={shell}", target], cwd=ROOT, env=env, capture_output=True,
                   timeout=60, check=True)
    return log.read_text().split()


def test_make_up_keeps_the_ssrf_guard_on_and_only_demo_test_bench_turn_it_off(tmp_path):
    assert set(recipes_env("up", tmp_path)) == {"unset"}
    (tmp_path / "seen").unlink()
    assert "1" in recipes_env("demo", tmp_path)


def test_readme_using_it_does_not_turn_the_guard_off():
    readme = (ROOT / "README.md").read_text()
    using = readme.split("## Using it", 1)[1].split("\n## ", 1)[0]
    commands = "".join(block.split("\n", 1)[1] for block in using.split("```")[1::2])
    assert "PINGTREE_ALLOW_PRIVATE_BUYERS" not in commands and "PINGTREE_DEV" not in commands


def serve(env: dict) -> subprocess.Popen:
    base = {k: v for k, v in os.environ.items() if k not in ("PINGTREE_API_KEYS", "PINGTREE_DEV")}
    return subprocess.Popen([sys.executable, "-m", "pipeline.entrypoints.cli", "serve"],
                            env={**base, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_the_api_refuses_to_start_without_api_keys(database):
    process = serve({"PINGTREE_HTTP_ADDR": f"127.0.0.1:{free_port()}"})
    try:
        code = process.wait(timeout=30)
    finally:
        process.kill()
    assert code != 0
    assert "PINGTREE_API_KEYS" in process.stderr.read()


@pytest.mark.parametrize("env", [{"PINGTREE_DEV": "1"}, {"PINGTREE_API_KEYS": "k1"}])
def test_the_api_starts_with_keys_or_the_development_flag(database, env):
    port = free_port()
    process = serve({**env, "PINGTREE_HTTP_ADDR": f"127.0.0.1:{port}"})
    try:
        until = time.monotonic() + 30
        while time.monotonic() < until:
            assert process.poll() is None, process.stderr.read()
            try:
                if requests.get(f"http://127.0.0.1:{port}/livez", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        else:
            raise AssertionError("the API did not start")
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_docker_compose_binds_localhost_and_requires_secrets():
    compose = yaml.safe_load((ROOT / "deploy/docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
    text = (ROOT / "deploy/docker-compose.yml").read_text()
    assert "${POSTGRES_PASSWORD:?" in text and "POSTGRES_PASSWORD:-" not in text
    assert "egress" not in compose["services"]["api"].get("networks", [])
