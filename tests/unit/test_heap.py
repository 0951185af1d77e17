"""A process's start-up heap settled out of the garbage collector's way (pipeline/adapters/heap.py):
what a full collection walks afterwards is only what the process allocated since."""
from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import gc, json
from pipeline.adapters import heap
from pipeline.domain import zips
before = len(gc.get_objects())
frozen = heap.settle(zip_records={zip_records})
print(json.dumps({{"before": before, "frozen": frozen, "walked": len(gc.get_objects()),
                  "enabled": gc.isenabled(), "indexed": zips._index is not None,
                  "record": zips.matching("10001")[0]["city"]}}))
"""


def settled(zip_records: bool) -> dict:
    ran = subprocess.run([sys.executable, "-c", PROBE.format(zip_records=zip_records)],
                         capture_output=True, text=True, check=True, timeout=120)
    return json.loads(ran.stdout.splitlines()[-1])


def test_the_zip_records_are_loaded_first_and_nothing_is_left_for_a_full_collection_to_walk():
    after = settled(zip_records=True)
    assert after["indexed"] and after["record"] == "New York"
    # ~40,000 records, each a dict and its lists, and the index: all frozen with the imports.
    assert after["frozen"] > after["before"] + 150_000
    assert after["walked"] < 1_000
    assert after["enabled"]                     # collection paused while loading, then back on


def test_without_the_zip_records_only_the_imports_are_frozen():
    after = settled(zip_records=False)
    assert after["before"] <= after["frozen"] < after["before"] + 10_000
    assert after["walked"] < 1_000
