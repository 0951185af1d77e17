"""`tree load` checks every integration by rendering it against a sample lead of each vertical."""
from __future__ import annotations

import hashlib
import json
import random
import re
import uuid
from datetime import timedelta
from decimal import Decimal

import defusedxml.ElementTree as SafeXML
from marshmallow import ValidationError

from pipeline.domain import samples
from pipeline.domain.integration_schema import IntegrationSchema, credentials_field
from pipeline.domain.money import to_cents
from pipeline.domain.tree import buyers_by_id, url_problem
from pipeline.protocols.integration.protocol import IntegrationProtocol, _why

SAMPLE_SCORE = 75


def sample_facts(vertical: str, seed: int = 11) -> tuple[dict, dict]:
    """(ping facts, post facts) of a realistic sample lead of the vertical, as the pipeline has them."""
    payload = samples.make_lead(random.Random(f"{seed}:{vertical}"), vertical, now=samples.SAMPLE_NOW)
    return facts_from_payload(payload, f"pingtree-sample:{seed}:{vertical}")


def facts_from_payload(payload: dict, name: str = "pingtree-sample") -> tuple[dict, dict]:
    """(ping facts, post facts) from an intake payload, normalised the way validation stores it."""
    vertical = payload["vertical"]
    digits = re.sub(r"\D", "", str(payload["contact"].get("phone") or ""))[-10:]
    contact = dict(payload["contact"], email=str(payload["contact"].get("email") or "").lower(),
                   phone=f"+1{digits}" if digits else None)
    geo = {"zip": contact.get("zip"), "city": contact.get("city"), "state": contact.get("state")}
    lead_id = uuid.uuid5(uuid.NAMESPACE_URL, name)
    source = payload.get("source") or {}
    ping = {"lead_id": str(lead_id), "ping_id": str(uuid.uuid5(lead_id, "ping")), "vertical": vertical,
            "score": SAMPLE_SCORE, "cycle": 1, "geo": geo, "qualifiers": payload.get("qualifiers") or {},
            "source": {"publisher_id": source.get("publisher_id")}, "bid_cents": 2500,
            "expires_at": samples.SAMPLE_NOW + timedelta(seconds=10)}
    consent = dict(payload.get("consent") or {})
    consent["text_sha256"] = hashlib.sha256(str(consent.get("text", "")).encode()).hexdigest()
    lead = {"id": lead_id, "vertical": vertical, "score": SAMPLE_SCORE, "cycle": 1, "facts": {"geo": geo},
            "qualifiers": ping["qualifiers"], "signals": {"phone_valid": 1.0}, "source": source,
            "contact": contact, "form": payload.get("form"), "created_at": samples.SAMPLE_NOW}
    post = {"lead": lead, "consent": consent, "ping_id": ping["ping_id"], "ping_ref": "SAMPLE-REF-1",
            "price_cents": 2500}
    return ping, post


def _line(exc: Exception) -> str:
    """The template line a render failed on, from the traceback Jinja rewrites to template lines."""
    tb, line = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return f"line {line}: " if line else ""


def check_integration(integration: dict, credentials: dict, verticals, *, bid_cents, allow_private: bool,
                      where: str = "integration") -> list[str]:
    """Every problem of one integration: compile errors, then renders against each vertical's sample."""
    problems: list[str] = []
    protocol = IntegrationProtocol("check", integration, credentials, bid_cents=bid_cents, secret=None,
                                   problems=problems, where=where)
    for vertical in verticals:
        ping, post = sample_facts(vertical)
        contexts = {"ping": protocol.ping_context(ping), "pre_ping": protocol.ping_context(ping),
                    "post": protocol.post_context(post)}
        for kind, call in protocol.calls.items():
            label = f"{where}.{kind} (sample {vertical} lead)"
            try:
                out = call.request(contexts[kind])
            except Exception as exc:    # every template failure is reported, none raised
                at = getattr(exc, "where", None)
                at = f"{at} (sample {vertical} lead)" if at else label
                problems.append(f"{at}: {_line(exc)}{_why(exc, where=False)}")
                continue
            if kind in protocol.broken:
                continue                # its uncompiled pieces render as written: only renders count
            problem = url_problem(out.url, allow_private)
            problem = problem and f"the rendered URL: {problem}"
            if problem is None and call.format == "xml":
                try:
                    SafeXML.fromstring(out.body, forbid_dtd=True)
                except Exception as exc:
                    problem = f"the body is not well-formed XML: {exc}"
            if problem:
                problems.append(f"{label}: {problem}")
    return list(dict.fromkeys(problems))


def check_buyers(buyers: list[dict], verticals, allow_private: bool) -> dict[str, list[str]]:
    """Problems by buyer id, for the buyers of a checked tree that have an integration."""
    found = {}
    for buyer in buyers:
        if buyer.get("integration"):
            problems = check_integration(buyer["integration"], buyer.get("credentials") or {},
                                         [v for v in buyer["verticals"] if v in verticals],
                                         bid_cents=buyer.get("bid_cents"), allow_private=allow_private,
                                         where="integration")
            if problems:
                found[buyer["id"]] = problems
    return found


def check_raw_buyers(text: str, verticals, allow_private: bool) -> dict:
    """The same checks on a tree that failed elsewhere, so one load lists every problem:
    ``{"buyers": {buyer id (or place): {"integration": [problems]}}}``."""
    try:
        doc = json.loads(text, parse_float=Decimal)
        buyers = doc["buyers"]
    except (ValueError, KeyError, TypeError):
        return {}
    found = {}
    for i, buyer in enumerate(buyers if isinstance(buyers, list) else []):
        if not isinstance(buyer, dict) or not isinstance(buyer.get("integration"), dict):
            continue
        try:
            integration = IntegrationSchema().load(buyer["integration"])
            credentials = credentials_field().deserialize(buyer.get("credentials") or {})
            bid = to_cents(buyer["bid"]) if isinstance(buyer.get("bid"), (int, Decimal)) else None
        except (ValidationError, ArithmeticError):
            continue                    # its own errors are listed already
        listed = buyer["verticals"] if isinstance(buyer.get("verticals"), list) else []
        problems = check_integration(json.loads(json.dumps(integration, default=float)), credentials,
                                     [v for v in listed if v in verticals], bid_cents=bid,
                                     allow_private=allow_private, where="integration")
        if problems:
            found[i] = {"integration": problems}
    return buyers_by_id({"buyers": found}, buyers) if found else {}
