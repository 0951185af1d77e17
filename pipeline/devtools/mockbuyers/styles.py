"""How each simulated buyer style reads a request and writes its answer, and the integration that speaks it.

Styles: ``native`` (pingtree's own protocol), ``xml`` (an exchange: XML in, XML out, its PingId
back in the post), ``form`` (form posts with dotted names, JSON answers with the price as a
string, the ping's id back as TXID), ``json`` (its own JSON shape, a bearer token, an offer
like "$22.40", a token to echo), ``text`` (a GET query string, plain-text answers
ACCEPTED|9.50|REF-1 / REJECTED|cap) and ``direct`` (no ping API: a direct post at its
standing bid). The README's worked examples are these integrations.
"""
from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeXML


def _form(raw: bytes) -> dict:
    return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))


def _xml_fields(raw: bytes) -> dict | None:
    """Leaf elements by tag ("ContactData/ZipCode" -> "ZipCode"), from XML parsed without entities."""
    try:
        root = SafeXML.fromstring(raw, forbid_dtd=True)
    except Exception:
        return None
    return {el.tag: (el.text or "") for el in root.iter() if len(el) == 0}


def _json_doc(raw: bytes) -> dict | None:
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _price(value) -> float | None:
    try:
        return float(str(value).replace("$", "").replace(",", ""))
    except (TypeError, ValueError):
        return None


class Native:
    """pingtree's own protocol: signed JSON, {"accept": ..., "bid": ..., "ref": ...}."""
    content_type, pings, garbage = "application/json", True, b'{"accept": true, "bid": 3'

    def read_ping(self, raw: bytes, query: dict) -> dict | None:
        body = _json_doc(raw)
        if body is None:
            return None
        return {"lead_id": body.get("lead_id"), "ping_id": body.get("ping_id"), "cycle": body.get("cycle"),
                "api_key": None, "fields": body}

    def ping_answer(self, accept: bool, bid: float | None, ref: str, reason: str) -> bytes:
        if not accept:
            return json.dumps({"accept": False, "reason": reason}).encode()
        return json.dumps({"accept": True, "ref": ref, **({"bid": bid} if bid is not None else {})}).encode()

    def read_post(self, raw: bytes, query: dict) -> dict | None:
        body = _json_doc(raw)
        if body is None:
            return None
        consent = body.get("consent") if isinstance(body.get("consent"), dict) else {}
        contact = body.get("contact") if isinstance(body.get("contact"), dict) else {}
        return {"lead_id": body.get("lead_id"), "ping_id": body.get("ping_id"),
                "ping_ref": body.get("ping_ref"), "price": body.get("price"),
                "consent_text_sha256": consent.get("text_sha256"),
                "phone": contact.get("phone"), "has_contact": bool(contact), "api_key": None}

    def post_answer(self, accepted: bool, reason: str | None) -> bytes:
        return json.dumps({"accepted": True} if accepted else {"accepted": False, "reason": reason}).encode()


class Xml(Native):
    content_type, garbage = "application/xml", b"<PingResponse><Status>Accep"

    def read_ping(self, raw, query):
        f = _xml_fields(raw)
        return None if f is None else {"lead_id": f.get("LeadId"), "ping_id": None, "cycle": None,
                                       "api_key": f.get("ApiToken"), "fields": f}

    def ping_answer(self, accept, bid, ref, reason):
        if not accept:
            return (f"<PingResponse><Status>Rejected</Status><Reason>{escape(reason)}</Reason>"
                    "</PingResponse>").encode()
        price = f"<Price>{bid:.2f}</Price>" if bid is not None else ""
        return f"<PingResponse><Status>Accepted</Status>{price}<PingId>{ref}</PingId></PingResponse>".encode()

    def read_post(self, raw, query):
        f = _xml_fields(raw)
        return None if f is None else {
            "lead_id": f.get("LeadId"), "ping_id": None, "ping_ref": f.get("PingId"),
            "price": _price(f.get("Price")),
            "consent_text": f.get("Text"), "phone": f.get("Phone"), "has_contact": bool(f.get("FirstName")),
            "api_key": f.get("ApiToken")}

    def post_answer(self, accepted, reason):
        if accepted:
            return b"<PostResponse><Status>Success</Status></PostResponse>"
        return (f"<PostResponse><Status>Failure</Status><Message>{escape(reason)}</Message>"
                "</PostResponse>").encode()

    def integration(self, base: str) -> dict:
        return {
            "ping": {"url": f"{base}/ping", "format": "xml", "body": (
                "<Lead>\n  <ApiToken>{{ credentials.api_key }}</ApiToken>\n"
                "  <LeadId>{{ lead_id }}</LeadId>\n  <Vertical>{{ vertical | upper }}</Vertical>\n"
                "  <ContactData><ZipCode>{{ geo.zip }}</ZipCode>"
                "<State>{{ geo.state }}</State></ContactData>\n"
                "  <Score>{{ score }}</Score>\n</Lead>"),
                "answer": {"format": "xml", "accept": {"path": "/PingResponse/Status", "equals": "Accepted"},
                           "bid": {"path": "/PingResponse/Price"}, "ref": {"path": "/PingResponse/PingId"},
                           "reason": {"path": "/PingResponse/Reason"}}},
            "post": {"url": f"{base}/post", "format": "xml", "body": (
                "<Lead>\n  <ApiToken>{{ credentials.api_key }}</ApiToken>\n"
                "  <PingId>{{ ping_ref }}</PingId>\n  <LeadId>{{ lead_id }}</LeadId>\n  <ContactData>\n"
                "    <FirstName>{{ contact.first_name }}</FirstName>\n"
                "    <LastName>{{ contact.last_name }}</LastName>\n"
                "    <Email>{{ contact.email }}</Email>\n"
                "    <Phone>{{ contact.phone | phone('digits') }}</Phone>\n"
                "    <Address>{{ contact.address }}</Address>\n    <ZipCode>{{ contact.zip }}</ZipCode>\n"
                "  </ContactData>\n  <Consent>\n    <Text>{{ consent.text }}</Text>\n"
                "    <IpAddress>{{ consent.ip }}</IpAddress>\n"
                "    <Timestamp>{{ consent.timestamp }}</Timestamp>\n  </Consent>\n"
                "  <Price>{{ price }}</Price>\n</Lead>"),
                "answer": {"format": "xml", "accept": {"path": "/PostResponse/Status", "equals": "Success"},
                           "reason": {"path": "/PostResponse/Message"}}}}


class Form(Native):
    garbage = b'{"status": "ok", "price": '

    def read_ping(self, raw, query):
        f = _form(raw)
        return {"lead_id": f.get("Lead.Id"), "ping_id": None, "cycle": None, "api_key": f.get("Source.Key"),
                "fields": f}

    def ping_answer(self, accept, bid, ref, reason):
        if not accept:
            return json.dumps({"status": "rejected", "message": reason}).encode()
        return json.dumps({"status": "ok", "id": ref, **({"price": f"{bid:.2f}"} if bid is not None else {})}
                          ).encode()

    def read_post(self, raw, query):
        f = _form(raw)
        return {"lead_id": f.get("Lead.Id"), "ping_id": None, "ping_ref": f.get("TXID"),
                "price": _price(f.get("Lead.Price")), "consent_text": f.get("Lead.ConsentText"),
                "phone": f.get("Lead.Homephone"), "has_contact": bool(f.get("Lead.FirstName")),
                "api_key": f.get("Source.Key")}

    def post_answer(self, accepted, reason):
        return json.dumps({"status": "ok"} if accepted else {"status": "error", "message": reason}).encode()

    def integration(self, base: str) -> dict:
        return {
            "ping": {"url": f"{base}/ping", "format": "form", "body": {
                "Source.Key": "{{ credentials.api_key }}", "Lead.Id": "{{ lead_id }}",
                "Lead.Vertical": "{{ vertical }}", "Lead.Zip": "{{ geo.zip }}",
                "Lead.State": "{{ geo.state }}",
                "Lead.Homeowner": "{{ qualifiers.homeowner | default(none) | yesno(none='Unknown') }}"},
                "answer": {"format": "json", "accept": {"path": "status", "equals": "ok"},
                           "bid": {"path": "price"}, "ref": {"path": "id"}, "reason": {"path": "message"}}},
            "post": {"url": f"{base}/post", "format": "form", "body": {
                "Source.Key": "{{ credentials.api_key }}", "TXID": "{{ ping_ref }}",
                "Lead.Id": "{{ lead_id }}", "Lead.FirstName": "{{ contact.first_name }}",
                "Lead.LastName": "{{ contact.last_name }}", "Lead.Email": "{{ contact.email }}",
                "Lead.Homephone": "{{ contact.phone | phone('digits') }}",
                "Lead.Address": "{{ contact.address }}", "Lead.Zip": "{{ contact.zip }}",
                "Lead.ConsentText": "{{ consent.text }}", "Lead.IP": "{{ consent.ip }}",
                "Lead.Price": "{{ price | money }}"},
                "answer": {"format": "json", "accept": {"path": "status", "equals": "ok"},
                           "reason": {"path": "message"}}}}


class OwnJson(Native):
    garbage = b'{"result": {"decision": "acc'

    def read_ping(self, raw, query):
        body = _json_doc(raw)
        return None if body is None else {"lead_id": body.get("lead_ref"), "ping_id": None, "cycle": None,
                                          "api_key": query.get("_bearer"), "fields": body}

    def ping_answer(self, accept, bid, ref, reason):
        if not accept:
            return json.dumps({"result": {"decision": "decline", "why": reason}}).encode()
        offer = {"offer": f"${bid:.2f}"} if bid is not None else {}
        return json.dumps({"result": {"decision": "accept", "token": ref, **offer}}).encode()

    def read_post(self, raw, query):
        body = _json_doc(raw)
        if body is None:
            return None
        consumer = body.get("consumer") if isinstance(body.get("consumer"), dict) else {}
        consent = body.get("consent") if isinstance(body.get("consent"), dict) else {}
        return {"lead_id": body.get("lead_ref"), "ping_id": None, "ping_ref": body.get("token"),
                "price": body.get("price"), "consent_text": consent.get("text"),
                "phone": consumer.get("phone"),
                "has_contact": bool(consumer), "api_key": query.get("_bearer")}

    def post_answer(self, accepted, reason):
        return json.dumps({"accepted": True} if accepted else {"accepted": False, "error": reason}).encode()

    def integration(self, base: str) -> dict:
        auth = {"type": "bearer", "token": "{{ credentials.api_key }}"}
        return {
            "ping": {"url": f"{base}/ping", "format": "json", "auth": auth, "body": {
                "product": "{{ vertical | upper }}", "lead_ref": "{{ lead_id }}",
                "location": {"postal_code": "{{ geo.zip }}", "state": "{{ geo.state }}"},
                "attributes": {
                    "owns_home": "{{ qualifiers.homeowner | default(none) | yesno(none='Unknown') }}",
                    "property_type": "{{ qualifiers.property_type | default('') | value_map("
                                     "{'single_family': 'Single Family', 'condo': 'Condo',"
                                     " 'townhouse': 'Townhouse'}, default='') }}",
                    "quality": "{{ score }}"}},
                "answer": {"format": "json", "accept": {"path": "result.decision", "equals": "accept"},
                           "bid": {"path": "result.offer"}, "ref": {"path": "result.token"},
                           "reason": {"path": "result.why"}}},
            "post": {"url": f"{base}/post", "format": "json", "auth": auth, "body": {
                "token": "{{ ping_ref }}", "lead_ref": "{{ lead_id }}", "price": "{{ price }}",
                "consumer": {"first_name": "{{ contact.first_name }}", "last_name": "{{ contact.last_name }}",
                             "email": "{{ contact.email }}", "phone": "{{ contact.phone | phone('dashed') }}",
                             "street": "{{ contact.address }}", "postal_code": "{{ contact.zip }}"},
                "consent": {"text": "{{ consent.text }}", "ip": "{{ consent.ip }}",
                            "captured_at": "{{ consent.timestamp }}"}},
                "answer": {"format": "json", "accept": {"path": "accepted"}, "reason": {"path": "error"}}}}


class Text(Native):
    content_type, garbage = "text/plain", b"ACC\x00EPTED|"

    def read_ping(self, raw, query):
        return {"lead_id": query.get("lead"), "ping_id": None, "cycle": None, "api_key": query.get("key"),
                "fields": dict(query)}

    def ping_answer(self, accept, bid, ref, reason):
        if not accept:
            return f"REJECTED|{reason}".encode()
        return f"ACCEPTED|{'' if bid is None else f'{bid:.2f}'}|{ref}".encode()

    def read_post(self, raw, query):
        f = _form(raw)
        return {"lead_id": f.get("lead"), "ping_id": None, "ping_ref": f.get("ref"),
                "price": _price(f.get("price")), "consent_text": f.get("consent"), "phone": f.get("phone"),
                "has_contact": bool(f.get("first")),
                "api_key": f.get("key")}

    def post_answer(self, accepted, reason):
        return b"OK" if accepted else f"ERROR|{reason}".encode()

    def integration(self, base: str) -> dict:
        return {
            "ping": {"method": "GET", "url": f"{base}/ping", "format": "query", "body": {
                "key": "{{ credentials.api_key }}", "lead": "{{ lead_id }}", "vertical": "{{ vertical }}",
                "zip": "{{ geo.zip }}", "state": "{{ geo.state }}", "score": "{{ score }}"},
                "answer": {"format": "text", "accept": {"pattern": "^ACCEPTED\\|"},
                           "bid": {"pattern": "^ACCEPTED\\|([0-9.]+)\\|"},
                           "ref": {"pattern": "^ACCEPTED\\|[^|]*\\|(.+)$"},
                           "reason": {"pattern": "^REJECTED\\|(.*)$"}}},
            "post": {"url": f"{base}/post", "format": "form", "body": {
                "key": "{{ credentials.api_key }}", "ref": "{{ ping_ref }}", "lead": "{{ lead_id }}",
                "first": "{{ contact.first_name }}", "last": "{{ contact.last_name }}",
                "phone": "{{ contact.phone | phone('dashed') }}", "email": "{{ contact.email }}",
                "zip": "{{ contact.zip }}", "consent": "{{ consent.text }}", "price": "{{ price | money }}"},
                "answer": {"format": "text", "accept": {"pattern": "^OK"},
                           "reason": {"pattern": "^ERROR\\|(.*)$"}}}}


class Direct(Native):
    pings = False

    def read_post(self, raw, query):
        body = _json_doc(raw)
        return None if body is None else {
            "lead_id": body.get("lead_id"), "ping_id": None, "ping_ref": None, "price": body.get("price"),
            "consent_text": body.get("consent_text"), "phone": body.get("phone"),
            "has_contact": bool(body.get("first_name")), "api_key": body.get("api_key")}

    def post_answer(self, accepted, reason):
        answer = {"status": "accepted"} if accepted else {"status": "rejected", "reason": reason}
        return json.dumps(answer).encode()

    def integration(self, base: str) -> dict:
        return {"post": {"url": f"{base}/post", "format": "json", "body": {
            "api_key": "{{ credentials.api_key }}", "lead_id": "{{ lead_id }}", "vertical": "{{ vertical }}",
            "first_name": "{{ contact.first_name }}", "last_name": "{{ contact.last_name }}",
            "email": "{{ contact.email }}", "phone": "{{ contact.phone }}", "zip": "{{ contact.zip }}",
            "consent_text": "{{ consent.text }}", "consent_ip": "{{ consent.ip }}", "price": "{{ price }}"},
            "answer": {"format": "json", "accept": {"path": "status", "equals": "accepted"},
                       "reason": {"path": "reason"}}}}


STYLES = {"native": Native(), "xml": Xml(), "form": Form(), "json": OwnJson(), "text": Text(),
          "direct": Direct()}


def phone_shape(phone) -> str | None:
    """How a phone was written, without keeping it: e164, digits, dashed, other."""
    if not isinstance(phone, str):
        return None
    for shape, pattern in (("e164", r"\+1\d{10}"), ("digits", r"\d{10}"), ("dashed", r"\d{3}-\d{3}-\d{4}")):
        if re.fullmatch(pattern, phone):
            return shape
    return "other"
