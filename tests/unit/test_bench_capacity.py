"""The capacity model's arithmetic: per-process rates, the shared parts, the bottleneck, storage."""
from __future__ import annotations

import math

import pytest

from pipeline.devtools.bench import capacity
from pipeline.devtools.bench.capacity import Figures
from pipeline.devtools.bench.system import API_THREADS, pool_of

THREADS4 = {"pool": "threads", "concurrency": 4}


def figures(**overrides) -> Figures:
    base = {"rate": 20.0,
            "stage_cpu_ms": {"api": 2.0, "validate": 4.0, "score": 2.0, "ping": 8.0, "award": 2.0,
                             "deliver": 4.0},
            "stage_idle_ms_per_s": {}, "task_ms": {}, "stage_cpu_wait_ms": {},
            "pools": {s: THREADS4 for s in capacity.STAGES},
            "redis_commands": 50.0, "redis_commands_per_core_s": 50_000.0}
    return Figures(**{**base, **overrides})


@pytest.mark.parametrize(("command", "pool"), [
    ("celery -A tasks worker -Q ping -n ping@%h -P threads -c 64 -l WARNING",
     {"pool": "threads", "concurrency": 64}),
    ("celery -A tasks worker -Q rerun -n rerun@%h -P solo -l WARNING", {"pool": "solo", "concurrency": 1}),
    ("celery -A tasks worker -Q score --concurrency 3", {"pool": "prefork", "concurrency": 3}),
    ("pingtree serve", {"pool": "threads", "concurrency": API_THREADS}),
])
def test_a_procfile_line_gives_its_pool_and_concurrency(command, pool):
    assert pool_of(command) == pool


def test_a_process_sustains_a_core_over_its_cpu_per_lead_less_what_idling_costs():
    assert capacity.process_rate(10.0, 0.0, 20.0) == pytest.approx(100.0)
    # 100 ms/s idle at 20 leads/s is 5 ms of each measured 10: a lead adds 5; 900 ms/s are left.
    assert capacity.process_rate(10.0, 100.0, 20.0) == pytest.approx(180.0)
    assert capacity.process_rate(10.0, 100.0, 20.0, core_speed=2.0) == pytest.approx(380.0)
    assert capacity.process_rate(10.0, 0.0, 20.0, cores=4) == pytest.approx(400.0)
    assert capacity.process_rate(0.0, 0.0, 20.0) == math.inf


def test_an_idle_figure_larger_than_the_load_leaves_a_tenth_of_the_measured_cost():
    assert capacity.marginal(10.0, 1000.0, 20.0) == pytest.approx(1.0)


def test_the_pool_bounds_a_stage_that_waits_and_a_busy_box_is_taken_out_of_the_wait():
    f = figures(task_ms={"pingtree.ping_shard": 30.0, "pingtree.walk_waterfall": 10.0},
                stage_cpu_wait_ms={"ping": 20.0}, pools={"ping": {"pool": "threads", "concurrency": 2}})
    ping = capacity.stage_rates(f)["ping"]
    assert ping["cpu_bound"] == pytest.approx(125.0)          # 1000 / 8 ms
    assert ping["pool_bound"] == pytest.approx(100.0)         # 2 slots x 1000 / (40 - 20) ms
    assert ping["per_process"] == pytest.approx(100.0)


def test_a_queue_whose_tasks_did_not_run_for_the_leads_bounds_nothing():
    runs = {"pingtree.validate_lead": 1.0, "pingtree.score_lead": 1.0, "pingtree.ping_shard": 1.0,
            "pingtree.deliver_post": 1.0}
    f = figures(task_runs=runs, stage_cpu_ms={**figures().stage_cpu_ms, "award": 50.0})
    assert capacity.stage_rates(f)["award"]["per_process"] == math.inf
    assert capacity.deployment(f, 1)["bottleneck"] == "ping"
    f = figures(task_runs={**runs, "pingtree.award_auction": 1.0}, stage_cpu_ms=f.stage_cpu_ms)
    assert capacity.deployment(f, 1)["bottleneck"] == "award"      # 1000 / 50 ms = 20/s


def test_a_prefork_worker_is_a_core_per_child():
    f = figures(pools={"validate": {"pool": "prefork", "concurrency": 3}})
    assert capacity.stage_rates(f)["validate"]["cpu_bound"] == pytest.approx(750.0)


def test_workers_scale_until_a_shared_part_is_the_bottleneck():
    f = figures()          # ping: 125/s per process; Redis: 50 000 / 50 = 1000/s
    one, nine, sixteen = (capacity.deployment(f, n) for n in (1, 9, 16))
    assert (one["leads_per_s"], one["bottleneck"]) == (pytest.approx(125.0), "ping")
    assert (nine["leads_per_s"], nine["bottleneck"]) == (pytest.approx(1000.0), "redis")
    assert (sixteen["leads_per_s"], sixteen["bottleneck"]) == (pytest.approx(1000.0), "redis")
    assert capacity.deployment(f, 16, redis_instances=2)["leads_per_s"] == pytest.approx(2000.0)
    assert one["worker_cores"] == 6
    limit = capacity.first_shared_limit(f)
    assert limit == {"part": "redis", "leads_per_s": pytest.approx(1000.0), "slowest_stage": "ping",
                     "workers": 8}


def test_the_lowest_of_the_measured_bounds_is_a_shared_parts_rate():
    f = figures(redis_cpu_ms=2.0, postgres_cpu_ms=10.0, sql_transactions=8.0, sql_rows_written=30.0,
                pg_transactions_per_core_s=4000.0, pg_rows_per_core_s=12_000.0)
    shared = capacity.shared_rates(f, pg_cores=2)
    assert shared["redis"]["rate"] == pytest.approx(500.0)        # its CPU: 1000 / 2 ms < 1000
    assert shared["postgres"]["bounds"] == {"backend CPU": pytest.approx(100.0),
                                            "pgbench transactions": pytest.approx(500.0),
                                            "pgbench rows": pytest.approx(400.0)}
    assert shared["postgres"]["rate"] == pytest.approx(200.0)     # 2 cores x 100
    assert capacity.deployment(f, 4, pg_cores=2)["bottleneck"] == "postgres"


def test_flower_is_one_process_for_the_whole_deployment_and_can_be_left_out():
    f = figures(flower_cpu_ms=5.0)
    assert capacity.deployment(f, 4)["bottleneck"] == "flower"
    assert capacity.deployment(f, 4)["leads_per_s"] == pytest.approx(200.0)
    assert capacity.deployment(f, 4, flower=False)["leads_per_s"] == pytest.approx(500.0)


def test_storage_grows_by_the_bytes_per_lead_at_the_rate_and_stands_at_its_retention():
    f = figures(bytes_per_lead={"leads": 2000.0, "events": 1000.0, "other": -8192.0})
    s = capacity.storage(f, 10.0, detail_days=30, record_days=1000)
    assert s["per_day"] == {"leads": 2000.0 * 10 * 86_400, "events": 1000.0 * 10 * 86_400}
    assert s["total_per_day"] == pytest.approx(3000.0 * 10 * 86_400)
    assert s["bytes_per_lead"] == 3000
    # Events are detail (kept 30 days), a lead is a record (kept 1000 here).
    assert s["standing"] == {"leads": 2000.0 * 10 * 86_400 * 1000, "events": 1000.0 * 10 * 86_400 * 30}


def test_across_machines_each_round_trip_on_the_path_adds_its_time():
    f = figures(network={"rtt_ms": 2.0, "round_trips_on_path": 60.0, "direct_p50_ms": 40.0})
    assert capacity.network_latency(f, (0.5, 1.0)) == [{"rtt_ms": 0.5, "added_ms": 30.0, "p50_ms": 70.0},
                                                       {"rtt_ms": 1.0, "added_ms": 60.0, "p50_ms": 100.0}]
    assert capacity.network_latency(figures()) == []


def test_the_model_reads_a_bench_json_and_names_the_bottleneck():
    cost = {"leads_in_window": 100, "window_s": 5.0, "redis_commands_per_lead": 50.0,
            "stage_cpu_ms_per_lead": {"api": 2.0, "validate": 4.0, "score": 2.0, "ping": 8.0, "award": 2.0,
                                      "deliver": 4.0, "rerun": 0.1},
            "flower_cpu_ms_per_lead": 5.0, "bytes_per_lead": {"leads": 1500}}
    results = {"runs": {"events_on": {"flower": True, "cost": {"10": cost}}},
               "pools": {s: THREADS4 for s in capacity.STAGES},
               "calibration": {"redis": {"commands_per_core_s": 50_000}, "postgres": None}}
    assert capacity.available(results) is True
    assert capacity.available({"runs": {}}) is False
    m = capacity.model(results, workers=(1, 4))
    assert m["measured_at_leads_per_s"] == 20.0
    assert [(d["workers"], d["bottleneck"]) for d in m["deployments"]] == [(1, "ping"), (4, "flower")]
    assert [d["bottleneck"] for d in m["deployments_without_flower"]] == ["ping", "ping"]
    assert "rerun" not in m["per_process"]
    text = capacity.render(m)
    assert "bottleneck" in text and "flower" in text and "Storage at 10 leads/s: 1500 bytes per lead" in text
    assert capacity.markdown(m, results).count("N worker processes") == 2
    # The events-off run: no Flower, so one deployment table and no Flower bound.
    results["runs"]["events_off"] = {"flower": False, "events": False, "cost": {"10": cost}}
    off = capacity.model(results, run="events_off", workers=(1, 4))
    assert "flower" not in off["shared"] and [d["bottleneck"] for d in off["deployments"]] == ["ping", "ping"]
    assert capacity.markdown(off, results).count("N worker processes") == 1
    assert "Flower left out" not in capacity.render(off)
