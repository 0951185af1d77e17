"""The text of a UUID, remembered for the ids a process writes more than once.

str(uuid) is Python's UUID.__str__ (a %-format of the int, then five slices and another format):
~7 k instructions. A ping's id is written into its buyer's ping and again into the shard's row,
so the ids a process makes, and the ones it writes, keep their text by their int (a C hash);
the text of an int never changes, so a remembered one is always right.
"""
from __future__ import annotations

import uuid

MAX_KEPT = 8192
_texts: dict[int, str] = {}


def text(u: uuid.UUID) -> str:
    """str(u), for a UUID of exactly uuid.UUID's type (a subclass may write itself otherwise)."""
    if type(u) is not uuid.UUID:
        return str(u)
    found = _texts.get(u.int)
    if found is None:
        found = remember(u.int, str(u))
    return found


def remember(n: int, written: str) -> str:
    """Keep ``written``, the text of the UUID whose int is ``n``."""
    if len(_texts) >= MAX_KEPT:
        _texts.clear()                 # the ids of leads long gone; the current ones return
    _texts[n] = written
    return written


def from_bytes(raw: bytes | bytearray) -> uuid.UUID:
    """uuid.UUID(bytes=raw) for 16 bytes, its text remembered, written from the bytes' hex."""
    made = uuid.UUID(int=int.from_bytes(raw, "big"))
    h = raw.hex()
    remember(made.int, f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return made
