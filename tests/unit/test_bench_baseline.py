"""`make bench` against the committed baseline: what got worse is named, noise is not."""
from __future__ import annotations

from pipeline.devtools.bench.report import against_baseline
from pipeline.devtools.bench.report import summary as bench_summary


def summary(**measured) -> dict:
    targets = {"p50": "<= 30", "leads_per_s": ">= 100", "cpu": "<= 20"}
    return {"summary": [{"run": "events on", "metric": name, "target": targets[name], "measured": value}
                        for name, value in measured.items()]}


def test_a_slower_latency_and_a_lower_rate_are_worse_and_noise_is_the_same():
    before = summary(p50=40.0, leads_per_s=30.0, cpu=40.0)
    now = summary(p50=55.0, leads_per_s=20.0, cpu=44.0)
    text, worse = against_baseline(now, before)
    assert worse == ["events on: p50", "events on: leads_per_s"]
    assert "+38%" in text and "-33%" in text and "same" in text


def test_faster_is_better_and_a_figure_missing_from_the_baseline_is_skipped():
    text, worse = against_baseline(summary(p50=20.0, leads_per_s=60.0), summary(p50=40.0))
    assert worse == [] and "better" in text and "leads_per_s" not in text


def test_each_run_is_checked_against_its_own_goals():
    # Sustained: 60 leads/s with events on and Flower, 100 with events off; Flower's CPU is
    # checked only in the run where Flower ran; PostgreSQL's CPU in both.
    cost = {"cpu_ms_per_lead": 14.0, "postgres_cpu_ms_per_lead": 5.5, "flower_cpu_ms_per_lead": 3.0}
    run = {"throughput": {"10": {"leads_per_s": 70.0}}, "cost": {"10": cost}}
    rows = {(r["run"], r["metric"]): r for r in bench_summary(
        {"runs": {"events_on": {**run, "flower": True}, "events_off": {**run, "flower": False}}})}
    sustained = "sustained leads/s, 10 buyers"
    assert rows["events_on", sustained]["met"] and not rows["events_off", sustained]["met"]
    assert rows["events_off", sustained]["target"] == ">= 100"
    assert not rows["events_on", "CPU ms per lead, PostgreSQL, 10 buyers"]["met"]
    assert rows["events_on", "CPU ms per lead, Flower, 10 buyers"]["met"]
    assert ("events_off", "CPU ms per lead, Flower, 10 buyers") not in rows
    assert rows["events_off", "CPU ms per lead, 10 buyers"]["met"]


def run_on(speed: float, *, p50: float, cpu: float, pg: float, flower: float) -> dict:
    """A run's summary on a machine `speed` times the baseline's: its floor and its calibrated
    cores move with it."""
    rows = [{"run": "events_on", "metric": "p50 one at a time, 10 buyers (ms)", "target": "<= 25",
             "measured": p50, "floor": 10.0 / speed},
            {"run": "events_on", "metric": "CPU ms per lead, 10 buyers", "target": "<= 15",
             "measured": cpu, "floor": 1.0 / speed},
            {"run": "events_on", "metric": "CPU ms per lead, PostgreSQL, 10 buyers", "target": "<= 5",
             "measured": pg, "floor": None},
            {"run": "events_on", "metric": "CPU ms per lead, Flower, 10 buyers", "target": "<= 4",
             "measured": flower, "floor": None},
            {"run": "events_on", "metric": "hanging buyer: close after deadline (ms)", "target": "<= 100",
             "measured": 5.0, "floor": None}]
    return {"summary": rows, "calibration": {"postgres": {"transactions_per_core_s": 4000 * speed},
                                             "redis": {"commands_per_core_s": 120000 * speed}}}


def test_a_slow_day_is_not_a_regression_and_a_fast_one_hides_none():
    base = run_on(1.0, p50=20.0, cpu=12.0, pg=4.0, flower=1.5)
    # The same code on a machine 0.7x as fast: every figure 1/0.7 as high, nothing worse.
    slow = run_on(0.7, p50=20.0 / 0.7, cpu=12.0 / 0.7, pg=4.0 / 0.7, flower=1.5 / 0.7)
    text, worse = against_baseline(slow, base)
    assert worse == [], text
    assert "+43%" in text and "+0% (cores, over the floor)" in text
    assert "0% (pgbench)" in text and "0% (cores)" in text
    # A change that costs 30 % more CPU a lead and PostgreSQL, on a day 1.3x as fast: raw figures
    # look the same, yet both are named.
    fast = run_on(1.3, p50=20.0 / 1.3, cpu=12.0 * 1.3 / 1.3, pg=4.0 * 1.3 / 1.3, flower=1.5 / 1.3)
    text, worse = against_baseline(fast, base)
    assert worse == ["events_on: CPU ms per lead, 10 buyers",
                     "events_on: CPU ms per lead, PostgreSQL, 10 buyers"], text


def test_a_slow_day_whose_floor_hardly_moved_is_judged_by_its_cores():
    """As read on a slow day: pgbench and redis-benchmark both 1.66x slower, the floor's
    latency only 1.15x (most of it is the buyers' own answering), events off's sustained rate a
    ramp step lower for the speed. The same code: nothing is worse. By the floor alone, p50 read
    +34 %."""
    base = {"summary": [
        {"run": "events_on", "metric": "p50 one at a time, 10 buyers (ms)", "target": "<= 25",
         "measured": 22.03, "floor": 11.55},
        {"run": "events_off", "metric": "sustained leads/s, 10 buyers", "target": ">= 100",
         "measured": 103.7, "floor": 460.0},
        {"run": "events_on", "metric": "CPU ms per lead, 10 buyers", "target": "<= 15",
         "measured": 14.11, "floor": 1.42}],
        "calibration": {"postgres": {"transactions_per_core_s": 3597},
                        "redis": {"commands_per_core_s": 110410}}}
    slow = {"summary": [{**base["summary"][0], "measured": 34.0, "floor": 13.34},
                        {**base["summary"][1], "measured": 47.9, "floor": 226.5},
                        {**base["summary"][2], "measured": 20.23, "floor": 2.63}],
            "calibration": {"postgres": {"transactions_per_core_s": 2166},
                            "redis": {"commands_per_core_s": 66540}}}
    text, worse = against_baseline(slow, base)
    assert worse == [], text
    assert "+9% (cores, over the floor)" in text and "-14% (cores)" in text
    # Twice the work above the floor on that day is named.
    twice = {**slow, "summary": [{**slow["summary"][0], "measured": 13.34 + 2 * (34.0 - 13.34)}]}
    assert against_baseline(twice, base)[1] == ["events_on: p50 one at a time, 10 buyers (ms)"]
    # Two ramp steps lower is named; one is the reading's resolution.
    two_steps = {**slow, "summary": [{**slow["summary"][1], "measured": 47.9 / 1.3 / 1.25}]}
    assert against_baseline(two_steps, base)[1] == ["events_off: sustained leads/s, 10 buyers"]


def test_without_a_calibration_the_floor_and_then_the_raw_change_decide():
    base = run_on(1.0, p50=20, cpu=12, pg=4, flower=1.5)
    slow = run_on(0.7, p50=20 / 0.7, cpu=12 / 0.7, pg=4.0, flower=1.5)
    for run in (base, slow):
        del run["calibration"]
    text, worse = against_baseline(slow, base)
    assert worse == [] and "+0% (floor)" in text


def test_without_a_floor_or_a_calibration_the_raw_change_is_the_verdict():
    base, now = run_on(1.0, p50=20, cpu=12, pg=4, flower=1.5), run_on(1.0, p50=20, cpu=12, pg=6, flower=1.5)
    for run in (base, now):
        del run["calibration"]
    _, worse = against_baseline(now, base)
    assert worse == ["events_on: CPU ms per lead, PostgreSQL, 10 buyers"]
