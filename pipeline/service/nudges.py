"""Nudges: the messages a stage asks to send once its state is committed (Celery-free values)."""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from config.settings import settings


@dataclass(frozen=True)
class Nudge:
    """Run task ``task`` (a Celery task name) with ids only, optionally after ``countdown`` s."""
    task: str
    args: tuple = ()
    countdown: float | None = None


@dataclass(frozen=True)
class Fanout:
    """A chord: every header nudge runs, then ``body`` runs once with all of them done."""
    header: tuple[Nudge, ...]
    body: Nudge


def dispatch(nudges: list[Nudge | Fanout]) -> None:
    """Send through the Celery shell named in settings; the domain never imports Celery."""
    if nudges:
        module, _, name = settings.dispatcher.partition(":")
        getattr(importlib.import_module(module), name)(nudges)
