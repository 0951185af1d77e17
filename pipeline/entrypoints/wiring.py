"""The composition root of the processes outside Celery that start leads: the API
(`pingtree serve`), `pingtree submit` and a form backend calling ``pipeline.submit_lead`` send
their nudges through the Celery shell's sender.

The one import of tasks/ from pipeline/, declared as such in pyproject's import contract; it is
made when a command that needs it starts, so the other commands never load Celery.
"""
from __future__ import annotations

from pipeline.service import nudges


def install_nudge_sender(*, unless_installed: bool = False) -> None:
    """Install tasks.dispatch.send; with ``unless_installed``, keep a sender already there."""
    if unless_installed and nudges.has_sender():
        return
    from tasks.dispatch import send
    nudges.install_sender(send)
