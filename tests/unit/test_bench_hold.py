"""The bench's throughput hold: a hold past what the box keeps up with is run again lower."""
from __future__ import annotations

from pipeline.devtools.bench.report import overloaded_lines
from pipeline.devtools.bench.scenarios import Bench


def bench(kept_up_at: float, capacity: float = 50.0, *, backlog_from: float | None = None
          ) -> tuple[Bench, list[float], list[list[str]]]:
    """A Bench whose holds keep up at `kept_up_at`/s or below (no stack: the hold's parts stubbed);
    from `backlog_from`/s every lead still sells, but the last post arrives 3 s late."""
    b = object.__new__(Bench)
    rates, settled = [], []
    b.load_tree = lambda ids: None
    b.ramp = lambda: (capacity, [])
    b.settle = lambda ids, timeout=30.0: settled.append(ids)

    def hold_once(buyers, rate, *, profile, whole_hold):
        rates.append(rate)
        ok = rate <= kept_up_at
        behind = backlog_from is not None and rate >= backlog_from
        return {"_ids": [f"lead-{len(rates)}"], "offered_per_s": round(rate, 1), "submitted": 100,
                "sold": 100 if ok else 80, "leads_per_s": (0.7 * rate if behind else rate) if ok else 16.0,
                "p50_ms": (500.0 if behind else 40.0) if ok else 1900.0, "p99_ms": 90.0,
                "finish_lag_s": (3.0 if behind else 0.1) if ok else 9.0, "cost": {}}
    b._hold_once = hold_once
    return b, rates, settled


def test_a_hold_that_keeps_up_is_measured_once():
    b, rates, settled = bench(kept_up_at=100)
    result = b.hold(50)
    assert rates == [40.0] and settled == []
    assert result["sold"] == 100 and "overloaded_holds" not in result and "_ids" not in result


def test_an_overloaded_hold_is_recorded_and_held_again_a_fifth_lower():
    b, rates, settled = bench(kept_up_at=35)
    result = b.hold(50)
    assert rates == [40.0, 32.0]
    assert settled == [["lead-1"]]                 # the overloaded hold's leads settle first
    assert result["offered_per_s"] == 32.0 and result["p50_ms"] == 40.0
    assert result["overloaded_holds"] == [{"offered_per_s": 40.0, "submitted": 100, "sold": 80,
                                           "leads_per_s": 16.0, "p50_ms": 1900.0, "finish_lag_s": 9.0}]
    assert overloaded_lines({"2": result}, "ping workers") == [
        "   2 ping workers: held 40.0/s first, not kept up (80 of 100 sold, p50 1900.0 ms, the last"
        " post 9.0 s after the last lead): held again lower"]


def test_a_hold_that_sells_everything_but_falls_behind_is_held_again_lower():
    # Every lead sold and p50 under a second, but a backlog: the window's rate understates the box.
    b, rates, settled = bench(kept_up_at=100, backlog_from=40)
    result = b.hold(50)
    assert rates == [40.0, 32.0] and settled == [["lead-1"]]
    assert result["offered_per_s"] == 32.0 and result["leads_per_s"] == 32.0
    assert result["overloaded_holds"][0]["finish_lag_s"] == 3.0


def test_a_box_that_never_keeps_up_stops_after_two_more_holds():
    b, rates, _ = bench(kept_up_at=1)
    result = b.hold(50)
    assert rates == [40.0, 32.0, 25.6]
    assert len(result["overloaded_holds"]) == 2 and result["offered_per_s"] == 25.6


def test_a_given_rate_is_held_once():
    b, rates, _ = bench(kept_up_at=1)
    result = b.hold(50, probe=False, rate=20.0)
    assert rates == [20.0] and "overloaded_holds" not in result and "probe" not in result
