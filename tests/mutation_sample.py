"""`make mutation-sample`: mutmut on a seeded sample of the pure rules' mutants; fails under a floor.

The full run (`make mutation`) tries every mutant of the modules [tool.mutmut] names (about a
thousand, ten minutes); CI tries the same sample every time (the seed picks it from the sorted
list of names, so it changes only when the rules' code does).

mutmut has no command that only lists its mutants: `mutmut run NAME` generates every mutant and
records which unit tests reach which function before it looks NAME up, so a name that matches
nothing stops it right there with the listing written (`mutmut results --all true`). The second
`mutmut run` with the sampled names reuses those records and tries only the sample.
"""
from __future__ import annotations

import argparse
import random
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

MUTMUT = str(Path(sys.executable).parent / "mutmut")
NO_SUCH_MUTANT = "pingtree.listing.only"
LOG = Path(".mutmut-sample.log")
CAUGHT = ("killed", "timeout")       # a mutant that makes a test hang is caught too


def mutmut(*args: str, log) -> subprocess.CompletedProcess:
    started, cpu = time.monotonic(), _children_cpu()
    done = subprocess.run([MUTMUT, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log.write(f"$ mutmut {' '.join(args)}\n{done.stdout}\n"
              f"({time.monotonic() - started:.0f} s, {_children_cpu() - cpu:.0f} s of CPU)\n")
    return done


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def statuses(log) -> dict[str, str]:
    listing = mutmut("results", "--all", "true", log=log)
    found = dict(re.findall(r"^\s*(\S+__mutmut_\d+): (.+)$", listing.stdout, re.MULTILINE))
    if listing.returncode or not found:
        raise SystemExit(f"mutation-sample: `mutmut results` listed no mutant; see {LOG}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40, help="mutants in the sample")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--floor", type=float, default=90.0, help="percent caught, or the run fails")
    parser.add_argument("--max-children", default="2")
    args = parser.parse_args(argv)
    started = time.monotonic()
    shutil.rmtree("mutants", ignore_errors=True)
    with LOG.open("w") as log:
        listing = mutmut("run", "--max-children", args.max_children, NO_SUCH_MUTANT, log=log)
        if "nothing matches" not in listing.stdout:
            print(listing.stdout[-3000:])
            raise SystemExit(f"mutation-sample: mutmut could not generate the mutants; see {LOG}")
        names = sorted(statuses(log))
        sample = sorted(random.Random(args.seed).sample(names, min(args.count, len(names))))
        mutmut("run", "--max-children", args.max_children, *sample, log=log)
        found = statuses(log)
    results = {name: found.get(name, "missing") for name in sample}
    caught = [name for name, status in results.items() if status in CAUGHT]
    for name, status in results.items():
        if status not in CAUGHT:
            print(f"{status}: {name}")
            print(subprocess.run([MUTMUT, "show", name], capture_output=True, text=True).stdout)
    score = 100.0 * len(caught) / len(sample)
    print(f"{time.monotonic() - started:.0f} s, {_children_cpu():.0f} s of CPU (the log: {LOG})")
    print(f"mutation sample (seed {args.seed}, {len(sample)} of {len(names)} mutants): {len(caught)} caught"
          f" ({score:.1f}%), floor {args.floor:g}%")
    return 0 if score >= args.floor else 1


if __name__ == "__main__":
    sys.exit(main())
