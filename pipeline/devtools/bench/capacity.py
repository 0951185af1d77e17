"""The capacity model: from the bench's measured per-lead figures, how many leads/s a deployment
of N worker processes per queue sustains across machines, which part saturates first, and how
fast the database grows.

Pure arithmetic over a ``bench.json`` (``python -m pipeline.devtools.bench.capacity
bench-results/bench.json`` prints it again, with other deployment sizes, without a new run):

* a stage (and the API) is CPU-bound per process: Python runs one thread at a time, so a
  threads-pool worker is one core at most (a prefork one, one core per child); a process
  sustains (1000 ms - its idle CPU per s) / (its CPU per lead - idle share) leads/s, on a core
  ``core_speed`` times this machine's. Its pool bounds it too: threads x 1000 / the stage's
  task milliseconds per lead (the ping stage waits on buyers);
* Redis is one core per instance: its commands per lead against redis-benchmark's commands per
  core-second, and against the bench redis-server's own CPU per lead (the lower counts);
* PostgreSQL: its backends' CPU per lead, and its transactions and rows per lead against
  pgbench's per core-second, over ``pg_cores`` cores (the lowest counts);
* Flower (events on) is one process for the whole deployment;
* storage: table + index + TOAST bytes per lead, by table group, times a rate.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

STAGES = ("api", "validate", "score", "ping", "award", "deliver")
# The tasks each queue runs (config/queues.py's routes), for the pool bound.
QUEUE_TASKS = {"validate": ("pingtree.validate_lead",), "score": ("pingtree.score_lead",),
               "ping": ("pingtree.ping_shard", "pingtree.walk_waterfall"),
               "award": ("pingtree.award_auction", "pingtree.close_overdue"),
               "deliver": ("pingtree.deliver_post",)}
DAY_S = 86_400
# Retention (`pingtree db prune`): the detail of a finished lead goes after PINGTREE_DETAIL_KEEP_DAYS,
# the lead, its consent and its sale after PINGTREE_RECORD_KEEP_DAYS (their defaults).
DETAIL_GROUPS = ("pings and auctions", "events", "post attempts")
DETAIL_KEEP_DAYS, RECORD_KEEP_DAYS = 30, 1827


@dataclass
class Figures:
    """What one lead costs, measured at `rate` leads/s (steady state, one process per queue)."""

    rate: float                                   # leads/s during the measuring window
    stage_cpu_ms: dict[str, float]                # CPU per lead of each process (api, each queue)
    stage_idle_ms_per_s: dict[str, float]         # CPU per second of each process with no leads
    task_ms: dict[str, float]                     # task wall milliseconds per lead, by task name
    stage_cpu_wait_ms: dict[str, float]           # per lead, each process's threads runnable, no CPU
    pools: dict[str, dict]                        # queue -> {"pool", "concurrency"}
    redis_commands: float
    redis_cpu_ms: float | None = None
    redis_idle_ms_per_s: float = 0.0
    postgres_cpu_ms: float | None = None
    postgres_idle_ms_per_s: float = 0.0
    sql_transactions: float = 0.0
    sql_rows_written: float = 0.0
    flower_cpu_ms: float | None = None
    flower_idle_ms_per_s: float = 0.0
    bytes_per_lead: dict[str, float] = field(default_factory=dict)
    redis_commands_per_core_s: float | None = None     # redis-benchmark
    pg_transactions_per_core_s: float | None = None    # pgbench
    pg_rows_per_core_s: float | None = None
    network: dict | None = None                   # {"rtt_ms", "round_trips_on_path", "direct_p50_ms"}
    task_runs: dict[str, float] = field(default_factory=dict)   # runs per lead, by task name


def marginal(cpu_ms_per_lead: float, idle_ms_per_s: float, rate: float) -> float:
    """The CPU a lead adds: the measured CPU per lead less the idle CPU spread over its leads
    (never below a tenth of the measured figure: an idle window noisier than the load's)."""
    return max(cpu_ms_per_lead - idle_ms_per_s / rate, 0.1 * cpu_ms_per_lead)


def process_rate(cpu_ms: float, idle_ms_per_s: float, rate: float, *, cores: float = 1.0,
                 core_speed: float = 1.0) -> float:
    """Leads/s one process sustains on `cores` cores `core_speed` times this machine's (no
    measurable CPU per lead: no bound)."""
    per_lead = marginal(cpu_ms, idle_ms_per_s, rate)
    if per_lead <= 0:
        return math.inf
    return max(0.0, 1000.0 * cores * core_speed - idle_ms_per_s) * 1.0 / per_lead


def pool_rate(task_ms_per_lead: float, concurrency: int) -> float:
    """Leads/s one process's pool can hold in flight: each lead keeps a slot this long."""
    return math.inf if task_ms_per_lead <= 0 else concurrency * 1000.0 / task_ms_per_lead


def stage_rates(f: Figures, core_speed: float = 1.0) -> dict[str, dict]:
    """Per process of each stage: the CPU bound, the pool bound and the lower of the two."""
    out = {}
    for stage in STAGES:
        if stage not in f.stage_cpu_ms:
            continue
        pool = f.pools.get(stage, {"pool": "threads", "concurrency": 1})
        cores = pool["concurrency"] if pool["pool"] == "prefork" else 1
        if f.task_runs and stage in QUEUE_TASKS and not any(f.task_runs.get(t) for t in QUEUE_TASKS[stage]):
            # No task of this queue ran for the leads (the award queue's only task then is
            # beat's close_overdue): its process idles beside the lead's path and bounds nothing.
            out[stage] = {"cpu_ms_per_lead": f.stage_cpu_ms[stage], "marginal_cpu_ms": 0.0, "cores": cores,
                          "cpu_bound": math.inf, "pool_bound": math.inf, "per_process": math.inf}
            continue
        cpu = process_rate(f.stage_cpu_ms[stage], f.stage_idle_ms_per_s.get(stage, 0.0), f.rate,
                           cores=cores, core_speed=core_speed)
        # A task holds its slot for its wall time, less what a busy measuring box added to it
        # (its threads waiting for a CPU), and never less than its own CPU.
        busy = sum(f.task_ms.get(t, 0.0) for t in QUEUE_TASKS.get(stage, ()))
        busy = max(busy - f.stage_cpu_wait_ms.get(stage, 0.0), f.stage_cpu_ms[stage] / core_speed)
        slots = pool_rate(busy, pool["concurrency"]) if stage != "api" else math.inf
        out[stage] = {"cpu_ms_per_lead": f.stage_cpu_ms[stage],
                      "marginal_cpu_ms": round(marginal(f.stage_cpu_ms[stage],
                                                        f.stage_idle_ms_per_s.get(stage, 0.0), f.rate), 3),
                      "cores": cores, "cpu_bound": cpu, "pool_bound": slots, "per_process": min(cpu, slots)}
    return out


def shared_rates(f: Figures, *, redis_instances: int = 1, pg_cores: int = 4,
                 core_speed: float = 1.0) -> dict[str, dict]:
    """Leads/s of the parts every worker shares, each bound with what it was derived from."""
    out: dict[str, dict] = {}
    redis: dict[str, float] = {}
    if f.redis_commands_per_core_s and f.redis_commands:
        redis["redis-benchmark"] = f.redis_commands_per_core_s * core_speed / f.redis_commands
    if f.redis_cpu_ms:
        redis["redis-server CPU"] = process_rate(f.redis_cpu_ms, f.redis_idle_ms_per_s, f.rate,
                                                 core_speed=core_speed)
    if redis:
        out["redis"] = {"units": redis_instances, "bounds": redis,
                        "rate": redis_instances * min(redis.values())}
    pg: dict[str, float] = {}
    if f.postgres_cpu_ms:
        pg["backend CPU"] = process_rate(f.postgres_cpu_ms, f.postgres_idle_ms_per_s, f.rate,
                                         core_speed=core_speed)
    if f.pg_transactions_per_core_s and f.sql_transactions:
        pg["pgbench transactions"] = f.pg_transactions_per_core_s * core_speed / f.sql_transactions
    if f.pg_rows_per_core_s and f.sql_rows_written:
        pg["pgbench rows"] = f.pg_rows_per_core_s * core_speed / f.sql_rows_written
    if pg:
        out["postgres"] = {"units": pg_cores, "bounds": pg, "rate": pg_cores * min(pg.values())}
    if f.flower_cpu_ms:
        flower = process_rate(f.flower_cpu_ms, f.flower_idle_ms_per_s, f.rate, core_speed=core_speed)
        out["flower"] = {"units": 1, "bounds": {"Flower CPU": flower}, "rate": flower}
    return out


def deployment(f: Figures, workers: int, *, api_processes: int | None = None, redis_instances: int = 1,
               pg_cores: int = 4, core_speed: float = 1.0, flower: bool = True) -> dict:
    """Leads/s of each part with `workers` processes per queue (and as many API processes unless
    told), the deployment's rate (the lowest) and the part that bounds it."""
    per = stage_rates(f, core_speed)
    parts = {stage: r["per_process"] * (api_processes or workers if stage == "api" else workers)
             for stage, r in per.items()}
    shared = shared_rates(f, redis_instances=redis_instances, pg_cores=pg_cores, core_speed=core_speed)
    parts.update({name: s["rate"] for name, s in shared.items() if flower or name != "flower"})
    bottleneck = min(parts, key=parts.__getitem__)   # inf (no measurable cost) is never it
    cores = sum(r["cores"] * (api_processes or workers if s == "api" else workers) for s, r in per.items())
    return {"workers": workers, "parts": parts, "leads_per_s": parts[bottleneck], "bottleneck": bottleneck,
            "worker_cores": cores}


def first_shared_limit(f: Figures, **kw) -> dict:
    """The smallest number of workers per queue at which a shared part (Redis, PostgreSQL,
    Flower), not the workers, bounds the deployment: adding workers past it buys nothing."""
    per = stage_rates(f, kw.get("core_speed", 1.0))
    slowest = min(per, key=lambda s: per[s]["per_process"])
    shared = shared_rates(f, **{k: v for k, v in kw.items() if k in ("redis_instances", "pg_cores",
                                                                       "core_speed")})
    if not kw.get("flower", True):
        shared.pop("flower", None)
    if not shared:
        return {}
    name = min(shared, key=lambda n: shared[n]["rate"])
    return {"part": name, "leads_per_s": shared[name]["rate"], "slowest_stage": slowest,
            "workers": math.ceil(shared[name]["rate"] / per[slowest]["per_process"])}


def storage(f: Figures, rate: float, *, detail_days: int = DETAIL_KEEP_DAYS,
            record_days: int = RECORD_KEEP_DAYS) -> dict:
    """Bytes a day at `rate` leads/s by table group, and the standing size once retention
    deletes: the detail groups kept `detail_days`, the rest (leads, consents, sales) `record_days`."""
    groups = {g: b * rate * DAY_S for g, b in f.bytes_per_lead.items() if b > 0}
    kept = {g: day * (detail_days if g in DETAIL_GROUPS else record_days) for g, day in groups.items()}
    return {"rate": rate, "bytes_per_lead": round(sum(max(0.0, b) for b in f.bytes_per_lead.values())),
            "per_day": groups, "total_per_day": sum(groups.values()), "detail_days": detail_days,
            "record_days": record_days, "standing": kept, "total_standing": sum(kept.values())}


def network_latency(f: Figures, rtts_ms=(0.1, 0.25, 0.5, 1.0)) -> list[dict]:
    """A lead's p50 with Redis and PostgreSQL one round trip of `rtt` away: the measured round
    trips on its path times the round trip, on top of the one-box p50."""
    n = f.network or {}
    if not n.get("round_trips_on_path") or n.get("direct_p50_ms") is None:
        return []
    return [{"rtt_ms": rtt, "added_ms": round(n["round_trips_on_path"] * rtt, 1),
             "p50_ms": round(n["direct_p50_ms"] + n["round_trips_on_path"] * rtt, 1)} for rtt in rtts_ms]


# -- from a bench.json ----------------------------------------------------------------------------

def available(results: dict, run: str = "events_on", buyers: str = "10") -> bool:
    cost = ((results.get("runs") or {}).get(run) or {}).get("cost") or {}
    return bool((cost.get(buyers) or {}).get("stage_cpu_ms_per_lead"))


def figures(results: dict, run: str = "events_on", buyers: str = "10") -> Figures:
    """The model's inputs from a bench run: the cost scenario at `buyers` buyers of `run`, the
    idle CPU measured before it, the calibration, and the network scenario when it ran."""
    r = results["runs"][run]
    window = r["cost"][buyers]
    # The whole hold (every lead, start to finish) where the bench measured it, else the window.
    cost = window.get("whole_hold") or {**window, "leads": window["leads_in_window"],
                                        "seconds": window["window_s"]}
    idle = r["cost"].get("idle_cpu_ms_per_s", {})
    cal = results.get("calibration") or {}
    redis_cal, pg_cal = cal.get("redis") or {}, cal.get("postgres") or {}
    net = r.get("network")
    direct = (r.get("latency") or {}).get("p50_ms")
    return Figures(
        rate=cost["leads"] / cost["seconds"],
        stage_cpu_ms={k: v for k, v in cost.get("stage_cpu_ms_per_lead", {}).items() if k in STAGES},
        stage_idle_ms_per_s=idle.get("stages", {}),
        task_ms=cost.get("task_ms_per_lead", {}),
        task_runs=cost.get("task_runs_per_lead", {}),
        stage_cpu_wait_ms=cost.get("stage_cpu_wait_ms_per_lead", {}),
        pools=results.get("pools", {}),
        redis_commands=cost["redis_commands_per_lead"],
        redis_cpu_ms=cost.get("redis_server_cpu_ms_per_lead"),
        redis_idle_ms_per_s=idle.get("redis_server") or 0.0,
        postgres_cpu_ms=cost.get("postgres_cpu_ms_per_lead"),
        postgres_idle_ms_per_s=idle.get("postgres") or 0.0,
        sql_transactions=cost.get("sql_transactions_per_lead", 0.0),
        sql_rows_written=cost.get("sql_rows_written_per_lead", 0.0),
        flower_cpu_ms=cost.get("flower_cpu_ms_per_lead") if r.get("flower") else None,
        flower_idle_ms_per_s=idle.get("flower") or 0.0,
        bytes_per_lead=window.get("bytes_per_lead", {}),
        redis_commands_per_core_s=redis_cal.get("commands_per_core_s"),
        pg_transactions_per_core_s=pg_cal.get("transactions_per_core_s"),
        pg_rows_per_core_s=pg_cal.get("rows_per_core_s"),
        network={"rtt_ms": net["rtt_ms"], "round_trips_on_path": net.get("round_trips_on_path"),
                 "direct_p50_ms": direct} if net else None)


def model(results: dict, *, workers=(1, 2, 4, 8), redis_instances: int = 1, pg_cores: int = 4,
          core_speed: float = 1.0, rate: float = 10.0, run: str = "events_on") -> dict:
    f = figures(results, run)
    kw = {"redis_instances": redis_instances, "pg_cores": pg_cores, "core_speed": core_speed}
    return {"run": run, "assumptions": {**kw, "api_processes": "as many as workers per queue"},
            "measured_at_leads_per_s": round(f.rate, 1),
            "per_process": {s: {k: _round(v) for k, v in r.items()}
                            for s, r in stage_rates(f, core_speed).items()},
            "shared": {n: {"units": s["units"], "rate": _round(s["rate"]),
                           "bounds": {k: _round(v) for k, v in s["bounds"].items()}}
                       for n, s in shared_rates(f, **kw).items()},
            "deployments": [_rounded(deployment(f, n, **kw)) for n in workers],
            "deployments_without_flower": [_rounded(deployment(f, n, flower=False, **kw)) for n in workers],
            "first_shared_limit": _rounded(first_shared_limit(f, **kw)),
            "first_shared_limit_without_flower": _rounded(first_shared_limit(f, flower=False, **kw)),
            "storage": _rounded(storage(f, rate)),
            "network": network_latency(f)}


def _round(v):
    return None if v == math.inf else round(v, 1) if isinstance(v, float) else v


def _rounded(d: dict) -> dict:
    return {k: _rounded(v) if isinstance(v, dict) else _round(v) for k, v in d.items()}


def _deployment_tables(m: dict, title: str) -> list[tuple[str, str]]:
    """The deployments as measured, and without Flower when Flower ran (else the same table)."""
    tables = [("deployments", title)]
    if "flower" in m["shared"]:
        tables.append(("deployments_without_flower", "Flower left out (the same per-lead figures)"))
    return tables


def render(m: dict) -> str:
    from pipeline.devtools.bench.report import table
    a = m["assumptions"]
    out = [f"\nCapacity model ({m['run']}; per-lead figures measured at {m['measured_at_leads_per_s']}"
           f" leads/s on this machine; cores x{a['core_speed']} this machine's)"]
    out.append(table(["process", "CPU ms/lead", "marginal ms", "cores", "leads/s by CPU", "leads/s by pool"],
                     [[s, r["cpu_ms_per_lead"], r["marginal_cpu_ms"], r["cores"], r["cpu_bound"],
                       r["pool_bound"] if r["pool_bound"] is not None else "-"]
                      for s, r in m["per_process"].items()]))
    out.append(table(["shared part", "units", "leads/s", "from"],
                     [[n, s["units"], s["rate"], ", ".join(f"{k} {v}" for k, v in s["bounds"].items())]
                      for n, s in m["shared"].items()]))
    for key, title in _deployment_tables(m, "with Flower" if "flower" in m["shared"] else "no Flower"):
        rows = m[key]
        if not rows:
            continue
        names = list(rows[0]["parts"])
        out.append(f"\nN worker processes per queue and N API processes, {title}"
                   f" (Redis x{a['redis_instances']}, PostgreSQL {a['pg_cores']} cores): leads/s")
        out.append(table(["N", *names, "leads/s", "bottleneck", "worker cores"],
                         [[d["workers"], *[d["parts"][n] for n in names], d["leads_per_s"], d["bottleneck"],
                           d["worker_cores"]] for d in rows]))
    for key, title in (("first_shared_limit", "with Flower" if "flower" in m["shared"] else ""),
                       ("first_shared_limit_without_flower", "without Flower")):
        if key.endswith("without_flower") and "flower" not in m["shared"]:
            continue
        lim = m[key]
        if lim:
            label = f"first shared limit {title}".rstrip()
            out.append(f"   {label}: {lim['part']} at {lim['leads_per_s']} leads/s,"
                       f" reached with {lim['workers']} workers per queue ({lim['slowest_stage']} the"
                       " slowest stage)")
    s = m["storage"]
    out.append(f"\nStorage at {s['rate']:g} leads/s: {s['bytes_per_lead']} bytes per lead,"
               f" {s['total_per_day'] / 1e9:.2f} GB a day; {s['total_standing'] / 1e12:.2f} TB standing"
               f" (detail kept {s['detail_days']} days, records {s['record_days']})")
    out.append(table(["table group", "bytes/lead", "GB/day", "kept days", "GB standing"],
                     [[g, round(b / (s["rate"] * DAY_S)), f"{b / 1e9:.2f}",
                       s["detail_days"] if g in DETAIL_GROUPS else s["record_days"],
                       f"{s['standing'][g] / 1e9:.0f}"] for g, b in s["per_day"].items()]))
    if m["network"]:
        out.append("\nAcross machines: p50 one at a time with Redis and PostgreSQL a round trip away")
        out.append(table(["round trip ms", "added ms", "p50 ms"],
                         [[r["rtt_ms"], r["added_ms"], r["p50_ms"]] for r in m["network"]]))
    return "\n".join(out)


def markdown(m: dict, results: dict) -> str:
    """The README's capacity tables from a model and its run (`--markdown`)."""
    window = results["runs"][m["run"]]["cost"]["10"]
    cost = window.get("whole_hold") or window
    cal = results.get("calibration") or {}
    md = lambda rows: "\n".join("| " + " | ".join("–" if c is None else str(c) for c in r) + " |"  # noqa: E731
                                for r in [rows[0], ["---"] * len(rows[0]), *rows[1:]])
    per = m["per_process"]
    run = results["runs"][m["run"]]
    setup = "events off" if not run.get("events") else \
        "events on, Flower running" if run.get("flower") else "events on, no Flower"
    leads = cost.get("leads", cost.get("leads_in_window"))
    offered = results["runs"][m["run"]]["cost"].get("offered_per_s", {})
    offered = offered.get("10", offered.get(10)) if isinstance(offered, dict) else offered
    out = [f"Per lead, over {leads} leads offered at {offered}/s, 10 buyers, {setup}:",
           "", md([["process", "CPU ms per lead", "of which idle", "leads/s per process (CPU)",
                    "leads/s per process (pool)"],
                   *[[s, r["cpu_ms_per_lead"], round(r["cpu_ms_per_lead"] - r["marginal_cpu_ms"], 2),
                      r["cpu_bound"], r["pool_bound"]] for s, r in per.items()]]), ""]
    redis, pg = cal.get("redis") or {}, cal.get("postgres") or {}
    shared = m["shared"]
    rows = [["shared part", "per lead", "one unit sustains", "leads/s per unit"]]
    if "redis" in shared:
        rows.append(["Redis (one core)", f"{cost['redis_commands_per_lead']:.1f} commands,"
                     f" {cost.get('redis_server_cpu_ms_per_lead') or 0:.1f} ms CPU",
                     f"{redis.get('commands_per_core_s')} commands/s (redis-benchmark)",
                     round(shared["redis"]["rate"] / shared["redis"]["units"], 1)])
    if "postgres" in shared:
        rows.append(["PostgreSQL (per core)", f"{cost['sql_transactions_per_lead']:.1f} transactions,"
                     f" {cost['sql_rows_written_per_lead']:.1f} rows,"
                     f" {cost.get('postgres_cpu_ms_per_lead') or 0:.1f} ms backend CPU",
                     f"{pg.get('transactions_per_core_s')} transactions/s,"
                     f" {pg.get('rows_per_core_s')} rows/s (pgbench -N)",
                     round(shared["postgres"]["rate"] / shared["postgres"]["units"], 1)])
    if "flower" in shared:
        rows.append(["Flower (one process)", f"{cost.get('flower_cpu_ms_per_lead') or 0:.1f} ms CPU",
                     "one core", shared["flower"]["rate"]])
    out += [md(rows), ""]
    for key, title in _deployment_tables(m, setup):
        names = list(m[key][0]["parts"]) if m[key] else []
        out += [f"N worker processes per queue and N API processes, {title}; one Redis,"
                f" PostgreSQL on {m['assumptions']['pg_cores']} cores; leads/s:", "",
                md([["N", *names, "deployment", "bottleneck"],
                    *[[d["workers"], *[d["parts"][n] for n in names], f"**{d['leads_per_s']}**",
                       d["bottleneck"]] for d in m[key]]]), ""]
    st = m["storage"]
    out += [f"At {st['rate']:g} leads/s (table + indexes + TOAST):", "",
            md([["table group", "bytes per lead", "GB a day", "kept (days)", "GB standing"],
                *[[g, round(b / (st["rate"] * DAY_S)), f"{b / 1e9:.2f}",
                   st["detail_days"] if g in DETAIL_GROUPS else st["record_days"],
                   f"{st['standing'][g] / 1e9:.0f}"] for g, b in st["per_day"].items()],
                ["all", st["bytes_per_lead"], f"{st['total_per_day'] / 1e9:.2f}", "",
                 f"{st['total_standing'] / 1e9:.0f}"]]), ""]
    if m["network"]:
        net = results["runs"][m["run"]]["network"]
        out += [f"Round trips on a lead's path: {net.get('round_trips_on_path')} (through a delay"
                f" proxy measured at {net['rtt_ms']} ms); what they add to a lead across machines:", "",
                md([["round trip", *[f"{r['rtt_ms']} ms" for r in m["network"]]],
                    ["added to a lead", *[f"{r['added_ms']} ms" for r in m["network"]]]]), ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.devtools.bench.capacity",
                                     description="the capacity model from a bench.json")
    parser.add_argument("bench_json", nargs="?", default="bench-results/bench.json")
    add_arguments(parser)
    parser.add_argument("--markdown", action="store_true", help="the README's tables, in Markdown")
    parser.add_argument("--run", default="events_on", choices=("events_on", "events_off"),
                        help="whose per-lead figures (events_off: `make bench`'s second run)")
    args = parser.parse_args(argv)
    results = json.loads(Path(args.bench_json).read_text())
    m = model(results, run=args.run, **options(args))
    print(markdown(m, results) if args.markdown else render(m))
    return 0


def add_arguments(parser) -> None:
    parser.add_argument("--model-workers", default="1,2,4,8", help="worker processes per queue to model")
    parser.add_argument("--model-redis-instances", type=int, default=1,
                        help="Redis instances the queues are spread over")
    parser.add_argument("--model-pg-cores", type=int, default=4, help="cores of the PostgreSQL primary")
    parser.add_argument("--model-core-speed", type=float, default=1.0,
                        help="a core's speed, this machine's = 1")
    parser.add_argument("--model-storage-rate", type=float, default=10.0,
                        help="leads/s for the storage growth")


def options(args) -> dict:
    return {"workers": tuple(int(n) for n in args.model_workers.split(",")),
            "redis_instances": args.model_redis_instances, "pg_cores": args.model_pg_cores,
            "core_speed": args.model_core_speed, "rate": args.model_storage_rate}


if __name__ == "__main__":
    raise SystemExit(main())
