"""The simulated fleet in a subprocess, driven over HTTP: for tests, the demo and the benchmark."""
from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Self

import requests

from pipeline.devtools.mockbuyers.fleet import BadFleet, buyers_from, tree_for_fleet

# Ports handed out below the kernel's ephemeral range (32768-60999 by default): a port the kernel
# chose for bind(0) is free only until the caller binds it, and meanwhile any outgoing connection
# (a worker's to Redis or PostgreSQL) or the next bind(0) may be given the same number: the
# bench's API once failed to start so ("Address already in use"). Below the range only another
# bind to that very port can take it, and this process never hands the same port out twice.
_PORTS = range(20000, 32000)
_given: set[int] = set()
_choose = random.SystemRandom().choice    # not the seedable module generator: tests seed that


def free_port(host: str = "127.0.0.1") -> int:
    for _ in range(200):
        port = _choose(_PORTS)
        if port in _given:
            continue
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _given.add(port)
        return port
    with socket.socket() as sock:            # the range is crowded: let the kernel choose
        sock.bind((host, 0))
        return sock.getsockname()[1]


class MockBuyersProcess:
    """``python -m pipeline.devtools.mockbuyers`` in a subprocess, driven over HTTP.

    with MockBuyersProcess(fleet, seed=1) as buyers:
        tree = buyers.tree()
        ...
        assert buyers.stats()["buyers"]["buyer-01"]["pii_violations"] == 0
    """

    def __init__(self, fleet: dict, *, seed: int | None = None, host: str = "127.0.0.1",
                 port: int | None = None, startup_timeout_s: float = 60.0) -> None:
        buyers_from(fleet)
        self.fleet = fleet
        self.seed = seed
        self.host = host
        self.port = port
        self.startup_timeout_s = startup_timeout_s
        self.url = ""
        self._popen: subprocess.Popen | None = None
        self._config_path: str | None = None
        self._http = requests.Session()

    def start(self) -> Self:
        self.port = self.port or free_port(self.host)
        self.url = f"http://{self.host}:{self.port}"
        fd, self._config_path = tempfile.mkstemp(prefix="pingtree-fleet-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(self.fleet, f)
        command = [sys.executable, "-m", "pipeline.devtools.mockbuyers", "--config", self._config_path,
                   "--host", self.host, "--port", str(self.port)]
        if self.seed is not None:
            command += ["--seed", str(self.seed)]
        # Run from the project root so ``-m pipeline...`` works without an install.
        root = str(Path(__file__).resolve().parents[3])
        env = {**os.environ,
               "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        self._popen = subprocess.Popen(command, cwd=root, env=env, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            if self._popen.poll() is not None:
                self._cleanup()
                raise RuntimeError(f"mock-buyers exited with {self._popen.returncode}")
            try:
                self._http.get(f"{self.url}/_stats", timeout=0.5).raise_for_status()
                return self
            except requests.RequestException:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"mock-buyers did not answer on {self.url}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._popen is not None and self._popen.poll() is None:
            self._popen.terminate()
            try:
                self._popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        self._http.close()
        if self._config_path:
            Path(self._config_path).unlink(missing_ok=True)
            self._config_path = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _get(self, path: str, **params: str) -> Any:
        response = self._http.get(f"{self.url}{path}", params=params or None, timeout=5)
        response.raise_for_status()
        return response.json()

    def stats(self, buyer_id: str | None = None) -> dict:
        """All counters ({"buyers": {id: {...}}, "total": {...}}), or one buyer's."""
        stats = self._get("/_stats")
        return stats if buyer_id is None else stats["buyers"][buyer_id]

    def posts(self, lead_id: str | None = None) -> list[dict]:
        return self._get("/_posts", **({"lead_id": lead_id} if lead_id else {}))

    def pings(self, lead_id: str) -> list[dict]:
        return self._get("/_pings", lead_id=lead_id)

    def set_fleet(self, fleet: dict) -> None:
        response = self._http.put(f"{self.url}/_fleet", json=fleet, timeout=5)
        if response.status_code == 400:
            raise BadFleet(response.json()["error"])
        response.raise_for_status()
        self.fleet = fleet

    def reset(self) -> None:
        self._http.post(f"{self.url}/_reset", timeout=5).raise_for_status()

    def tree(self, **kwargs: Any) -> dict:
        """The tree file (docs/tree.md) for the current fleet at this server (see tree_for_fleet)."""
        return tree_for_fleet(self.fleet, self.url, **kwargs)
