"""How instants are written for buyers and operators."""
from __future__ import annotations

from datetime import datetime


def iso(at: datetime) -> str:
    """A UTC instant as buyers and operators read it: 2026-11-22T10:00:10Z."""
    return at.isoformat().replace("+00:00", "Z")
