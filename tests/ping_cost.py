"""Instructions of the ping stage's body a lead: lifecycle.ping_shard (the shard's claim, the
pings built, signed, sent and read on libcurl, the answers written and the lone shard's award in
one transaction), with the other stages run in the same process as tests/stage_cost.py runs
them, against ten mock buyers (their own process) that all bid. Not a test (counts stay out of
`make test`):

    PINGTREE_DATABASE_URL=postgresql://…/scratch .venv/bin/python -m tests.ping_cost [N1 N2]
    PINGTREE_DATABASE_URL=… .venv/bin/python -m tests.ping_cost --profile [leads]

The database named is dropped and migrated fresh. This process runs itself under callgrind twice,
with 20 warm leads then N1 (default 20), then N2 (default 60) measured leads; collection is on
only inside operator.call (CPython's _operator_call, named to callgrind with --toggle-collect),
through which the measured leads' ping bodies are called and which nothing else calls, so the
other stages, start-up and the mock buyers are not counted. (A function of one's own compiled
and called by ctypes does not do: libffi's call is no call to callgrind, which never toggles.)
(I(N2) - I(N1)) / (N2 - N1) is the body's instruction count a lead; the N2 run's callgrind file
is kept (its path printed) for callgrind_annotate. PostgreSQL's side is not in it (see the
README's Reproduce for that). `--profile` runs the same loop without valgrind under cProfile,
the ping bodies alone, and prints the top of it by own time.
"""
from __future__ import annotations

import operator
import os
import re
import subprocess
import sys
import tempfile
import time

STUB = "_operator_call"      # operator.call, in C: the toggle


def run(warm: int, leads: int, profile: bool = False) -> None:
    """The loop itself (in the process callgrind watches)."""
    # First: it sets stage_cost's environment and loads the settings before the pipeline does.
    from tests.stage_cost import ten_buyers  # isort: skip

    from pipeline import submit_lead
    from pipeline.service import deliver, lifecycle
    from tests.helpers import make_lead

    profiler = None
    if profile:
        import cProfile
        profiler = cProfile.Profile(time.thread_time)   # CPU, not the waits on buyers and PostgreSQL
    with ten_buyers():
        for n in range(warm + leads):
            lead_id = submit_lead(make_lead("solar", seed=n))
            [score] = lifecycle.validate_lead(lead_id)
            [ping] = lifecycle.score_lead(*score.args)
            out: list = []
            if n < warm:
                out = lifecycle.ping_shard(*ping.args)
            elif profiler is not None:
                profiler.enable()
                out = lifecycle.ping_shard(*ping.args)
                profiler.disable()
            else:
                out = operator.call(lifecycle.ping_shard, *ping.args)
            if not out:
                raise RuntimeError(f"lead {n}: the ping stage awarded nothing: {out}")
            deliver.deliver_post(*out[0].args)
    if profiler is not None:
        import pstats
        pstats.Stats(profiler).sort_stats("tottime").print_stats(45)


def instructions(leads: int, keep: str | None = None) -> int:
    out = keep or tempfile.mktemp(suffix=".callgrind")
    subprocess.run(["valgrind", "--tool=callgrind", "--collect-atstart=no",
                    f"--toggle-collect={STUB}", f"--callgrind-out-file={out}",
                    sys.executable, "-m", "tests.ping_cost", "--run", "20", str(leads)],
                   check=True, stderr=subprocess.DEVNULL)
    text = open(out).read()
    if keep is None:
        os.unlink(out)
    total = int(re.search(r"^(?:summary|totals): (\d+)", text, re.M).group(1))
    print(f"  {leads} leads: {total / 1e6:.1f} M instructions in the ping bodies", flush=True)
    return total


def main(argv: list[str]) -> None:
    if argv[:1] == ["--run"]:
        run(int(argv[1]), int(argv[2]))
        return
    if argv[:1] == ["--profile"]:
        run(20, int(argv[1]) if len(argv) > 1 else 200, profile=True)
        return
    n1, n2 = (int(argv[0]), int(argv[1])) if len(argv) >= 2 else (20, 60)
    keep = os.path.join(tempfile.gettempdir(), f"ping_cost.{os.getpid()}.callgrind")
    i1, i2 = instructions(n1), instructions(n2, keep)
    print(f"ping body: {(i2 - i1) / (n2 - n1) / 1e6:.3f} M instructions a lead"
          f" ({i1 / n1 / 1e6:.3f} and {i2 / n2 / 1e6:.3f} M a lead in each run);"
          f" callgrind file of the {n2}-lead run: {keep}")


if __name__ == "__main__":
    main(sys.argv[1:])
