"""The bench's report: a table per scenario with every figure as a ratio to the floor, and a plot."""
from __future__ import annotations

import statistics
from pathlib import Path

from pipeline.devtools.bench import protocols
from pipeline.devtools.bench.system import TARGETS


def ratio(ours, floor):
    return round(ours / floor, 1) if ours is not None and floor else None


def summary(results: dict) -> list[dict]:
    """Each target against the measured figure (events on, Flower running; events off beside)."""
    rows = []
    floor = results.get("floor", {})
    for label, run in results["runs"].items():
        lat, thr, cost = run.get("latency", {}), run.get("throughput", {}), run.get("cost", {})
        dl = run.get("deadline", {})
        c10 = cost.get("10", {}) or (thr.get("10", {}) or {}).get("cost", {})
        checks = [
            ("p50 one at a time, 10 buyers (ms)", lat.get("p50_ms"), "<=", TARGETS["p50_ms"],
             floor.get("latency_10", {}).get("p50_ms")),
            ("p99 one at a time, 10 buyers (ms)", lat.get("p99_ms"), "<=", TARGETS["p99_ms"],
             floor.get("latency_10", {}).get("p99_ms")),
            ("sustained leads/s, 10 buyers", (thr.get("10") or {}).get("leads_per_s"), ">=",
             TARGETS["leads_per_s"].get(label, TARGETS["leads_per_s"]["events_off"]),
             floor.get("throughput_10", {}).get("leads_per_s")),
            ("CPU ms per lead, 10 buyers", c10.get("cpu_ms_per_lead"), "<=", TARGETS["cpu_ms_per_lead"],
             floor.get("throughput_10", {}).get("cpu_ms_per_lead")),
            ("CPU ms per lead, PostgreSQL, 10 buyers", c10.get("postgres_cpu_ms_per_lead"), "<=",
             TARGETS["postgres_cpu_ms_per_lead"], None),
            ("CPU ms per lead, Flower, 10 buyers",
             c10.get("flower_cpu_ms_per_lead") if run.get("flower") else None, "<=",
             TARGETS["flower_cpu_ms_per_lead"], None),
            ("CPU ms per extra buyer", cost.get("cpu_ms_per_extra_buyer"), "<=",
             TARGETS["cpu_ms_per_extra_buyer"], None),
            ("hanging buyer: close after deadline (ms)", dl.get("max_close_after_deadline_ms"), "<=",
             TARGETS["deadline_overrun_ms"], None),
        ]
        for name, value, op, target, fl in checks:
            if value is None:
                continue
            ok = value <= target if op == "<=" else value >= target
            rows.append({"run": label, "metric": name, "target": f"{op} {target}", "measured": value,
                         "floor": fl, "x_floor": ratio(value, fl) if op == "<=" else ratio(fl, value),
                         "met": ok})
    return rows


# Run-to-run noise on one shared box: a change inside this band is not called better or worse.
NOISE = 0.20
# The sustained rate is read off a ramp (0.8x the last step kept up with, steps 1.25-1.3x
# apart): one step up or down is the reading's resolution, not a change.
RAMP_STEP_NOISE = 0.30


def _speedup(results: dict, baseline: dict, parts: tuple[str, ...]) -> float | None:
    """How many times faster this run's machine is than the baseline's, by its calibrated cores
    (`parts`: a PostgreSQL core by pgbench, a Redis core by redis-benchmark; the geometric mean of
    those both runs have). None without a calibration in both."""
    fields = {"postgres": "transactions_per_core_s", "redis": "commands_per_core_s"}
    ratios = []
    for part in parts:
        now = (results.get("calibration", {}).get(part) or {}).get(fields[part])
        old = (baseline.get("calibration", {}).get(part) or {}).get(fields[part])
        if now and old:
            ratios.append(now / old)
    return statistics.geometric_mean(ratios) if ratios else None


def _for_speed(now: dict, old: dict, results: dict, baseline: dict) -> tuple[float | None, str]:
    """A figure's change with the machine's speed taken out, and by what. This box's speed moves
    by up to 2x from day to day, and both calibrations move together (a slow day read 1.66x
    slower on pgbench and on redis-benchmark alike), so:

    * CPU a lead (pingtree's, Flower's, an extra buyer's) and the sustained rate scale with a
      core's speed (both calibrations); PostgreSQL's CPU with a PostgreSQL core's (pgbench);
    * a latency is the floor's (the buyers' own answering and the HTTP exchange, which moved by
      only 1.15x on that day) plus pingtree's own work above it, which scales with a core's
      speed: the part above the floor is scaled, the baseline's floor put under it;
    * without a calibration, a figure with a floor is judged by its ratio to the floor measured
      in the same run; anything else (the deadline close: timers) by its raw change."""
    metric = now["metric"]
    speedup = _speedup(results, baseline, ("postgres",) if "PostgreSQL" in metric
                       else ("postgres", "redis"))
    by = "pgbench" if "PostgreSQL" in metric else "cores"
    if speedup is None:
        if now.get("floor") and old.get("floor"):
            return (now["measured"] / now["floor"]) / (old["measured"] / old["floor"]) - 1, "floor"
        return None, ""
    if now["target"].startswith(">="):                    # a rate: a faster core carries more
        return now["measured"] / speedup / old["measured"] - 1, by
    if "CPU" in metric:                                    # a faster core spends less a lead
        return now["measured"] * speedup / old["measured"] - 1, by
    if now.get("floor") and old.get("floor"):              # a latency over its floor
        ours = max(now["measured"] - now["floor"], 0.0) * speedup
        return (old["floor"] + ours) / old["measured"] - 1, "cores, over the floor"
    return None, ""


def against_baseline(results: dict, baseline: dict) -> tuple[str, list[str]]:
    """A table of each summary figure now against the committed baseline, and the figures that
    got worse by more than the noise band (lower is better for times and CPU, higher for rates).

    Each change is also shown with the machine's speed taken out (_for_speed), and that change,
    where there is one, is the verdict: a slow day is not a regression, a fast one hides none."""
    before = {(r["run"], r["metric"]): r for r in baseline.get("summary", [])}
    rows, worse = [], []
    for now in results.get("summary", []):
        old = before.get((now["run"], now["metric"]))
        if old is None or not old["measured"] or not now["measured"]:
            continue
        change = (now["measured"] - old["measured"]) / old["measured"]
        higher_is_better = now["target"].startswith(">=")
        adjusted, by = _for_speed(now, old, results, baseline)
        judged = change if adjusted is None else adjusted
        worse_by = -judged if higher_is_better else judged
        noise = RAMP_STEP_NOISE if higher_is_better else NOISE
        regressed = worse_by > noise
        verdict = "WORSE" if regressed else "better" if worse_by < -noise else "same"
        if regressed:
            worse.append(f"{now['run']}: {now['metric']}")
        rows.append([now["run"], now["metric"], old["measured"], now["measured"], f"{change:+.0%}",
                     "" if adjusted is None else f"{adjusted:+.0%} ({by})", verdict])
    text = table(["run", "metric", "baseline", "now", "change", "for the machine's speed", ""], rows) \
        if rows else ""
    return text, worse


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def report(results: dict) -> str:
    out = []
    if results.get("protocols"):
        out.append("\nBuyer protocols: CPU per ping (request built, accepting answer read), no network")
        out.append(protocols.report(results["protocols"]))
    floor = results.get("floor", {})
    if floor:
        out.append("\nFloor: one process, same buyers and HTTP engine, no broker, no database")
        out.append(table(["run", "buyers", "leads", "leads/s", "p50 ms", "p99 ms", "CPU ms/lead"],
                         [[k, v["buyers"], v["leads"], v["leads_per_s"] if v["mode"] != "latency" else "",
                           v["p50_ms"], v["p99_ms"], v["cpu_ms_per_lead"]] for k, v in floor.items()]))
    f_lat = floor.get("latency_10", {})
    for label, run in results["runs"].items():
        out.append(f"\n##### {label} (Flower {'running' if run['flower'] else 'off'})")
        if "latency" in run:
            lat = run["latency"]
            out.append(f"\n1. latency, one lead at a time, 10 buyers ({lat['measured']} leads, "
                       f"{lat['sold']} sold): submit -> post received by the buyer")
            out.append(table(["", "p50 ms", "p95 ms", "p99 ms", "max ms"],
                             [["pingtree", lat["p50_ms"], lat["p95_ms"], lat["p99_ms"], lat["max_ms"]],
                              ["floor", f_lat.get("p50_ms"), f_lat.get("p95_ms"), f_lat.get("p99_ms"), ""],
                              ["x floor", ratio(lat["p50_ms"], f_lat.get("p50_ms")),
                               ratio(lat["p95_ms"], f_lat.get("p95_ms")),
                               ratio(lat["p99_ms"], f_lat.get("p99_ms")), ""]]))
            out.append("   where the time goes (from lead_events):")
            out.append(table(["stage", "p50 ms", "mean ms", "p99 ms"],
                             [[k, v["p50_ms"], v["mean_ms"], v["p99_ms"]] for k, v in lat["stages"].items()]))
        if "throughput" in run:
            out.append("\n2. throughput: offered just below saturation")
            rows = []
            for n, r in run["throughput"].items():
                fl = floor.get(f"throughput_{n}", {})
                rows.append([n, (r.get("probe") or {}).get("capacity_per_s"), r["offered_per_s"],
                             r["leads_per_s"], fl.get("leads_per_s"), ratio(fl.get("leads_per_s"),
                                                                            r["leads_per_s"]),
                             r["p50_ms"], r["p99_ms"], r["cost"].get("cpu_ms_per_lead")])
            out.append(table(["buyers", "ramp/s", "offered/s", "leads/s", "floor/s", "floor÷ours",
                              "p50 ms", "p99 ms", "CPU ms/lead"], rows))
            out.extend(overloaded_lines(run["throughput"], "buyers"))
        if "deadline" in run:
            d = run["deadline"]
            out.append(f"\n3. deadline: 10 buyers + one hanging {d['hang_s']} s, "
                       f"{d['auction_timeout_s']} s auction")
            out.append(table(["lead", "closed after deadline ms", "post after deadline ms",
                              "submit->post ms", "ping outcomes"],
                             [[r["lead_id"][:8], r["closed_after_deadline_ms"], r["post_after_deadline_ms"],
                               r["submit_to_post_ms"], r["ping_outcomes"]] for r in d["leads"]]))
        if "scaling" in run:
            out.append("\n4. scaling: ping worker processes at 50 buyers")
            out.append(table(["ping workers", "ramp/s", "leads/s", "p50 ms", "p99 ms", "CPU ms/lead"],
                             [[n, (r.get("probe") or {}).get("capacity_per_s"), r["leads_per_s"],
                               r["p50_ms"], r["p99_ms"], r["cost"].get("cpu_ms_per_lead")]
                              for n, r in run["scaling"].items()]))
            out.extend(overloaded_lines(run["scaling"], "ping workers"))
        if "cost" in run:
            c = run["cost"]
            offered = c["offered_per_s"]
            offered = ", ".join(f"{r:g}/s at {n} buyers" for n, r in offered.items()) \
                if isinstance(offered, dict) else f"{offered:g}/s"
            out.append(f"\n5. cost per lead, offered {offered} (steady-state window)")
            keys = [("cpu_ms_per_lead", "CPU ms, pingtree (API + workers)"),
                    ("flower_cpu_ms_per_lead", "CPU ms, Flower"),
                    ("postgres_cpu_ms_per_lead", "CPU ms, PostgreSQL backends"),
                    ("redis_server_cpu_ms_per_lead", "CPU ms, redis-server"),
                    ("mock_buyers_cpu_ms_per_lead", "CPU ms, mock buyers (not ours)"),
                    ("tasks_per_lead_total", "Celery tasks run"),
                    ("task_messages_per_lead", "task messages (LPUSH)"),
                    ("events_published_per_lead", "events (PUBLISH)"),
                    ("redis_commands_per_lead", "Redis commands"),
                    ("sql_transactions_per_lead", "SQL transactions"),
                    ("sql_rows_written_per_lead", "SQL rows written")]
            ns = [n for n in c if n.isdigit()]
            rows = [[label_, *[c[n].get(k) for n in ns]] for k, label_ in keys]
            out.append(table(["per lead", *[f"{n} buyers" for n in ns]], rows))
            if "cpu_ms_per_extra_buyer" in c:
                out.append(f"   CPU per extra buyer: {c['cpu_ms_per_extra_buyer']} ms")
            for n in ns:
                whole = c[n].get("whole_hold")
                if whole:
                    out.append(f"   over the whole hold ({n} buyers, {whole['leads']} leads,"
                               f" {whole['seconds']} s): {whole['redis_commands_per_lead']} Redis commands,"
                               f" {whole['sql_transactions_per_lead']} SQL transactions,"
                               f" {whole['sql_rows_written_per_lead']} rows written per lead")
                    idle = (c.get("idle_cpu_ms_per_s") or {}).get("stages", {})
                    out.append(table(["process", "CPU ms/lead", "waited for a CPU ms/lead", "idle ms/s"],
                                     [[k, v, whole["stage_cpu_wait_ms_per_lead"].get(k), idle.get(k)]
                                      for k, v in whole["stage_cpu_ms_per_lead"].items()]))
                    out.append(table(["table group", "inserted", "updated (HOT)", "deleted", "bytes"],
                                     [[g, r["inserted"], f"{r['updated']} ({r['hot_updated']})", r["deleted"],
                                       c[n]["bytes_per_lead"].get(g)]
                                      for g, r in whole["rows_per_lead"].items()
                                      if any(r.values()) or c[n]["bytes_per_lead"].get(g)]))
            for n in ns:
                if "tasks_per_lead" in c[n]:
                    out.append(f"   tasks per lead ({n} buyers): {c[n]['tasks_per_lead']}")
                    out.append(f"   top Redis commands per lead ({n} buyers): {c[n]['redis_commands_top']}")
        if "network" in run:
            n = run["network"]
            out.append(f"\n6. network: one lead at a time, Redis and PostgreSQL {n['rtt_ms']} ms"
                       " (measured) round trip away")
            out.append(table(["leads", "sold", "p50 ms", "p99 ms", "extra ms (p50)", "round trips on path"],
                             [[n["leads"], n["sold"], n["p50_ms"], n["p99_ms"], n.get("extra_ms"),
                               n.get("round_trips_on_path")]]))
            out.append(table(["stage", "p50 ms"], [[k, v["p50_ms"]] for k, v in n["stages"].items()]))
    if results.get("summary"):
        out.append("\nTargets (2 cores, everything on one box)")
        out.append(table(["run", "metric", "target", "measured", "floor", "x floor", "met"],
                         [[r["run"], r["metric"], r["target"], r["measured"], r["floor"], r["x_floor"],
                           "yes" if r["met"] else "NO"] for r in results["summary"]]))
    return "\n".join(out)


def plot(results: dict, path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, run in results["runs"].items():
        samples_ms = (run.get("latency") or {}).get("samples_ms")
        if samples_ms:
            ax.hist(samples_ms, bins=50, alpha=0.6, label=f"pingtree ({label})")
    ax.set_xlabel("submit -> post received by the buyer (ms), 10 buyers, one at a time")
    ax.set_ylabel("leads")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def overloaded_lines(holds: dict, unit: str) -> list[str]:
    """A line per hold that did not keep up and was run again a fifth lower."""
    return [f"   {n} {unit}: held {o['offered_per_s']}/s first, not kept up ({o['sold']} of "
            f"{o['submitted']} sold, p50 {o['p50_ms']} ms, the last post {o.get('finish_lag_s')} s"
            " after the last lead): held again lower"
            for n, r in holds.items() for o in r.get("overloaded_holds", [])]

