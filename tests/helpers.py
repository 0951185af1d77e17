"""What tests share: leads, trees, waits (fixtures stay in conftest.py)."""
from __future__ import annotations

import contextlib
import io
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from pipeline.adapters import db, store, views
from pipeline.devtools.mockbuyers import free_port
from pipeline.domain import samples
from pipeline.domain.leads import VERTICALS
from pipeline.protocols.registry import parse_tree

# Connection option that makes a session the least-privilege application role.
APP_ROLE = "options=-c%20role%3Dpingtree_app"
# A valid buyer secret for tests (Standard Webhooks' own example: 24 bytes).
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ROOT = Path(__file__).resolve().parents[1]
# The test workers' log (one per xdist worker: each runs its own Celery worker).
_XDIST = os.environ.get("PYTEST_XDIST_WORKER", "")
WORKER_LOG = ROOT / ".pytest_cache" / ("worker-logs-" + _XDIST if _XDIST else "worker-logs") / "worker.log"
MOVING = ("received", "validated", "scored", "auctioning", "delivering")


# Where kombu's Redis transport keeps messages: one list per queue (and per priority step), and
# the messages a worker has taken but not acknowledged (running, or held until their countdown).
PRIORITY_SEP = "\x06\x16"
UNACKED = "unacked"


def still_moving() -> list[str]:
    """What still moves in the pipeline, one line each: leads in a moving status, messages queued
    on the test Redis db, messages a worker holds (running, reserved, or waiting for a countdown).
    Empty when the pipeline is quiet. Ids and task names only: no personal data."""
    leads, messages = _moving()
    return [f"lead {lead_id} {status} (unchanged for {idle_s} s)" for lead_id, status, idle_s in leads] \
        + messages


def _moving() -> tuple[list[tuple[str, str, float]], list[str]]:
    from config import queues
    from config.settings import settings
    with db.transaction() as cur:
        cur.execute("SELECT id::text, status, round(extract(epoch FROM clock_timestamp() - status_at)"
                    "::numeric, 1) AS idle_s FROM leads WHERE status = ANY(%s) ORDER BY status_at",
                    (list(MOVING),))
        leads = [(r["id"], r["status"], float(r["idle_s"])) for r in cur.fetchall()]
    client, messages = _redis(settings.redis_url), []
    for queue in queues.ALL:
        for name in (queue, *(f"{queue}{PRIORITY_SEP}{step}" for step in (3, 6, 9))):
            messages += [f"queued on {queue}: {_task_of(json.loads(raw))}"
                         for raw in client.lrange(name, 0, -1)]
    for raw in client.hvals(UNACKED):
        message, _exchange, routing_key = json.loads(raw)
        messages.append(f"taken from {routing_key}, not acknowledged: {_task_of(message)}")
    return leads, messages


def _task_of(message: dict) -> str:
    headers = message.get("headers") or {}
    eta = f" eta {headers['eta']}" if headers.get("eta") else ""
    retries = f" retry {headers['retries']}" if headers.get("retries") else ""
    return f"{headers.get('task')}{headers.get('argsrepr') or ''}{eta}{retries}"


_clients: dict = {}


def _redis(url: str):
    import redis
    if url not in _clients:
        _clients[url] = redis.Redis.from_url(url)
    return _clients[url]


def unacked_tags() -> set[str]:
    """The delivery tags of the messages workers have taken and not acknowledged."""
    from config.settings import settings
    return {tag.decode() for tag in _redis(settings.redis_url).hkeys(UNACKED)}


def redeliver(tags: set[str]) -> int:
    """What Redis does for a dead worker's messages once the visibility timeout (300 s) is over:
    put them back on their queues, now. Only ``tags`` (those a killed worker held); returns how
    many were still there."""
    from tasks.app import app
    with app.connection_for_write() as connection:
        qos = connection.default_channel.qos
        held = tags & unacked_tags()
        for tag in held:
            qos.restore_by_tag(tag)
    return len(held)


STUCK = "(no message left anywhere to move these leads: stuck)"


def wait_until_quiet(timeout: float = 30.0, leads: bool = True) -> list[str]:
    """Wait until nothing moves (seen three times in a row: a message between a worker's BRPOP
    and its unacked bookkeeping is in neither place for a moment); [] then, else what still moves
    (still_moving's lines) when ``timeout`` runs out. Leads left in a moving status with no message
    anywhere to move them are stuck, not slow: after 3 s of that the wait gives up early.
    ``leads=False``: only the messages count (a test that runs the stages itself and stops a lead
    mid-way on purpose)."""
    until = time.monotonic() + timeout
    quiet_in_a_row, stuck, stuck_since = 0, None, 0.0
    while True:
        moving, messages = _moving()
        moving = moving if leads else []
        if not moving and not messages:
            quiet_in_a_row += 1
            if quiet_in_a_row == 3:
                return []
            time.sleep(0.02)
            continue
        quiet_in_a_row = 0
        now = time.monotonic()
        unmoved = {(lead_id, status) for lead_id, status, _ in moving} if not messages else None
        if not unmoved or unmoved != stuck:
            stuck, stuck_since = unmoved, now
        elif now - stuck_since > 3:
            return [*still_moving(), STUCK]
        if now > until:
            return still_moving() if leads else messages
        time.sleep(0.05)


def settle(timeout: float = 10.0) -> bool:
    """True once the pipeline is quiet (see wait_until_quiet), False when it is not by ``timeout``."""
    return not wait_until_quiet(timeout)


def load_tree(doc: dict) -> dict:
    tree = parse_tree(json.dumps(doc), VERTICALS, allow_private=True)
    with db.transaction() as cur:
        store.load_tree(cur, tree)
    return tree


def one_taker(buyers) -> dict:
    """One buyer, `taker`, that answers at once and takes every lead at 20.00."""
    buyers.set_fleet({"defaults": {"latency_ms": 0},
                      "buyers": [{"id": "taker", "accept_rate": 1, "bid": 20.0}]})
    return load_tree(buyers.tree(tiers=[{"tier": 1, "mode": "auction"}],
                                 network={"score_floor": 0, "bid_floor": 1.0, "auction_timeout_s": 2,
                                          "max_cycles": 1, "rerun_interval_s": 300,
                                          "duplicate_window_h": 24, "stuck_after_s": 60}))


def make_lead(vertical: str = "solar", seed: int | None = None, **changes) -> dict:
    rng = random.Random(seed if seed is not None else uuid.uuid4().int)
    lead = samples.make_lead(rng, vertical, now=datetime.now(UTC))
    for path, value in changes.items():
        node = lead
        *parents, last = path.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    return lead


def wait_for(lead_id: str, statuses: tuple[str, ...], timeout: float = 20.0) -> dict:
    """Poll the lead view until the lead reaches one of ``statuses``."""
    until = time.monotonic() + timeout
    while True:
        with db.transaction() as cur:
            view = views.lead_view(cur, lead_id)
        if view and view["status"] in statuses:
            return view
        if time.monotonic() > until:
            raise AssertionError(f"lead {lead_id} is {view and view['status']}, not {statuses}")
        time.sleep(0.05)


# A network for pipeline tests: every lead is scored in, no duplicate check, quick cycles.
NETWORK = {"score_floor": 0, "bid_floor": 1.00, "auction_timeout_s": 2, "max_cycles": 2,
           "rerun_interval_s": 1, "duplicate_window_h": 0, "stuck_after_s": 60}


def fleet_of(*buyers: dict) -> dict:
    """A mock fleet of quick buyers (5 ms answers)."""
    return {"defaults": {"latency_ms": 5}, "buyers": list(buyers)}


def setup(buyers, fleet: dict, tiers=None, network=None) -> dict:
    """Serve ``fleet`` from the mock buyers and load its tree (one auction tier by default)."""
    buyers.set_fleet(fleet)
    return load_tree(buyers.tree(tiers=tiers or [{"tier": 1, "mode": "auction"}],
                                 network={**NETWORK, **(network or {})}))


class ScriptedBuyers:
    """Buyers on a local HTTP server: pings accepted at a fixed bid, posts answered from a script.

    ``add("a", 30.0, [(503, None, 0), (200, {"accepted": True}, 0.5)])``: each post takes the
    next step (status, JSON body, delay in s); the last step repeats. Every post is recorded
    with its headers and when it started and ended, to check single flight.
    """

    def __init__(self):
        import threading
        self.bids, self.scripts, self.posts, self.ping_delays = {}, {}, [], {}
        self.lock = threading.Lock()
        self.in_flight: dict[str, int] = {}
        self.most_in_flight: dict[str, int] = {}

    def add(self, buyer_id: str, bid: float, script: list[tuple], ping_delay_s: float = 0) -> None:
        self.bids[buyer_id], self.scripts[buyer_id] = bid, list(script)
        self.ping_delays[buyer_id] = ping_delay_s

    def _answer_post(self, buyer_id: str, headers) -> tuple[int, bytes, float]:
        with self.lock:
            script = self.scripts[buyer_id]
            status, body, delay = script.pop(0) if len(script) > 1 else script[0]
            self.in_flight[buyer_id] = self.in_flight.get(buyer_id, 0) + 1
            self.most_in_flight[buyer_id] = max(self.most_in_flight.get(buyer_id, 0),
                                                self.in_flight[buyer_id])
            self.posts.append({"buyer_id": buyer_id, "idempotency_key": headers.get("Idempotency-Key"),
                               "webhook_id": headers.get("webhook-id"), "status": status,
                               "at": time.monotonic()})
        return status, json.dumps(body).encode() if body is not None else b"", delay

    def start(self) -> ScriptedBuyers:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                buyer_id, kind = self.path.strip("/").split("/")
                if kind == "ping":
                    status, body, delay = 200, json.dumps(
                        {"accept": True, "bid": scripted.bids[buyer_id]}).encode(), \
                        scripted.ping_delays[buyer_id]
                    posting = False
                else:
                    status, body, delay = scripted._answer_post(buyer_id, self.headers)
                    posting = True
                try:
                    time.sleep(delay)
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass                       # the caller gave up waiting
                finally:
                    if posting:
                        with scripted.lock:
                            scripted.in_flight[buyer_id] -= 1

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass                           # a caller that hung up: expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def tree(self, network: dict, mode: str = "auction", timeout_ms: int = 2000) -> dict:
        return {"network": network, "tiers": [{"tier": 1, "mode": mode}],
                "buyers": [{"id": b, "name": b, "tier": 1, "bid": bid, "verticals": list(VERTICALS),
                            "ping_url": f"{self.url}/{b}/ping", "post_url": f"{self.url}/{b}/post",
                            "secret": SECRET, "timeout_ms": timeout_ms}
                           for b, bid in self.bids.items()]}

    def posts_to(self, buyer_id: str) -> list[dict]:
        return [p for p in self.posts if p["buyer_id"] == buyer_id]


class LocalBuyer:
    """A buyer on 127.0.0.1 whose answers a test sets byte for byte (``answers[kind]``, kind being
    the last part of the path: ping, pre_ping, post); it keeps every request's headers and body."""

    def __init__(self):
        self.answers: dict[str, bytes] = {}
        self.received: Counter = Counter()
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                kind = self.path.rsplit("/", 1)[-1]
                outer.received[kind] += 1
                outer.requests.append((kind, dict(self.headers.items()), body))
                answer = outer.answers.get(kind, b'{"accept": false}')
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def entry(self, buyer_id: str, secret: str = SECRET, **extra) -> dict:
        """Its tree entry: tier 1, solar, at this server."""
        return {"id": buyer_id, "tier": 1, "verticals": ["solar"], "secret": secret,
                "ping_url": f"{self.url}/{buyer_id}/ping", "post_url": f"{self.url}/{buyer_id}/post",
                **extra}

    def reset(self) -> None:
        self.answers.clear()
        self.received.clear()
        self.requests.clear()

    def close(self) -> None:
        self.httpd.shutdown()
class Server:
    """`python -m pipeline.entrypoints.cli serve` on a free port, with its own environment."""

    def __init__(self, log_path: Path, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.entrypoints.cli", "serve", "--addr", f"127.0.0.1:{self.port}"],
            env={**os.environ, **env}, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT)
        # Generous: a loaded box (coverage in every process) once took over 20 s to start it; an
        # exit is seen at once whatever the deadline.
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pingtree serve exited: {log_path.read_text()[-2000:]}")
            try:
                requests.get(f"{self.url}/healthz", timeout=2)
                return
            except requests.RequestException:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("pingtree serve did not answer /healthz") from None
                time.sleep(0.05)

    def post(self, body, headers: dict | None = None) -> requests.Response:
        data = body if isinstance(body, bytes | str) or hasattr(body, "__next__") \
            else json.dumps(body)
        return requests.post(f"{self.url}/v1/leads", data=data,
                             headers={"Content-Type": "application/json", **(headers or {})},
                             timeout=10)

    def get(self, path: str, headers: dict | None = None) -> requests.Response:
        return requests.get(f"{self.url}{path}", headers=headers, timeout=10, allow_redirects=False)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def cli(*args: str, stdin: str = "") -> Ran:
    """`pingtree ARGS` in this process (fast): for commands whose behaviour is the point."""
    from pipeline.entrypoints.cli import main
    out, err = io.StringIO(), io.StringIO()
    real_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:   # argparse: --help, --version, a bad argument
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        sys.stdin = real_stdin
    return Ran(code, out.getvalue(), err.getvalue())


def pingtree(*args: str, env: dict[str, str] | None = None, stdin: str | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess:
    """The real `pingtree` command in a subprocess: for what only a process shows (exit codes
    from settings, broken pipes, tracebacks that would escape)."""
    command = Path(sys.executable).parent / "pingtree"
    feed = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
    return subprocess.run([str(command), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env={**os.environ, **(env or {})}, **feed)


def task_events(task_id: str, kwargs: str = "{}", parent: str | None = None) -> list[dict]:
    """The task events a stage worker sends for one task (received, started, succeeded), as
    Flower's state (Celery's events State) takes them; ``parent``: the task that sent it."""
    base = {"hostname": "celery@validate-1", "utcoffset": 0.0, "pid": 7, "uuid": task_id,
            "local_received": 1764480000.3}
    return [{**base, "type": "task-received", "clock": 1, "timestamp": 1764480000.0,
             "name": "pingtree.validate_lead", "args": "('lead',)", "kwargs": kwargs, "retries": 0,
             "root_id": parent or task_id, "parent_id": parent},
            {**base, "type": "task-started", "clock": 2, "timestamp": 1764480000.1},
            {**base, "type": "task-succeeded", "clock": 3, "timestamp": 1764480000.2,
             "result": "None", "runtime": 0.1}]
