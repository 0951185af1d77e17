"""The frozen dataclasses the stages make a few of a buyer a lead are made in one step (their
fields written into the instance's dict at once): the same records as their dataclass's own
__init__ makes, from the same arguments, and the same refusals."""
from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field

import pytest

from pipeline.adapters.transport import Reply, Request
from pipeline.domain.auction import Bid
from pipeline.domain.frozen import one_step_init
from pipeline.protocols.interface import Answer, Outgoing, PostResult

CALLS = {
    Answer: [(("accept",), {}), (("accept", 1250, "r", None, 12), {}),
             ((), {"outcome": "error", "reason": "http_500", "latency_ms": 3})],
    PostResult: [(("accepted",), {}), (("retry", "timeout", None, 900), {}),
                 (("rejected",), {"http_status": 400})],
    Outgoing: [(("POST", "https://b.example/ping", b"{}"), {}),
               (("GET", "https://b.example/p", b"", {"a": "1"}), {})],
    Bid: [((uuid.UUID(int=1), "b1", 0, "accept", 1250), {}),
          ((), {"ping_id": "p", "buyer_id": "b2", "rank": 1, "outcome": "reject", "bid_cents": None})],
    Request: [(("https://b.example/ping", b"{}"), {}), (("u", b"x", {"h": "v"}, 0.5, "PUT"), {}),
              (("u", b"x"), {"budget_s": 1.0})],
    Reply: [((200, b"{}", 3), {}), ((None, b"", 1000, "timeout"), {})],
}
BAD = [((), {}), (("a", "b", "c", "d", "e", "f", "g"), {}), (("a",), {"nowhere": 1})]


def by_the_dataclass(cls, *args, **kwargs):
    made = object.__new__(cls)
    cls._dataclass_init(made, *args, **kwargs)
    return made


@pytest.mark.parametrize("cls", list(CALLS))
def test_a_one_step_record_is_the_one_its_dataclass_makes(cls):
    for args, kwargs in CALLS[cls]:
        made, expected = cls(*args, **kwargs), by_the_dataclass(cls, *args, **kwargs)
        assert vars(made) == vars(expected) and list(vars(made)) == list(vars(expected))
        assert made == expected and repr(made) == repr(expected)
        try:
            assert hash(made) == hash(expected)
        except TypeError:                    # a dict field: neither is hashable
            with pytest.raises(TypeError):
                hash(expected)
        assert dataclasses.asdict(made) == dataclasses.asdict(expected)
        with pytest.raises(dataclasses.FrozenInstanceError):
            made.x = 1
    for args, kwargs in BAD:
        with pytest.raises(TypeError):
            cls(*args, **kwargs)
        with pytest.raises(TypeError):
            by_the_dataclass(cls, *args, **kwargs)


def test_each_record_gets_its_own_default_from_a_factory():
    first, second = Request("u", b""), Request("u", b"")
    assert first.headers == {} and first.headers is not second.headers
    assert Outgoing("GET", "u", b"").headers is not Outgoing("GET", "u", b"").headers


def test_only_a_plain_frozen_dataclass_is_made_in_one_step():
    @dataclass
    class Loose:
        a: int

    @dataclass(frozen=True)
    class Checked:
        a: int

        def __post_init__(self):
            pass

    @dataclass(frozen=True)
    class Hidden:
        a: int
        b: int = field(default=0, init=False)

    for cls in (Loose, Checked, Hidden):
        with pytest.raises(TypeError):
            one_step_init(cls)
