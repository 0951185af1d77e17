"""The records the stages work on: a lead, the network's settings, a tier, an auction, a ping.

The store loads them from PostgreSQL rows (``from_row``, which takes the columns it knows and
leaves the rest); the stages read attributes and compare enum members. Status and Outcome are
StrEnums: a member *is* its string, so the database, the API, the reports and the timeline
store and show the same words as before.

A query that reads only some columns of a lead (the validate, score and deliver stages' claims,
a shard's ping context, the sweep's stuck leads) gives a Lead whose other fields are Unread:
any use of one raises UnreadField, where a default (no score, no facts, cycle 0) would be taken
for the truth. Other records keep their defaults for the columns a query leaves out.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Self

from pipeline.domain.modes import Mode


class Status(StrEnum):
    """Where a lead is in its journey (leads.status)."""
    RECEIVED = "received"
    VALIDATED = "validated"
    SCORED = "scored"
    AUCTIONING = "auctioning"
    DELIVERING = "delivering"
    HELD = "held"
    SOLD = "sold"
    REJECTED = "rejected"
    UNSOLD = "unsold"


# The statuses a lead ends in, and the ones the sweep re-drives when a lead stops moving.
TERMINAL = (Status.SOLD, Status.REJECTED, Status.UNSOLD)
MOVING = (Status.RECEIVED, Status.VALIDATED, Status.SCORED, Status.AUCTIONING, Status.DELIVERING)


class Outcome(StrEnum):
    """What became of one ping (pings.outcome); a pre-ping answers eligible or ineligible."""
    ACCEPT = "accept"
    REJECT = "reject"
    TIMEOUT = "timeout"
    ERROR = "error"
    LATE = "late"                    # an accept after the auction tier closed
    NOT_PINGED = "not_pinged"        # never sent (its shard never started, or no time was left)
    POST_REJECTED = "post_rejected"  # won, then refused (or never confirmed) the post
    ELIGIBLE = "eligible"
    INELIGIBLE = "ineligible"


_Layout = tuple[tuple[str, ...], frozenset[str], dict[str, Any], dict[str, Callable[[], Any]]]
_LAYOUTS: dict[type, _Layout] = {}


def _layout(cls: type) -> _Layout:
    """A record class's field names, those without a default, the defaults and the factories
    (read once per class)."""
    layout = _LAYOUTS.get(cls)
    if layout is None:
        names: list[str] = []
        required: set[str] = set()
        defaults: dict[str, Any] = {}
        factories: dict[str, Callable[[], Any]] = {}
        for f in fields(cls):
            names.append(f.name)
            if f.default is not MISSING:
                defaults[f.name] = f.default
            elif f.default_factory is not MISSING:
                factories[f.name] = f.default_factory
            else:
                required.add(f.name)
        layout = _LAYOUTS[cls] = (tuple(names), frozenset(required), defaults, factories)
    return layout


class UnreadField(RuntimeError):
    """A field of a record was used that the query it came from did not read."""


class Unread:
    """The value of a field its record's query did not read: using it (truth, equality, order,
    iteration, indexing, arithmetic, text) raises UnreadField; JSON and psycopg2 refuse it as a
    value they cannot encode. Its repr names the field, so a record still prints."""

    __slots__ = ("field",)

    def __init__(self, field_name: str) -> None:
        object.__setattr__(self, "field", field_name)

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise UnreadField(f"{self.field} was not read by the query this record came from"
                          " (read it there)")

    __bool__ = __len__ = __iter__ = __contains__ = __getitem__ = __call__ = _refuse
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __hash__ = _refuse
    __str__ = __format__ = __int__ = __float__ = __index__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _refuse

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):              # copy, pickle and the like look for hooks
            raise AttributeError(name)
        self._refuse()

    def __setattr__(self, name: str, value: Any) -> None:
        self._refuse()

    def __repr__(self) -> str:
        return f"<{self.field}: not read>"

    def __reduce__(self) -> tuple:
        return (Unread, (self.field,))


_UNREAD: dict[str, Unread] = {}


def _unread(name: str) -> Unread:
    value = _UNREAD.get(name)
    if value is None:
        value = _UNREAD[name] = Unread(name)
    return value


class _Row:
    """``from_row``: a record from a database row (any mapping), by field name."""

    _enums: ClassVar[dict[str, type[StrEnum]]] = {}
    # True: a field the row lacks is Unread, not its default (the Lead: see the module's doc).
    _refuse_unread: ClassVar[bool] = False

    @classmethod
    def from_row(cls, row: Mapping[str, Any], **more: Any) -> Self:
        names, required, defaults, factories = _layout(cls)
        given = {**row, **more} if more else row
        if cls._refuse_unread:
            values = {name: given[name] for name in names if name in given}
            if not required <= values.keys():
                return cls(**values)      # raises as the constructor does
            if len(values) < len(names):
                values.update({name: _unread(name) for name in names if name not in values})
            for name, enum in cls._enums.items():
                if values[name] is not None and type(values[name]) is not Unread:
                    values[name] = enum(values[name])
        else:
            values = {**defaults, **{name: given[name] for name in names if name in given}}
            for name, enum in cls._enums.items():
                if values.get(name) is not None:
                    values[name] = enum(values[name])
            if not required <= values.keys():
                return cls(**values)      # raises as the constructor does
            for name, factory in factories.items():
                if name not in values:
                    values[name] = factory()
        # What the (frozen) dataclass's __init__ would do, without one object.__setattr__ a field:
        # the records have no __post_init__ and no slots.
        record = object.__new__(cls)
        record.__dict__.update(values)
        return record

    def as_dict(self) -> dict[str, Any]:
        """The record as the plain mapping the protocols and the scoring read (one level)."""
        return {name: getattr(self, name) for name in _layout(type(self))[0]}


@dataclass(frozen=True)
class Lead(_Row):
    """A lead as stored (leads): its status, what it holds, where its journey stands."""
    id: uuid.UUID
    vertical: str = ""
    status: Status | None = None
    contact: dict = field(default_factory=dict)       # personal data: the validate stage, the post
    qualifiers: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)
    form: dict | None = None
    facts: dict | None = None                        # what the validate stage learnt
    phone_sha256: str | None = None
    email_sha256: str | None = None
    score: int | None = None
    signals: dict | None = None
    reject_reasons: list[str] = field(default_factory=list)
    duplicate_of: uuid.UUID | None = None
    cycle: int = 0
    auction_id: uuid.UUID | None = None              # auctioning / delivering: its auction tier
    award_ping_id: uuid.UUID | None = None           # delivering: the bid being delivered
    next_run_at: datetime | None = None              # held: when its next cycle is due
    redrives: int = 0
    publisher_id: str | None = None
    status_at: datetime | None = None
    created_at: datetime | None = None

    _enums: ClassVar[dict[str, type[StrEnum]]] = {"status": Status}
    _refuse_unread: ClassVar[bool] = True


@dataclass(frozen=True)
class LeadStanding:
    """Where a lead stands, without what it holds: what settling a post reads of it."""
    status: Status
    award_ping_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Network(_Row):
    """The network's settings (the tree's `network`), in stored units."""
    score_floor: int
    bid_floor_cents: int
    auction_timeout_ms: int
    max_cycles: int
    rerun_interval_s: int
    duplicate_window_h: int
    stuck_after_s: int
    max_redrives: int
    max_post_buyers: int
    post_reject_pause_rate: float
    post_reject_pause_min_posts: int
    post_reject_pause_h: int


@dataclass(frozen=True)
class Tier(_Row):
    tier: int
    name: str
    mode: Mode
    active: bool = True
    last_winner: str | None = None                   # round robin: the rotation point

    _enums: ClassVar[dict[str, type[StrEnum]]] = {"mode": Mode}


@dataclass(frozen=True)
class Auction(_Row):
    """One tier's auction (or walk) for one lead in one cycle."""
    id: uuid.UUID
    lead_id: uuid.UUID
    cycle: int
    tier: int
    mode: Mode
    deadline_at: datetime
    buyer_ids: list[str]                             # in rank order
    shards: int = 1
    closed_at: datetime | None = None
    started_at: datetime | None = None
    first_ping_at: datetime | None = None
    timeout_ms: int | None = None
    skipped: list[dict] = field(default_factory=list)

    _enums: ClassVar[dict[str, type[StrEnum]]] = {"mode": Mode}


@dataclass(frozen=True)
class Ping(_Row):
    """One buyer's ping (or pre-ping) in an auction tier and its answer (pings)."""
    id: uuid.UUID
    lead_id: uuid.UUID
    buyer_id: str
    tier: int
    cycle: int
    rank: int
    outcome: Outcome
    kind: str = "ping"                               # ping, pre_ping
    auction_id: uuid.UUID | None = None
    bid_cents: int | None = None
    ref: str | None = None
    latency_ms: int | None = None
    reason: str | None = None
    at: datetime | None = None

    _enums: ClassVar[dict[str, type[StrEnum]]] = {"outcome": Outcome}


@dataclass(frozen=True)
class Passing:
    """A status a lead passes through inside a transaction that moves it on at once (scored,
    then auctioning): its timeline entry and columns go with the next move, one row version."""
    status: Status
    detail: dict | None
    columns: dict
