"""The buyer wire protocol: ping, pre-ping and post bodies, and what their answers mean."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from pipeline.domain.instants import iso
from pipeline.domain.money import as_number, parse_bid

NAMESPACE = uuid.UUID("6f1c2a52-94a1-4c57-9a56-2f0d3c1b7e11")


@dataclass(frozen=True)
class Answer:
    """What a buyer said to a ping, after translation: the value the award reads."""
    outcome: str              # accept, reject, timeout, error, late; pre-ping: eligible, ineligible
    bid_cents: int | None = None
    ref: str | None = None
    reason: str | None = None
    latency_ms: int | None = None


@dataclass(frozen=True)
class PostResult:
    outcome: str              # accepted, rejected, retry
    reason: str | None = None
    http_status: int | None = None
    latency_ms: int | None = None


def ping_id(auction_id: str, buyer_id: str, kind: str = "ping") -> uuid.UUID:
    """Stable for one auction, buyer and kind: a re-driven ping shard reuses it."""
    return uuid.uuid5(NAMESPACE, f"{auction_id}:{buyer_id}:{kind}")


def webhook_id(lead_id: str, buyer_id: str, kind: str) -> str:
    """Stable for one lead, buyer and kind (SPEC §6), so a retry carries the same id."""
    return "msg_" + uuid.uuid5(NAMESPACE, f"{lead_id}:{buyer_id}:{kind}").hex


def dumps(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def ping_body(lead: dict, *, ping_id: str, cycle: int, bid_cents: int | None,
              expires_at: datetime) -> dict:
    """The ping: no name, email, phone, street address or IP (SPEC §6)."""
    return {
        "ping_id": str(ping_id), "lead_id": str(lead["lead_id"]), "vertical": lead["vertical"],
        "score": lead["score"], "cycle": cycle,
        "geo": {"zip": lead["geo"]["zip"], "city": lead["geo"]["city"], "state": lead["geo"]["state"]},
        "qualifiers": lead["qualifiers"], "bid": as_number(bid_cents),
        "expires_at": iso(expires_at),
    }


def pre_ping_body(ping: dict, phone_sha256: str | None, email_sha256: str | None) -> dict:
    return {**ping, "phone_sha256": phone_sha256, "email_sha256": email_sha256}


def read_ping_answer(status: int, body: bytes, standing_bid_cents: int | None,
                     latency_ms: int) -> Answer:
    """Anything but a clear 2xx JSON accept or reject is a pass, with its reason."""
    if not 200 <= status < 300:
        return Answer("error", reason=f"http_{status}", latency_ms=latency_ms)
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return Answer("error", reason="invalid_json", latency_ms=latency_ms)
    if not isinstance(doc, dict) or not isinstance(doc.get("accept"), bool):
        return Answer("error", reason="invalid_answer", latency_ms=latency_ms)
    ref = doc.get("ref")
    ref = str(ref)[:200] if isinstance(ref, (str, int)) and not isinstance(ref, bool) else None
    if not doc["accept"]:
        reason = doc.get("reason")
        return Answer("reject", ref=ref, latency_ms=latency_ms,
                      reason=str(reason)[:200] if isinstance(reason, str) else None)
    if "bid" in doc and doc["bid"] is not None:
        bid = parse_bid(doc["bid"])
        if bid is None:
            return Answer("error", reason="invalid_bid", latency_ms=latency_ms)
    elif standing_bid_cents is not None:
        bid = standing_bid_cents
    else:
        return Answer("error", reason="missing_bid", latency_ms=latency_ms)
    return Answer("accept", bid_cents=bid, ref=ref, latency_ms=latency_ms)


def read_pre_ping_answer(status: int, body: bytes, latency_ms: int) -> Answer:
    try:
        doc = json.loads(body) if 200 <= status < 300 else None
    except (ValueError, UnicodeDecodeError):
        doc = None
    if isinstance(doc, dict) and doc.get("eligible") is True:
        return Answer("eligible", latency_ms=latency_ms)
    return Answer("ineligible", latency_ms=latency_ms,
                  reason="said_no" if isinstance(doc, dict) else f"bad_answer_{status}")


def post_body(lead: dict, consent: dict, *, ping_id: str, ping_ref: str | None,
              price_cents: int) -> dict:
    """The full lead for the winner (SPEC §6)."""
    return {
        "lead_id": str(lead["id"]), "ping_id": str(ping_id), "ping_ref": ping_ref,
        "price": as_number(price_cents), "vertical": lead["vertical"], "score": lead["score"],
        "signals": lead["signals"], "contact": lead["contact"], "qualifiers": lead["qualifiers"],
        "consent": consent, "source": lead["source"],
        "submitted_at": (lead.get("form") or {}).get("submitted_at")
        or iso(lead["created_at"]),
    }


def read_post_answer(status: int, body: bytes, latency_ms: int) -> PostResult:
    """2xx accepted unless the body says accepted:false; 4xx rejected; 5xx retried."""
    if 200 <= status < 300:
        try:
            doc = json.loads(body) if body.strip() else {}
        except (ValueError, UnicodeDecodeError):
            doc = {}
        if isinstance(doc, dict) and doc.get("accepted") is False:
            reason = doc.get("reason")
            return PostResult("rejected", str(reason)[:200] if reason else "declined", status, latency_ms)
        return PostResult("accepted", None, status, latency_ms)
    if 400 <= status < 500:
        return PostResult("rejected", f"http_{status}", status, latency_ms)
    return PostResult("retry", f"http_{status}", status, latency_ms)
