"""The verticals: one module each (qualifier schema, fit signal, sample answers), and their registry.

Adding a vertical is one module here and one line in ``_MODULES``; a module that lacks a part
fails at import (``Vertical`` has no defaults), and a module left out of ``_MODULES`` fails the
registry test.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from marshmallow import Schema


@dataclass(frozen=True)
class Vertical:
    name: str
    topic: str                                            # what the consent text says it is about
    qualifiers: Schema                                    # the answers this vertical's form asks
    fit: Callable[[dict], float]                          # 0..1: how well answers match what buyers pay for
    sample: Callable[[random.Random, datetime], dict]     # realistic answers, for demo, tests, tree checks


def _load() -> dict[str, Vertical]:
    from pipeline.domain.verticals import (
        auto_insurance,
        debt_relief,
        health_insurance,
        home_insurance,
        life_insurance,
        mortgage,
        solar,
    )
    _MODULES = (auto_insurance, home_insurance, health_insurance, life_insurance, mortgage, solar,
                debt_relief)
    return {module.VERTICAL.name: module.VERTICAL for module in _MODULES}


REGISTRY: dict[str, Vertical] = _load()
NAMES: tuple[str, ...] = tuple(REGISTRY)


def get(name: str) -> Vertical:
    """The vertical called ``name``; KeyError for one that does not exist (never a silent default)."""
    return REGISTRY[name]
