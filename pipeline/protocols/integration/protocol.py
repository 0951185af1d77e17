"""A buyer's own API as a buyer protocol: requests rendered from templates, answers read by rules."""
from __future__ import annotations

import base64

from jinja2 import TemplateError

from pipeline.domain.instants import iso
from pipeline.domain.money import from_cents
from pipeline.protocols import signing
from pipeline.protocols.integration import templates as tpl
from pipeline.protocols.integration.reading import AnswerReader, Unreadable, buyer_text, price_cents
from pipeline.protocols.interface import Answer, Outgoing, PostResult
from pipeline.protocols.native import webhook_id

CONTENT_TYPES = {"json": "application/json", "xml": "application/xml",
                 "form": "application/x-www-form-urlencoded"}
MASK = "***"


def _why(exc: Exception, where: bool = True) -> str:
    """A render failure in words that carry no lead value (only our own messages do)."""
    if isinstance(exc, (TemplateError, tpl.Problem)):
        text = buyer_text(getattr(exc, "message", None) or str(exc), 200) or type(exc).__name__
    else:
        text = type(exc).__name__
    at = getattr(exc, "where", None) if where else None
    return f"{at}: {text}" if at else text


class Call:
    """One request (ping, pre-ping or post) of an integration, compiled once."""

    def __init__(self, spec: dict, names: frozenset[str], where: str, problems: list[str]):
        self.method, self.format = spec.get("method", "POST"), spec.get("format", "json")
        self.url = tpl.Piece(tpl.URL, spec["url"], names, f"{where}.url", problems)
        self.headers = {k: tpl.Piece(tpl.HEADER, v, names, f"{where}.headers.{k}", problems)
                        for k, v in (spec.get("headers") or {}).items()}
        auth = spec.get("auth") or {}
        self.auth_type = auth.get("type")
        self.auth = {k: tpl.Piece(tpl.HEADER, v, names, f"{where}.auth.{k}", problems)
                     for k, v in auth.items() if k in ("token", "username", "password", "value")}
        self.auth_header = auth.get("name")
        body = spec.get("body")
        if self.format == "json":
            self.body = tpl.compile_tree(body, names, f"{where}.body", problems)
        elif self.format == "xml":
            self.body = tpl.Piece(tpl.XML, str(body), names, f"{where}.body", problems)
        else:
            self.body = {k: tpl.Piece(tpl.TEXT, tpl._text(v), names, f"{where}.body.{k}", problems)
                         for k, v in (body or {}).items()}
        self.reader = AnswerReader(spec.get("answer") or {}, f"{where}.answer", problems)
        self.reads = bool(spec.get("answer"))

    def request(self, context: dict) -> Outgoing:
        """Raises on a template that cannot render for this lead (the caller makes it a pass)."""
        url = self.url.render(context)
        headers = {k: p.render(context) for k, p in self.headers.items()}
        if self.auth_type == "bearer":
            headers["Authorization"] = f"Bearer {self.auth['token'].render(context)}"
        elif self.auth_type == "basic":
            pair = f"{self.auth['username'].render(context)}:{self.auth['password'].render(context)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        elif self.auth_type == "header":
            headers[self.auth_header] = self.auth["value"].render(context)
        if self.format == "json":
            body = tpl.json_bytes(tpl.render_tree(self.body, context))
        elif self.format == "xml":
            body = self.body.render(context).encode()
        else:
            fields = tpl.form_bytes({k: p.render(context) for k, p in self.body.items()})
            if self.format == "query":
                url, body = f"{url}{'&' if '?' in url else '?'}{fields}" if fields else url, b""
            else:
                body = fields.encode()
        if self.format in CONTENT_TYPES and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = CONTENT_TYPES[self.format]
        return Outgoing(self.method, url, body, headers)


class IntegrationProtocol:
    """The buyer-protocol interface over a buyer's integration (see the README's format)."""

    def __init__(self, buyer_id: str, integration: dict, credentials: dict, *, bid_cents: int | None,
                 secret: str | None, problems: list[str] | None = None, where: str = "integration"):
        problems = [] if problems is None else problems
        self.buyer_id, self.bid_cents, self.secret = buyer_id, bid_cents, secret
        self.credentials = dict(credentials or {})
        self.calls: dict[str, Call] = {}
        self.broken: set[str] = set()       # calls that did not compile
        for kind, names in (("ping", tpl.PING_NAMES), ("pre_ping", tpl.PING_NAMES), ("post", tpl.POST_NAMES)):
            if integration.get(kind):
                before = len(problems)
                self.calls[kind] = Call(integration[kind], names, f"{where}.{kind}", problems)
                if len(problems) > before:
                    self.broken.add(kind)
        self.pings, self.pre_pings = "ping" in self.calls, "pre_ping" in self.calls
        self.problems = problems

    # ---- the facts a template sees -------------------------------------------------------

    def ping_context(self, facts: dict, credentials: dict | None = None) -> dict:
        return {"lead_id": str(facts["lead_id"]), "ping_id": str(facts["ping_id"]),
                "vertical": facts["vertical"], "score": facts["score"], "cycle": facts["cycle"],
                "geo": facts["geo"], "qualifiers": facts["qualifiers"],
                "source": facts.get("source") or {}, "bid": from_cents(facts.get("bid_cents")),
                "expires_at": iso(facts["expires_at"]) if facts.get("expires_at") else None,
                "credentials": self.credentials if credentials is None else credentials}

    def post_context(self, facts: dict, credentials: dict | None = None) -> dict:
        lead, consent = facts["lead"], facts.get("consent") or {}
        price = from_cents(facts["price_cents"])
        submitted = (lead.get("form") or {}).get("submitted_at") or (
            iso(lead["created_at"]) if lead.get("created_at") else None)
        return {"lead_id": str(lead["id"]), "ping_id": str(facts["ping_id"]),
                "ping_ref": facts.get("ping_ref"), "vertical": lead["vertical"], "score": lead["score"],
                "cycle": lead.get("cycle"), "geo": (lead.get("facts") or {}).get("geo") or {},
                "qualifiers": lead["qualifiers"], "signals": lead.get("signals") or {},
                "source": lead.get("source") or {}, "contact": lead["contact"], "consent": consent,
                "price": price, "bid": price, "expires_at": None, "submitted_at": submitted,
                "credentials": self.credentials if credentials is None else credentials}

    def masked(self) -> dict:
        return dict.fromkeys(self.credentials, MASK)

    def _mask(self, text: str | None) -> str | None:
        """A buyer that echoes a credential back does not get it into a reason."""
        if text:
            for value in self.credentials.values():
                if value and len(value) >= 4 and value in text:
                    text = text.replace(value, MASK)
        return text

    # ---- requests ------------------------------------------------------------------------

    def build(self, kind: str, context: dict, lead_id: str, now: int) -> Outgoing:
        out = self.calls[kind].request(context)
        headers = dict(out.headers)
        if kind == "post":
            headers["Idempotency-Key"] = lead_id
        if self.secret:
            headers.update(signing.sign_headers(self.secret, webhook_id(lead_id, self.buyer_id, kind),
                                                now, out.body))
        return Outgoing(out.method, out.url, out.body, headers)

    def ping(self, facts: dict, now: int) -> Outgoing | Answer:
        if not self.pings:
            # A direct post: no ping API, so the buyer takes its turn at its standing bid.
            return Answer("accept", bid_cents=self.bid_cents, reason="direct post: its post answer decides",
                          latency_ms=0)
        try:
            return self.build("ping", self.ping_context(facts), str(facts["lead_id"]), now)
        except Exception as exc:        # a protocol never raises: a request not built is a pass
            return Answer("error", reason=f"integration: ping not built: {_why(exc)}", latency_ms=0)

    def pre_ping(self, facts: dict, now: int) -> Outgoing | Answer:
        try:
            return self.build("pre_ping", self.ping_context(facts), str(facts["lead_id"]), now)
        except Exception as exc:
            return Answer("ineligible", reason=f"integration: pre-ping not built: {_why(exc)}", latency_ms=0)

    def post(self, facts: dict, now: int) -> Outgoing | PostResult:
        try:
            return self.build("post", self.post_context(facts), str(facts["lead"]["id"]), now)
        except Exception as exc:
            return PostResult("rejected", f"integration: post not built: {_why(exc)}")

    # ---- answers -------------------------------------------------------------------------

    def _read(self, kind: str, body: bytes):
        """(reading, None) or (None, why it cannot be read)."""
        try:
            return self.calls[kind].reader.read(body), None
        except Unreadable as exc:
            return None, f"unreadable answer: {exc}"
        except Exception as exc:        # a path that fails on this document: still a value
            return None, f"unreadable answer: {type(exc).__name__}"

    def read_ping(self, status: int, body: bytes, latency_ms: int) -> Answer:
        if not 200 <= status < 300:
            return Answer("error", reason=f"http_{status}", latency_ms=latency_ms)
        reading, why = self._read("ping", body)
        if reading is None:
            return Answer("error", reason=why, latency_ms=latency_ms)
        reader = self.calls["ping"].reader
        if not reading.accepted:
            return Answer("reject", ref=self._mask(reading.ref), latency_ms=latency_ms,
                          reason=self._mask(reader.refusal(reading)))
        if reading.bid is not None:
            bid = price_cents(reading.bid)
            if bid is None:
                return Answer("error", reason=f"invalid bid: {self._mask(buyer_text(reading.bid, 40))}",
                              latency_ms=latency_ms)
        elif self.bid_cents is not None:
            bid = self.bid_cents
        else:
            return Answer("error", reason="missing_bid", latency_ms=latency_ms)
        return Answer("accept", bid_cents=bid, ref=self._mask(reading.ref), latency_ms=latency_ms)

    def read_pre_ping(self, status: int, body: bytes, latency_ms: int) -> Answer:
        if not 200 <= status < 300:
            return Answer("ineligible", reason=f"bad_answer_{status}", latency_ms=latency_ms)
        reading, why = self._read("pre_ping", body)
        if reading is None:
            return Answer("ineligible", reason=why, latency_ms=latency_ms)
        if not reading.accepted:
            return Answer("ineligible", latency_ms=latency_ms,
                          reason=self._mask(self.calls["pre_ping"].reader.refusal(reading)))
        return Answer("eligible", latency_ms=latency_ms)

    def read_post(self, status: int, body: bytes, latency_ms: int) -> PostResult:
        """2xx read by the answer rules (none: accepted); 4xx rejected; 5xx retried."""
        if 400 <= status < 500:
            return PostResult("rejected", f"http_{status}", status, latency_ms)
        if not 200 <= status < 300:
            return PostResult("retry", f"http_{status}", status, latency_ms)
        if not self.calls["post"].reads:
            return PostResult("accepted", None, status, latency_ms)
        reading, why = self._read("post", body)
        if reading is None:
            return PostResult("rejected", why, status, latency_ms)
        if not reading.accepted:
            return PostResult("rejected", self._mask(self.calls["post"].reader.refusal(reading)),
                              status, latency_ms)
        return PostResult("accepted", None, status, latency_ms)


class BrokenProtocol:
    """A buyer whose integration does not compile (tree load refuses this; a stale row might not)."""
    pings, pre_pings = True, False

    def __init__(self, why: str):
        self.why = f"integration does not compile: {why}"[:200]

    def ping(self, facts, now):
        return Answer("error", reason=self.why, latency_ms=0)

    pre_ping = ping

    def read_ping(self, status, body, latency_ms):
        return Answer("error", reason=self.why, latency_ms=latency_ms)

    read_pre_ping = read_ping

    def post(self, facts, now):
        return PostResult("rejected", self.why)

    def read_post(self, status, body, latency_ms):
        return PostResult("rejected", self.why, status, latency_ms)
