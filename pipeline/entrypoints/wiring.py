"""The composition root of the processes outside Celery that start leads: the API
(`pingtree serve`), `pingtree submit` and a form backend calling ``pipeline.submit_lead`` send
their nudges through the Celery shell's sender.

pipeline/ never imports tasks/: the sender is the package's `pingtree.senders` entry point
named ``celery`` (pyproject.toml), loaded when a command that needs it starts, so the other
commands never load Celery.
"""
from __future__ import annotations

from importlib.metadata import entry_points

from pipeline.service import nudges

GROUP, SENDER = "pingtree.senders", "celery"


def install_nudge_sender(*, unless_installed: bool = False) -> None:
    """Install the Celery shell's sender; with ``unless_installed``, keep a sender already there."""
    if unless_installed and nudges.has_sender():
        return
    found = entry_points(group=GROUP, name=SENDER)
    if not found:
        raise nudges.NoSender(f"no {GROUP} entry point named {SENDER!r}: is pingtree installed"
                              " (make install)?")
    nudges.install_sender(next(iter(found)).load())
