"""What the security review found sound, kept so: each property a user relies on, tested."""
from __future__ import annotations

import gzip
import inspect
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import yaml

from config import celeryconfig
from pipeline.adapters import transport
from pipeline.entrypoints import access
from tests.local_http import serving

ROOT = Path(__file__).resolve().parents[2]
BOMB = gzip.compress(b"\0" * (20 << 20))       # 20 MiB of zeros in ~20 KiB


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            if self.path == "/bomb":
                self.send_response(200)
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(BOMB)))
                self.end_headers()
                self.wfile.write(BOMB)
            elif self.path == "/drip":
                self.send_response(200)
                self.send_header("Content-Length", "100")
                self.end_headers()
                for _ in range(100):           # one byte every 0.1 s: 10 s in all
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.1)
        except OSError:
            pass                               # the caller hung up: what the test wants


@pytest.fixture(scope="module")
def server():
    with serving(Handler, quiet=True) as url:
        yield url


def test_a_gzip_bomb_is_never_decompressed(server):
    reply = transport.send(f"{server}/bomb", b"{}", {}, 5.0, allow_private=True)
    assert reply.failure is None and reply.body == BOMB       # the compressed bytes, as sent
    assert len(reply.body) < 65536


def test_a_slow_drip_answer_is_cut_at_the_budget(server):
    started = time.monotonic()
    reply = transport.send(f"{server}/drip", b"{}", {}, 0.5, allow_private=True)
    assert reply.failure == "timeout"
    assert time.monotonic() - started < 2.0   # not the 10 s the drip would take


def test_celery_carries_json_only():
    assert celeryconfig.accept_content == ["json"]
    assert celeryconfig.task_serializer == celeryconfig.result_serializer == "json"


def test_api_keys_are_compared_in_constant_time():
    source = inspect.getsource(access)
    assert "hmac.compare_digest" in source or "compare_digest(" in source
    assert " == token" not in source and "token ==" not in source


def test_containers_run_as_non_root_on_a_read_only_root_filesystem():
    dockerfile = (ROOT / "deploy/Dockerfile").read_text()
    user = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")][-1]
    assert user.split(":")[0] not in ("0", "root")
    for path in sorted((ROOT / "deploy/k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") not in ("Deployment", "Job"):
                continue
            pod = doc["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True, path
            for container in pod["containers"]:
                context = container["securityContext"]
                assert context["readOnlyRootFilesystem"] is True, path
                assert context["allowPrivilegeEscalation"] is False, path
