"""What the API process (`pingtree serve`: waitress, the Flask app, the gate, intake, the insert
and the validate nudge) spends on an accepted lead. Not a test (timings stay out of `make test`):

    PINGTREE_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/api_scratch \\
    PINGTREE_REDIS_URL=redis://127.0.0.1:6392/5 .venv/bin/python -m tests.api_cost instructions
    ... .venv/bin/python -m tests.api_cost profile

The API is the real one, started as `pingtree serve` starts it (the Celery nudge sender, then
``http.serve``: waitress, 16 threads), in a process of its own; this process sends it valid
leads (`samples.make_lead`, made before it starts) over real HTTP, one at a time on one
keep-alive connection, as the bench's one-at-a-time client does, and checks each is a 202.
The database named is dropped and migrated fresh for every run and the Redis db named is
flushed (the validate messages pile up in it: no worker takes them).

`instructions`: the API under callgrind takes --warm leads, then N1 (and, in a second run, N2)
more, and is stopped (SIGTERM: waitress closes, the process exits); (I(N2) - I(N1)) / (N2 - N1)
is a request's instruction count, start-up, warm-up and shut-down excluded. Every thread of the
process is counted: waitress's event loop that reads the request and writes the answer, and the
worker thread that runs the app.
`profile`: cProfile over the app's WSGI call (the worker thread's part: the gate, parsing,
intake, the insert, the nudge; waitress's loop is not in it), the top --top functions by
cumulative and by own time.

--auth says who calls: `open` (no key anywhere, PINGTREE_DEV=1: the bench's set-up; the gate
asks PostgreSQL whether a publisher key exists at most once a second), `operator` (an operator
key from PINGTREE_API_KEYS: the rate-limit script in Redis) or `publisher` (a publisher's key,
as a form backend calls in production: the rate-limit script and the key's look-up).
--idempotency sends each lead with an Idempotency-Key of its own; --livez sends GET /livez instead
of leads (what a request costs waitress and Flask alone, for comparison).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPERATOR_KEY = "api-cost-operator-key"
PUBLISHER = "pub-cost"


# -- the API's process -------------------------------------------------------------------------

def _serve_child(addr: str, profile_out: str | None) -> None:
    """`pingtree serve`, stopped by SIGTERM; with ``profile_out``, the app's calls profiled."""
    from pipeline.entrypoints import http, wiring

    def stop(*_):
        raise KeyboardInterrupt          # waitress's loop closes its server on it and returns
    signal.signal(signal.SIGTERM, stop)
    wiring.install_nudge_sender()
    profiler = None
    if profile_out:
        import cProfile
        profiler = cProfile.Profile(time.thread_time)   # CPU, not waits on PostgreSQL or Redis
        made = http.create_app

        def create_app():
            app = made()
            inner = app.wsgi_app

            def profiled(environ, start_response):
                # One request at a time (one client connection): one profiler, enabled in
                # whichever of waitress's threads runs this request.
                if not _measuring:
                    return inner(environ, start_response)
                profiler.enable()
                try:
                    return inner(environ, start_response)
                finally:
                    profiler.disable()
            app.wsgi_app = profiled
            return app
        http.create_app = create_app
    try:
        http.serve(addr)
    finally:
        if profiler is not None:
            profiler.dump_stats(profile_out)


# -- this process: the client ------------------------------------------------------------------

def _listening(port: int) -> bool:
    """Whether a socket listens on ``port`` (read from /proc: no connection to the API, which
    would cost it work that differs from run to run)."""
    wanted = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = [line.split() for line in open(table).read().splitlines()[1:]]
        except OSError:
            continue
        if any(row[1].endswith(wanted) and row[3] == "0A" for row in rows):   # 0A: LISTEN
            return True
    return False


def _env(auth: str, port: int) -> dict[str, str]:
    env = {**os.environ, "PINGTREE_HTTP_ADDR": f"127.0.0.1:{port}", "PINGTREE_LOG_LEVEL": "WARNING",
           "PINGTREE_ALLOW_PRIVATE_BUYERS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    env.pop("PINGTREE_API_KEYS", None)
    if auth == "open":
        env["PINGTREE_DEV"] = "1"
    else:
        env.setdefault("PINGTREE_SUPPRESSION_KEY", "api-cost-key-not-secret")
        env["PINGTREE_DEV"] = "0"
        env["PINGTREE_API_KEYS"] = OPERATOR_KEY
    return env


def _fresh(auth: str) -> str | None:
    """A fresh database and Redis db; the publisher key to send with (None: none)."""
    import redis

    from config.settings import settings
    from pipeline.adapters import db, publishers
    redis.Redis.from_url(settings.redis_url).flushdb()
    db.drop_database(settings.database_url)
    db.migrate(settings.database_url)
    if auth == "operator":
        return OPERATOR_KEY
    if auth == "publisher":
        with db.transaction() as cur:
            publishers.save(cur, publishers.Publisher(PUBLISHER, "Cost", True, (), "fixed", 500, None))
            return publishers.issue_key(cur, PUBLISHER)
    return None


def _bodies(count: int, seed: int) -> list[bytes]:
    from pipeline.domain import samples
    rng = random.Random(seed)
    now = datetime.now(UTC)
    leads = [samples.make_lead(rng, now=now) for _ in range(count)]
    for lead in leads:
        lead["source"]["publisher_id"] = PUBLISHER      # a publisher's key may send only its own
    return [json.dumps(lead).encode() for lead in leads]


def _send(port: int, bodies: list[bytes], key: str | None, idempotency: bool) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    for body in bodies:
        if body is None:                    # --livez: the server's and Flask's part alone
            connection.request("GET", "/livez")
            answer = connection.getresponse()
            answer.read()
            continue
        if idempotency:
            headers["Idempotency-Key"] = str(uuid.uuid4())
        connection.request("POST", "/v1/leads", body=body, headers=headers)
        answer = connection.getresponse()
        text = answer.read()
        if answer.status != 202:
            raise SystemExit(f"the API answered {answer.status}: {text[:300]!r}")
    connection.close()


def _run(count: int, args, wrapper: list[str], profile_out: str | None = None) -> None:
    from pipeline.devtools.mockbuyers.process import free_port
    key = _fresh(args.auth)
    bodies = [None] * (args.warm + count) if args.livez else _bodies(args.warm + count, args.seed)
    port = free_port()
    argv = [*wrapper, sys.executable, "-m", "tests.api_cost", "_serve", f"127.0.0.1:{port}"]
    if profile_out:
        argv.append(profile_out)
    api = subprocess.Popen(argv, env=_env(args.auth, port), cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=None if args.verbose else subprocess.DEVNULL)
    try:
        until = time.monotonic() + 600
        while not _listening(port):
            if api.poll() is not None:
                raise SystemExit(f"the API exited ({api.returncode}) before it listened")
            if time.monotonic() > until:
                raise SystemExit("the API did not listen within 600 s")
            time.sleep(0.2)
        _send(port, bodies[:args.warm], key, args.idempotency)
        if profile_out:
            # The profile is the measured leads': the warm-up's are left out.
            os.kill(api.pid, signal.SIGUSR1)
            time.sleep(0.5)
        _send(port, bodies[args.warm:], key, args.idempotency)
    finally:
        api.send_signal(signal.SIGTERM)
        api.wait(600)


def instructions(args) -> float:
    totals = []
    for count in args.counts:
        with tempfile.NamedTemporaryFile(suffix=".callgrind") as out:
            _run(count, args, ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}"])
            total = next(int(line.split()[1]) for line in open(out.name) if line.startswith("totals:"))
        totals.append(total)
        print(f"  {args.auth} {count} leads: {total / 1e6:.1f} M instructions", flush=True)
    return (totals[1] - totals[0]) / (args.counts[1] - args.counts[0])


def profile(args) -> None:
    import pstats
    with tempfile.NamedTemporaryFile(suffix=".prof") as out:
        _run(args.leads, args, [], profile_out=out.name)
        stats = pstats.Stats(out.name)
        stats.sort_stats("cumulative").print_stats(args.top)
        stats.sort_stats("tottime").print_stats(args.top)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        profile_out = sys.argv[3] if len(sys.argv) > 3 else None
        if profile_out:
            _profile_after_warm_up()
        _serve_child(sys.argv[2], profile_out)
        return
    parser = argparse.ArgumentParser(prog="python -m tests.api_cost")
    parser.add_argument("mode", choices=("instructions", "profile"))
    parser.add_argument("--counts", type=int, nargs=2, default=(50, 250))
    parser.add_argument("--leads", type=int, default=500, help="profile: leads profiled")
    parser.add_argument("--warm", type=int, default=20)
    parser.add_argument("--auth", choices=("open", "operator", "publisher"), default="open")
    parser.add_argument("--idempotency", action="store_true")
    parser.add_argument("--livez", action="store_true",
                        help="GET /livez instead of leads: waitress's and Flask's part of a request")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--verbose", action="store_true", help="the API's stderr")
    args = parser.parse_args()
    if args.mode == "instructions":
        per_lead = instructions(args)
        print(f"{args.auth}: {per_lead / 1e6:.3f} M instructions a lead (API process, all threads)")
    else:
        profile(args)


_measuring = False


def _profile_after_warm_up() -> None:
    """In the profiled API: the profile counts from SIGUSR1 on (the warm-up's leads left out)."""
    def measure(*_):
        global _measuring
        _measuring = True
    signal.signal(signal.SIGUSR1, measure)


if __name__ == "__main__":
    main()
