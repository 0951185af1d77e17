"""`make bench` against the committed baseline: what got worse is named, noise is not."""
from __future__ import annotations

from pipeline.devtools.bench.report import against_baseline


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
