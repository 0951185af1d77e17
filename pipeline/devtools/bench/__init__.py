"""The benchmark (`pingtree bench`, `make bench`): latency, throughput, deadline, scaling, cost.

Everything runs on this machine: a private redis-server (so INFO commandstats counts only us;
``--redis-url`` reuses another), a fresh ``pingtree_bench`` database, the mock buyer fleet, the
API and one worker per queue as ``deploy/Procfile`` runs them (plus Flower, as operators run
it). Leads go in through ``POST /v1/leads``; a lead's latency is submit -> post received by the
buyer (the mock server's ``received_at``). The floor (``pipeline.devtools.benchfloor``: one process on
the same HTTP engine, no broker, no database) runs against the same buyers and every figure is also given
as a ratio to it. Results: a table per scenario on stdout, ``bench.json`` (and ``latency.png``
when matplotlib is installed) in ``--out``.
"""
from __future__ import annotations

import json
from pathlib import Path

from pipeline.devtools.bench import protocols
from pipeline.devtools.bench.measure import pct
from pipeline.devtools.bench.report import NOISE, RAMP_STEP_NOISE, against_baseline, plot, report
from pipeline.devtools.bench.scenarios import Bench
from pipeline.devtools.bench.system import BENCH_DB, SCENARIOS
from pipeline.devtools.stack import ROOT

BASELINE = ROOT / "bench-results" / "baseline.json"

__all__ = ["add_arguments", "main", "main_from_args", "pct"]


def add_arguments(parser) -> None:
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated, from {','.join(SCENARIOS)} (default: all)")
    parser.add_argument("--smoke", action="store_true",
                        help="a handful of leads per scenario, a few seconds each (make test)")
    parser.add_argument("--out", default="bench-results", help="directory for bench.json, latency.png")
    parser.add_argument("--leads", type=int, help="leads in the one-at-a-time latency run (200)")
    parser.add_argument("--duration", type=float,
                        help="seconds each load is held in throughput, scaling and cost (8)")
    parser.add_argument("--database-url", default=BENCH_DB,
                        help="dropped and migrated fresh (default: %(default)s)")
    parser.add_argument("--redis-url",
                        help="reuse this Redis (flushed!) instead of starting a private redis-server")
    parser.add_argument("--no-flower", action="store_true", help="do not run Flower in the events-on run")
    parser.add_argument("--no-events-off", action="store_true",
                        help="skip the second run with Celery task events off")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy record each worker during the 10-buyer throughput hold")
    parser.add_argument("--network-rtt-ms", type=float, default=1.0,
                        help="the round trip the network scenario adds to Redis and PostgreSQL")
    parser.add_argument("--baseline", default=str(BASELINE),
                        help="compare every summary figure with this earlier bench.json")
    parser.add_argument("--save-baseline", action="store_true",
                        help="write this run's results as the new baseline")
    parser.add_argument("--capacity", action="store_true",
                        help="only what the capacity model needs (latency, cost at 10 buyers, network,"
                             " the Redis and PostgreSQL calibration), then the model")
    from pipeline.devtools.bench import capacity  # not at the top: `python -m` runs it as a script
    capacity.add_arguments(parser)
    parser.add_argument("--protocols-only", action="store_true",
                        help="only the CPU per ping of each buyer protocol (native vs integrations)")



def main_from_args(args) -> int:
    import signal
    # A TERM (e.g. from `timeout`) unwinds like Ctrl-C, so every started process is stopped.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    if args.protocols_only:
        print(protocols.report(protocols.measure(500 if args.smoke else 2000)))
        return 0
    from pipeline.devtools.bench import capacity
    bench = Bench(args)
    results = bench.run()
    out = Path(args.out)
    (out / "bench.json").write_text(json.dumps(results, indent=2, default=str))
    print(report(results))
    if capacity.available(results):
        results["capacity"] = capacity.model(results, **capacity.options(args))
        print(capacity.render(results["capacity"]))
        if capacity.available(results, "events_off"):     # the same model from the events-off run
            results["capacity_events_off"] = capacity.model(results, run="events_off",
                                                            **capacity.options(args))
            print(capacity.render(results["capacity_events_off"]))
        (out / "bench.json").write_text(json.dumps(results, indent=2, default=str))
    baseline = Path(args.baseline)
    if baseline.exists():
        text, worse = against_baseline(results, json.loads(baseline.read_text()))
        print(f"\nAgainst the baseline ({baseline}; changes within ±{NOISE:.0%} are noise,"
              f" ±{RAMP_STEP_NOISE:.0%} for a sustained rate, one step of its ramp):\n{text}")
        if worse:
            print("worse than the baseline: " + "; ".join(worse))
    if args.save_baseline:
        baseline.write_text(json.dumps(results, indent=2, default=str))
        print(f"saved as the baseline: {baseline}")
    drew = plot(results, out / "latency.png")
    print(f"\nwrote {out / 'bench.json'}{' and ' + str(out / 'latency.png') if drew else ''}"
          f" in {results['elapsed_s']} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="pingtree bench", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return main_from_args(parser.parse_args(argv))
