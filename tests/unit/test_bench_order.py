"""The bench's two configurations meet the same machine: their shared scenarios run side by side."""
from __future__ import annotations

from types import SimpleNamespace

from pipeline.devtools.bench.scenarios import Bench


def bench(scenarios: list[str], *, no_events_off: bool = False) -> tuple[Bench, list[tuple[bool, str]]]:
    """A Bench whose stack and scenarios are stubbed: each scenario records the config it ran on."""
    b = object.__new__(Bench)
    b.args = SimpleNamespace(no_flower=False, no_events_off=no_events_off, network_rtt_ms=0.5)
    b.scenarios, b.smoke, b.latency_leads = scenarios, False, 200
    b.results = {"runs": {}}
    ran: list[tuple[bool, str]] = []
    config = {}
    b.start_stack = lambda *, events, flower: config.update(events=events)
    b.stop_stack = lambda: None
    for name in ("latency", "throughput", "deadline", "cost"):
        def scenario(name=name):
            ran.append((config["events"], name))
            return {"leads": b.latency_leads} if name == "latency" else {"ran": name}
        setattr(b, f"scenario_{name}", scenario)
    b.scenario_scaling = lambda events: ran.append((events, "scaling")) or {}
    b.scenario_network = lambda events, direct: ran.append((events, "network")) or {"direct": direct}
    b.hold = lambda *a, **k: ran.append((config["events"], "hold")) or {"cost": {}, "sold": 1}
    b.idle_window = lambda: {}
    return b, ran


def test_each_shared_scenario_runs_with_events_on_then_off_before_the_next():
    b, ran = bench(["latency", "throughput", "deadline", "scaling", "cost", "network"])
    b.run_configs()
    assert ran == [(True, "latency"), (False, "latency"), (True, "throughput"), (False, "hold"),
                   (True, "cost"), (False, "hold"), (True, "deadline"), (True, "scaling"),
                   (True, "network")]
    on, off = b.results["runs"]["events_on"], b.results["runs"]["events_off"]
    assert set(on) == {"events", "flower", "latency", "throughput", "deadline", "scaling", "cost", "network"}
    assert set(off) == {"events", "flower", "latency", "throughput", "cost"} and off["events"] is False
    assert on["latency"] == {"leads": 200} and off["latency"] == {"leads": 100}   # events off: 100 at most
    assert on["network"] == {"direct": {"leads": 200}}           # the far run set beside the near one
    assert b.latency_leads == 200                                 # restored after events off
    assert b.results["order"][:3] == ["events on: latency", "events off: latency", "events on: throughput"]


def test_without_events_off_events_on_runs_its_scenarios_in_one_stack():
    b, ran = bench(["latency", "cost"], no_events_off=True)
    b.run_configs()
    assert ran == [(True, "latency"), (True, "cost")]
    assert "events_off" not in b.results["runs"]
