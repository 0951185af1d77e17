"""The native buyer protocol: ping, pre-ping and post bodies, and what their answers mean."""
from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from functools import lru_cache

from pipeline.domain import ids
from pipeline.domain.buyers import Buyer
from pipeline.domain.instants import iso
from pipeline.domain.money import as_number
from pipeline.protocols import answers, signing
from pipeline.protocols.interface import Answer, Outgoing, PostResult

__all__ = ["Answer", "PostResult", "NativeProtocol"]

NAMESPACE = uuid.UUID("6f1c2a52-94a1-4c57-9a56-2f0d3c1b7e11")


def ping_id(auction_id: str, buyer_id: str, kind: str = "ping") -> uuid.UUID:
    """Stable for one auction, buyer and kind: a re-driven ping shard reuses it."""
    return _named(f"{auction_id}:{buyer_id}:{kind}")


@lru_cache(maxsize=8192)
def _named(name: str) -> uuid.UUID:
    # A ping's id is asked for when it is sent and again when its row is written.
    return ids.from_bytes(_uuid5_bytes(name))


def webhook_id(lead_id: str, buyer_id: str, kind: str) -> str:
    """Stable for one lead, buyer and kind, so a retry carries the same id."""
    return "msg_" + _uuid5_hex(f"{lead_id}:{buyer_id}:{kind}")


_NAMESPACE_BYTES = NAMESPACE.bytes


def _uuid5_bytes(name: str) -> bytearray:
    """uuid.uuid5(NAMESPACE, name).bytes, computed as uuid5 does, without its checks of the
    arguments (uuid5 costs ~4.5 us, this ~1)."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50          # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80          # RFC 4122 variant
    return digest


def _uuid5_hex(name: str) -> str:
    return _uuid5_bytes(name).hex()


# One encoder for every body: json.dumps with options builds a new one per call. A body is built
# here from JSON read from PostgreSQL, never circular: no check for it.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False).encode


def dumps(body: dict) -> bytes:
    return _encode(body).encode()


def ping_body(lead: dict, *, ping_id: str, cycle: int, bid_cents: int | None,
              expires_at: datetime) -> dict:
    """The ping: no name, email, phone, street address or IP."""
    return {
        "ping_id": str(ping_id), "lead_id": str(lead["lead_id"]), "vertical": lead["vertical"],
        "score": lead["score"], "cycle": cycle,
        "geo": {"zip": lead["geo"]["zip"], "city": lead["geo"]["city"], "state": lead["geo"]["state"]},
        "qualifiers": lead["qualifiers"], "bid": as_number(bid_cents),
        "expires_at": _iso_of_deadline(expires_at),
    }


_deadline_iso: tuple[datetime, str] | None = None
_quote = json.encoder.encode_basestring      # a str as the encoder writes it (ensure_ascii off)


# The part of a ping's text that is the same for every buyer of an auction (its lead, cycle
# and deadline), kept with the very objects it was written from: the buyers of one auction are
# pinged with one view (its dicts built for that auction's ping task, never changed) and one
# deadline. Identity, not equality: 70 == 70.0 == True, and equal datetimes with other offsets,
# write other texts.
_lead_part: tuple | None = None


def _lead_texts(lead: dict, cycle: int, expires_at: datetime) -> tuple[str, str]:
    """ping_body's text between the ping id and the bid, and after the bid (to the end)."""
    global _lead_part
    kept = _lead_part                  # one read: another thread may replace it meanwhile
    if (kept is not None and kept[0] is lead["lead_id"] and kept[1] is lead["vertical"]
            and kept[2] is lead["score"] and kept[3] is cycle and kept[4] is lead["geo"]
            and kept[5] is lead["qualifiers"] and kept[6] is expires_at):
        return kept[7], kept[8]
    geo = lead["geo"]
    middle = _encode({"lead_id": str(lead["lead_id"]), "vertical": lead["vertical"],
                      "score": lead["score"], "cycle": cycle,
                      "geo": {"zip": geo["zip"], "city": geo["city"], "state": geo["state"]},
                      "qualifiers": lead["qualifiers"]})
    texts = ("," + middle[1:-1] + ',"bid":',
             ',"expires_at":' + _encode(_iso_of_deadline(expires_at)) + "}")
    _lead_part = (lead["lead_id"], lead["vertical"], lead["score"], cycle, geo, lead["qualifiers"],
                  expires_at, *texts)
    return texts


def ping_bytes(lead: dict, *, ping_id: str, cycle: int, bid_text: str, expires_at: datetime) -> bytes:
    """dumps(ping_body(...)), byte for byte, the lead's part written once per auction:
    ``bid_text`` is the bid as the encoder writes it (bid_json)."""
    middle, tail = _lead_texts(lead, cycle, expires_at)
    written = ids.text(ping_id) if isinstance(ping_id, uuid.UUID) else str(ping_id)
    return ('{"ping_id":' + _quote(written) + middle + bid_text + tail).encode()


def bid_json(bid_cents: int | None) -> str:
    return _encode(as_number(bid_cents))


def _iso_of_deadline(at: datetime) -> str:
    """iso(at), written once for the buyers of one auction: they are pinged with the very same
    (immutable) datetime, so the last one's text is kept with it."""
    global _deadline_iso
    kept = _deadline_iso                # one read: another thread may replace it meanwhile
    if kept is not None and kept[0] is at:
        return kept[1]
    text = iso(at)
    _deadline_iso = (at, text)
    return text


def pre_ping_body(ping: dict, phone_sha256: str | None, email_sha256: str | None) -> dict:
    """The ping, plus the contact hashes when given (only to a buyer that opted in)."""
    hashes = {"phone_sha256": phone_sha256, "email_sha256": email_sha256}
    return {**ping, **{k: v for k, v in hashes.items() if v is not None}}


def read_ping_answer(status: int, body: bytes, standing_bid_cents: int | None,
                     latency_ms: int) -> Answer:
    """Anything but a clear 2xx JSON accept or reject is a pass, with its reason; never raises."""
    try:
        return _read_ping_answer(status, body, standing_bid_cents, latency_ms)
    except Exception as exc:           # one buyer's answer must never cost another's
        return Answer("error", reason=f"unreadable_answer:{type(exc).__name__}", latency_ms=latency_ms)


def _read_ping_answer(status: int, body: bytes, standing_bid_cents: int | None,
                      latency_ms: int) -> Answer:
    if not 200 <= status < 300:
        return Answer("error", reason=f"http_{status}", latency_ms=latency_ms)
    doc, unreadable = answers.read_json(body)
    if unreadable:
        return Answer("error", reason=unreadable, latency_ms=latency_ms)
    if not isinstance(doc, dict) or not isinstance(doc.get("accept"), bool):
        return Answer("error", reason="invalid_answer", latency_ms=latency_ms)
    ref = answers.safe_text(doc.get("ref"))
    if not doc["accept"]:
        return Answer("reject", ref=ref, latency_ms=latency_ms, reason=answers.safe_text(doc.get("reason")))
    if "bid" in doc and doc["bid"] is not None:
        bid = answers.read_bid(doc["bid"])
        if bid is None:
            return Answer("error", reason="invalid_bid", latency_ms=latency_ms)
    elif standing_bid_cents is not None:
        bid = standing_bid_cents
    else:
        return Answer("error", reason="missing_bid", latency_ms=latency_ms)
    return Answer("accept", bid_cents=bid, ref=ref, latency_ms=latency_ms)


def read_pre_ping_answer(status: int, body: bytes, latency_ms: int) -> Answer:
    """Only a 2xx ``{"eligible": true}`` is eligible; anything else, however broken, is not."""
    doc, unreadable = answers.read_json(body) if 200 <= status < 300 else (None, f"bad_answer_{status}")
    if isinstance(doc, dict) and doc.get("eligible") is True:
        return Answer("eligible", latency_ms=latency_ms)
    return Answer("ineligible", latency_ms=latency_ms,
                  reason="said_no" if isinstance(doc, dict) else unreadable or "invalid_answer")


def post_body(lead: dict, consent: dict, *, ping_id: str, ping_ref: str | None,
              price_cents: int) -> dict:
    """The full lead for the winner."""
    return {
        "lead_id": str(lead["id"]), "ping_id": str(ping_id), "ping_ref": ping_ref,
        "price": as_number(price_cents), "vertical": lead["vertical"], "score": lead["score"],
        "signals": lead["signals"], "contact": lead["contact"], "qualifiers": lead["qualifiers"],
        "consent": consent, "source": lead["source"],
        "submitted_at": (lead.get("form") or {}).get("submitted_at")
        or iso(lead["created_at"]),
    }


def read_post_failure(failure: str, status: int | None, latency_ms: int) -> PostResult:
    """No answer we could read: an answer too big to read is a rejection; a time-out or a
    connection fault may have reached the buyer, so the same buyer is tried again."""
    if failure == "too_large":
        return PostResult("rejected", f"unreadable_answer:{failure}", status, latency_ms)
    return PostResult("retry", failure, status, latency_ms)


def read_post_answer(status: int, body: bytes, latency_ms: int) -> PostResult:
    """2xx accepted unless the body says accepted:false (or cannot be read); 4xx rejected;
    5xx retried. Never raises."""
    if 200 <= status < 300:
        if not body.strip():
            return PostResult("accepted", None, status, latency_ms)
        doc, unreadable = answers.read_json(body)
        if unreadable:
            # An answer we cannot read is no acceptance we could bill for.
            return PostResult("rejected", f"unreadable_answer:{unreadable}", status, latency_ms)
        if isinstance(doc, dict) and doc.get("accepted") is False:
            return PostResult("rejected", answers.safe_text(doc.get("reason")) or "declined", status,
                              latency_ms)
        return PostResult("accepted", None, status, latency_ms)
    if 400 <= status < 500:
        return PostResult("rejected", f"http_{status}", status, latency_ms)
    return PostResult("retry", f"http_{status}", status, latency_ms)


class NativeProtocol:
    """The native protocol behind the buyer-protocol interface: signed JSON to the buyer's URLs."""
    pings = True

    def __init__(self, buyer: Buyer):
        self.buyer = buyer
        self.pre_pings = bool(buyer.pre_ping_url)
        # Loaded before secrets were checked: such a buyer could not verify us; send it nothing.
        self.unsigned = signing.secret_problem(buyer.secret) is not None
        # Kept per buyer version (a protocol is made per tree snapshot's Buyer): its URL, its
        # secret as text, and its standing bid as the ping writes it (with the very value).
        self.secret, self.ping_url = str(buyer.secret), str(buyer.ping_url)
        self.bid: tuple[object, str] = (buyer.bid_cents, bid_json(buyer.bid_cents))

    def _signed_raw(self, url: str, raw: bytes, lead_id: str, kind: str, now: int,
                    extra: dict | None = None) -> Outgoing:
        msg_id = webhook_id(lead_id, self.buyer.id, kind)
        signed = {"webhook-id": msg_id, "webhook-timestamp": str(now),
                  "webhook-signature": signing.signature(self.secret, msg_id, now, raw)}
        return Outgoing("POST", url, raw, {**extra, **signed} if extra else signed)

    def _signed(self, url: str, body: dict, lead_id: str, kind: str, now: int,
                extra: dict | None = None) -> Outgoing:
        return self._signed_raw(url, dumps(body), lead_id, kind, now, extra)

    def ping(self, facts: dict, now: int) -> Outgoing | Answer:
        if self.unsigned:
            return Answer("error", reason="invalid_secret", latency_ms=0)
        bid_cents, bid_text = self.bid
        if facts["bid_cents"] is not bid_cents:
            bid_text = bid_json(facts["bid_cents"])
        raw = ping_bytes(facts, ping_id=facts["ping_id"], cycle=facts["cycle"], bid_text=bid_text,
                         expires_at=facts["expires_at"])
        return self._signed_raw(self.ping_url, raw, facts["lead_id"], "ping", now)

    def read_ping(self, status: int, body: bytes, latency_ms: int) -> Answer:
        return read_ping_answer(status, body, self.buyer.bid_cents, latency_ms)

    def pre_ping(self, facts: dict, now: int) -> Outgoing | Answer:
        if self.unsigned:
            return Answer("ineligible", reason="invalid_secret", latency_ms=0)
        body = ping_body(facts, ping_id=facts["ping_id"], cycle=facts["cycle"],
                         bid_cents=facts["bid_cents"], expires_at=facts["expires_at"])
        body = pre_ping_body(body, facts.get("phone_sha256"), facts.get("email_sha256"))
        return self._signed(str(self.buyer.pre_ping_url), body, facts["lead_id"], "pre_ping", now)

    def read_pre_ping(self, status: int, body: bytes, latency_ms: int) -> Answer:
        return read_pre_ping_answer(status, body, latency_ms)

    def post(self, facts: dict, now: int) -> Outgoing | PostResult:
        if self.unsigned:
            return PostResult("rejected", "invalid_secret")
        lead = facts["lead"]
        body = post_body(lead, facts["consent"], ping_id=facts["ping_id"], ping_ref=facts["ping_ref"],
                         price_cents=facts["price_cents"])
        return self._signed(str(self.buyer.post_url), body, str(lead["id"]), "post", now,
                            {"Idempotency-Key": str(lead["id"])})

    def read_post(self, status: int, body: bytes, latency_ms: int) -> PostResult:
        return read_post_answer(status, body, latency_ms)
