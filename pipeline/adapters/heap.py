"""A long-running process's start-up heap, kept out of CPython's cyclic garbage collector.

The collector's full (oldest-generation) pass walks every container object the process holds.
A started stage worker holds ~68,000 of them from its imports (Celery, kombu, phonenumbers'
metadata, the rest) and, once it has looked up a ZIP, ~213,000 more: the USPS records and
their index (pipeline/domain/zips.py). None of them ever becomes garbage, yet every full pass
walked them all: 70-400 ms of CPU in a validate or ping worker on a 2-core box, a few times a
minute under load, in the middle of whichever lead the worker was serving (it was most of the
one-at-a-time p99). ``settle`` builds what the first lead would otherwise build, then moves
everything alive to the collector's permanent generation (``gc.freeze``): later passes walk only
what the process allocated since. Frozen objects are still freed by reference counting when
they are let go (a tree reloaded, a cache trimmed); only a reference cycle among them would never
be collected, and start-up data lives as long as the process anyway.
"""
from __future__ import annotations

import gc

from pipeline.domain import zips


def settle(*, zip_records: bool = False) -> int:
    """Freeze the heap as it is now; with ``zip_records``, look the ZIP records up first (the
    validate stage reads a lead's ZIP, the ping stage a buyer's radius). Returns how many objects
    the collector now leaves alone."""
    if zip_records:
        # Building ~213,000 objects would set off full passes over everything along the way.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            zips.warm()
        finally:
            if was_enabled:
                gc.enable()
    gc.freeze()
    return gc.get_freeze_count()
