"""Nudges: the messages a stage asks to send once its state is committed (Celery-free values),
and the sender that sends them, installed by the process's entry point (its composition root).

The Celery app installs the Celery shell's sender when it starts (tasks/__init__.py); so do the
API and `pingtree submit` (pipeline/entrypoints/wiring.py), and the tests. A process without
one refuses to start a lead (NoSender) rather than leave its nudge unsent.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


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


Sender = Callable[[list[Nudge | Fanout]], None]


class NoSender(RuntimeError):
    """No sender is installed in this process: its entry point must install one."""


_sender: Sender | None = None


def install_sender(sender: Sender | None) -> None:
    """Set (or, with None, remove) this process's sender."""
    global _sender
    _sender = sender


def has_sender() -> bool:
    return _sender is not None


def sender() -> Sender:
    """The installed sender; NoSender when the process's entry point installed none."""
    if _sender is None:
        raise NoSender("no nudge sender installed: the process's entry point installs one"
                       " (the Celery shell's: pipeline.entrypoints.wiring, or `import tasks`)")
    return _sender


def dispatch(nudges: list[Nudge | Fanout]) -> None:
    """Send through the installed sender; the domain and the stages never import Celery."""
    if nudges:
        sender()(nudges)
