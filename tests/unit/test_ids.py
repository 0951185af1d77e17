"""A UUID's text, remembered: always str(uuid)'s, whether made here from bytes, remembered
before, forgotten when too many are kept, or of a subclass that writes itself otherwise."""
from __future__ import annotations

import os
import uuid

from pipeline.domain import ids


class Odd(uuid.UUID):
    def __str__(self):
        return "odd"


def test_a_uuids_text_is_str_of_it(monkeypatch):
    monkeypatch.setattr(ids, "MAX_KEPT", 50)
    for _ in range(3):
        for raw in [os.urandom(16) for _ in range(120)] + [bytes(16), b"\xff" * 16]:
            made = ids.from_bytes(raw)
            assert made == uuid.UUID(bytes=raw) and type(made) is uuid.UUID
            assert ids.text(made) == str(made) == str(uuid.UUID(bytes=raw))
            assert ids.text(uuid.UUID(bytes=raw)) == str(made)
            assert len(ids._texts) <= 50
    assert ids.text(Odd(int=5)) == "odd" and ids.text(uuid.UUID(int=5)) == str(uuid.UUID(int=5))
