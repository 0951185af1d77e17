"""The nudge sender is injected by each process's entry point; a process without one refuses
to start a lead instead of leaving it without its validate message."""
from __future__ import annotations

import importlib

import pytest

from pipeline.service import intake, nudges
from pipeline.service.nudges import Fanout, NoSender, Nudge
from tests.helpers import make_lead


@pytest.fixture
def no_sender(monkeypatch):
    monkeypatch.setattr(nudges, "_sender", None)


def test_nudges_go_through_the_installed_sender(monkeypatch):
    sent = []
    monkeypatch.setattr(nudges, "_sender", None)
    nudges.install_sender(sent.append)
    fanout = Fanout(header=(Nudge("pingtree.ping_shard", ("a", 0)),),
                    body=Nudge("pingtree.award_auction", ("a",)))
    nudges.dispatch([Nudge("pingtree.score_lead", ("x",)), fanout])
    nudges.dispatch([])
    assert sent == [[Nudge("pingtree.score_lead", ("x",)), fanout]]


def test_without_a_sender_a_nudge_fails_loudly(no_sender):
    nudges.dispatch([])                                   # nothing to send: nothing to refuse
    with pytest.raises(NoSender, match="no nudge sender installed"):
        nudges.dispatch([Nudge("pingtree.validate_lead", ("x",))])


def test_without_a_sender_no_lead_is_stored(no_sender, monkeypatch):
    def no_database():
        raise AssertionError("a lead was about to be stored without a sender for its nudge")
    monkeypatch.setattr(intake.db, "transaction", no_database)
    with pytest.raises(NoSender):
        intake.submit_lead(make_lead())


def test_the_celery_app_and_the_lead_commands_install_the_celery_shells_sender(no_sender):
    import tasks
    importlib.reload(tasks)                               # its import may have run before this test
    from tasks.dispatch import send
    assert nudges.sender() is send                        # `celery -A tasks`: tasks/__init__.py
    nudges.install_sender(None)
    from pipeline.entrypoints import wiring
    wiring.install_nudge_sender()                         # `pingtree serve` and `pingtree submit`
    assert nudges.sender() is send and tasks.app is not None


def test_an_installation_without_the_sender_entry_point_fails_loudly(no_sender, monkeypatch):
    from pipeline.entrypoints import wiring
    monkeypatch.setattr(wiring, "entry_points", lambda **_: ())
    with pytest.raises(NoSender, match="make install"):
        wiring.install_nudge_sender()
    assert not nudges.has_sender()
