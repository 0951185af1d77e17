"""The ZIP index answers exactly as zipcodes.matching does, without its scan of every record."""
from __future__ import annotations

import random

import pytest
import zipcodes

from pipeline.domain import zips

ALL = sorted({record["zip_code"] for record in zipcodes.list_all()})


def forms(zip5: str, rng: random.Random) -> list[str]:
    plus4 = f"{rng.randrange(10_000):04d}"
    return [zip5, f"{zip5}-{plus4}", f"{zip5}{plus4}", f" {zip5} "]


@pytest.mark.parametrize("seed", range(3))
def test_every_well_formed_spelling_gives_the_librarys_records(seed):
    rng = random.Random(seed)
    for zip5 in rng.sample(ALL, 60) + [f"{rng.randrange(100_000):05d}" for _ in range(20)]:
        for raw in forms(zip5, rng):
            assert zips.matching(raw) == zipcodes.matching(raw), raw


@pytest.mark.parametrize("raw", ["9021", "abcde", "", None, 90210])
def test_what_the_library_refuses_is_still_refused(raw):
    with pytest.raises((TypeError, ValueError)) as theirs:
        zipcodes.matching(raw)
    with pytest.raises(type(theirs.value)):
        zips.matching(raw)


@pytest.mark.parametrize("raw", ["90210-12", "90210--1234", "90210 "])
def test_what_the_library_reads_leniently_it_still_reads(raw):
    assert zips.matching(raw) == zipcodes.matching(raw) != []


@pytest.mark.parametrize("raw", ["٩٠٢١٠", "９０２１０", "9021٠", "90210-١٢٣٤"])
def test_other_scripts_are_refused_not_a_panic(raw):
    with pytest.raises(ValueError):
        zips.matching(raw)


def test_a_caller_cannot_change_the_index():
    zips.matching("90210").clear()
    assert zips.matching("90210") == zipcodes.matching("90210") != []
