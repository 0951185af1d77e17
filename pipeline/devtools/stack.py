"""Run the processes of deploy/Procfile (`make up`, the demo, the benchmark, end-to-end tests)."""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
PROCFILE = ROOT / "deploy" / "Procfile"


def procfile(path: Path = PROCFILE) -> dict[str, str]:
    entries = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_-]+):\s*(.+)$", line)
        if match and not line.lstrip().startswith("#"):
            entries[match.group(1)] = match.group(2).strip()
    return entries


def _expand(command: str, env: dict[str, str]) -> list[str]:
    def sub(match):
        name, default = match.group(1), match.group(2) or ""
        return env.get(name, default)
    return shlex.split(re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", sub, command))


def _bin(name: str) -> str:
    """Prefer the executable next to this Python (the project's .venv)."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


class Stack:
    """Start named Procfile processes; stop them all (TERM, then KILL) on exit."""

    def __init__(self, names: list[str] | None = None, *, env: dict[str, str] | None = None,
                 log_dir: Path | None = None, overrides: dict[str, str] | None = None,
                 echo: bool = False):
        entries = {**procfile(), **(overrides or {})}
        self.commands = {n: entries[n] for n in (names or list(entries))}
        self.env = {**os.environ, **(env or {})}
        self.log_dir, self.echo = log_dir, echo
        self.procs: dict[str, subprocess.Popen] = {}
        self.restarts: dict[str, int] = {}
        self.started_at: dict[str, float] = {}
        self.held: set[str] = set()

    def start(self) -> Stack:
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in self.commands:
            self.spawn(name)
        return self

    def spawn(self, name: str) -> None:
        """Start (or start again) one process, appending to its log."""
        argv = _expand(self.commands[name], self.env)
        argv[0] = _bin(argv[0])
        if self.log_dir:
            out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        else:
            out = subprocess.PIPE if self.echo else subprocess.DEVNULL
        self.procs[name] = subprocess.Popen(argv, env=self.env, cwd=ROOT, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        self.started_at[name] = time.monotonic()
        if self.echo and not self.log_dir:
            threading.Thread(target=self._pump, args=(name,), daemon=True).start()

    def supervise(self, stopping: threading.Event, *, say=print, on_exit=None, poll_s: float = 0.5,
                  max_backoff_s: float = 30.0) -> None:
        """Restart any process that exits until ``stopping`` is set; one that keeps dying at
        once is restarted after a back-off doubling up to ``max_backoff_s``. Processes named
        in ``self.held`` are left down; ``on_exit(name, code)`` hears of every exit."""
        backoff = dict.fromkeys(self.commands, 0.5)
        due: dict[str, float] = {}
        while not stopping.wait(poll_s):
            now = time.monotonic()
            for name in self.dead():
                if name in self.held:
                    continue
                if name not in due:
                    if on_exit:
                        on_exit(name, self.procs[name].returncode)
                    quick = now - self.started_at.get(name, 0.0) < 60
                    backoff[name] = min(max_backoff_s, backoff[name] * 2) if quick else 1.0
                    due[name] = now + backoff[name]
                    say(f"exited: {name} (code {self.procs[name].returncode});"
                        f" restarting in {backoff[name]:.0f} s")
                elif now >= due[name]:
                    del due[name]
                    self.restarts[name] = self.restarts.get(name, 0) + 1
                    self.spawn(name)

    def _pump(self, name: str) -> None:
        for line in self.procs[name].stdout:
            sys.stdout.write(f"{name:9} | {line.decode(errors='replace')}")
            sys.stdout.flush()

    def dead(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is not None]

    def stop(self, timeout: float = 10.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        until = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, until - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_healthy(api_addr: str, stack: Stack, *, timeout_s: float = 60, logs: str = "the logs") -> None:
    """Until the API's /healthz answers 200 (PostgreSQL and Redis reachable)."""
    import requests
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if stack.dead():
            raise SystemExit(f"a process exited early: {stack.dead()} (see {logs})")
        try:
            if requests.get(f"http://{api_addr}/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the API did not come up within {timeout_s:.0f} s (see {logs})")


def add_arguments(parser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"Procfile entries to run, from: {', '.join(procfile())} (default: all)")
    parser.add_argument("--logs", metavar="DIR", type=Path,
                        help="write each process's output to DIR/NAME.log instead of this terminal")
    parser.add_argument("--embedded", action="store_true",
                        help="a single-box trial on embedded PostgreSQL and Redis, data kept in .embedded/")


def _wait_for_database(stopping: threading.Event) -> bool:
    """Say plainly that we wait for PostgreSQL, instead of starting workers that cannot work."""
    from config.settings import settings
    from pipeline.adapters import db
    told = False
    while not stopping.is_set():
        try:
            with db.transaction() as cur:
                cur.execute("SELECT 1 FROM network LIMIT 1")
            if told:
                print("PostgreSQL is up", flush=True)
            return True
        except db.DatabaseDown as exc:
            if not told:
                parts = urlsplit(settings.database_url)
                reason = (str(exc).splitlines() or ["down"])[0]
                print(f"waiting for PostgreSQL at {parts.hostname}:{parts.port or 5432}{parts.path}"
                      f" ({reason}); check PINGTREE_DATABASE_URL. Ctrl-C gives up.", flush=True)
                told = True
            db.reset_pools()
            stopping.wait(2)
        except Exception as exc:  # psycopg2's UndefinedTable: the schema is missing
            print(f"the database is not ready ({str(exc).splitlines()[0]}): run `pingtree db migrate`",
                  file=sys.stderr)
            return False
    return False


def main_from_args(args) -> int:
    known = procfile()
    unknown = [n for n in args.names if n not in known]
    if unknown:
        print(f"pingtree up: no process {', '.join(unknown)} in deploy/Procfile"
              f" (known: {', '.join(known)})", file=sys.stderr)
        return 2
    if not args.embedded:
        return _run(args.names, {}, args.logs, wait=True)
    from config.settings import settings
    from pipeline.adapters import db
    from pipeline.devtools import embedded
    try:
        choice = embedded.choose(settings.database_url, settings.redis_url, force=True, persist=True)
    except embedded.Unavailable as exc:
        raise SystemExit(f"pingtree up: {exc}") from exc
    try:
        print(choice.line("pingtree up"), flush=True)
        applied = db.migrate(choice.database_url)
        print(f"migrated: {', '.join(applied)}" if applied else "database is up to date")
        folder = choice.servers.folder
        print(f"data stays in {folder} between runs (rm -rf it to start afresh); other commands:"
              f"\n  export PINGTREE_DATABASE_URL='{choice.database_url}'"
              f" PINGTREE_REDIS_URL='{choice.redis_url}'", flush=True)
        return _run(args.names, {"PINGTREE_DATABASE_URL": choice.database_url,
                                 "PINGTREE_REDIS_URL": choice.redis_url},
                    args.logs, wait=False)
    finally:
        choice.stop()


def _run(names: list[str], env: dict[str, str], logs: Path | None, wait: bool) -> int:
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    if wait and not _wait_for_database(stopping):
        return 1
    stack = Stack(names or None, env=env, echo=True, log_dir=logs)
    with stack:
        where = f"logs in {logs}/" if logs else "their output below"
        print(f"running: {', '.join(stack.commands)}; {where}. Ctrl-C stops all; a process that"
              " exits is restarted. Run the next commands (submit, lead, report) in another terminal.",
              flush=True)
        stack.supervise(stopping, say=lambda text: print(text, flush=True))
    return 0
