"""The OpenAPI description of the HTTP API (`GET /openapi.json`), generated from the marshmallow
schemas the API itself uses: the lead, each vertical's qualifiers, and the answers."""
from __future__ import annotations

import copy

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields, validate

from pipeline.domain import leads

REF = "#/components/schemas/"


# ---- the answers --------------------------------------------------------------------------

class Accepted(Schema):
    lead_id = fields.String(required=True, metadata={"format": "uuid"})
    status = fields.String(required=True, validate=validate.OneOf(["received"]))


class Error(Schema):
    error = fields.String(required=True)


class Conflict(Schema):
    error = fields.String(required=True)
    lead_id = fields.String(required=True, metadata={"format": "uuid",
                                                     "description": "the first lead of this key"})


class FieldErrors(Schema):
    errors = fields.Dict(required=True, metadata={
        "description": "field by field, as the body is nested: {\"contact\": {\"phone\": [\"…\"]}};"
                       " `_schema` for the body as a whole"})


class Sale(Schema):
    buyer_id = fields.String(metadata={"description": "operators only"})
    price = fields.Float(metadata={"description": "operators only"})
    sold_at = fields.String(required=True, metadata={"format": "date-time"})
    returned = fields.Boolean(required=True)


class Ping(Schema):
    buyer_id = fields.String(required=True)
    tier = fields.Integer(required=True)
    cycle = fields.Integer(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(["ping", "pre_ping"]))
    outcome = fields.String(required=True, validate=validate.OneOf(
        ["accept", "reject", "timeout", "error", "late", "post_rejected", "eligible", "ineligible"]))
    bid = fields.Float(required=True, allow_none=True)
    latency_ms = fields.Integer(required=True, allow_none=True)
    reason = fields.String(required=True, allow_none=True)


class Skip(Schema):
    buyer_id = fields.String(required=True)
    reason = fields.String(required=True)
    cycle = fields.Integer(required=True)


class Moment(Schema):
    status = fields.String(required=True)
    at = fields.String(required=True, metadata={"format": "date-time"})


class LeadView(Schema):
    """A lead's state and history, never personal data. A publisher reads only its own leads,
    without `pings`, `skipped`, `duplicate_of` or the sale's buyer and price."""
    lead_id = fields.String(required=True, metadata={"format": "uuid"})
    status = fields.String(required=True, validate=validate.OneOf(
        ["received", "validated", "scored", "auctioning", "delivering", "held", "sold", "rejected",
         "unsold"]))
    vertical = fields.String(required=True)
    score = fields.Integer(required=True, allow_none=True)
    signals = fields.Dict(keys=fields.String(), values=fields.Float(), required=True)
    reject_reasons = fields.List(fields.String(), required=True)
    cycles = fields.Integer(required=True)
    sale = fields.Nested(Sale, required=True, allow_none=True)
    timeline = fields.List(fields.Nested(Moment), required=True)
    duplicate_of = fields.String(allow_none=True, metadata={"description": "operators only"})
    pings = fields.List(fields.Nested(Ping), metadata={"description": "operators only"})
    skipped = fields.List(fields.Nested(Skip), metadata={"description": "operators only"})


class Health(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok", "unhealthy"]))
    postgresql = fields.String(required=True)
    redis = fields.String(required=True)
    beat = fields.Raw(metadata={"description": "/healthz only: each beat job's last run"})


# ---- the document -------------------------------------------------------------------------

def _answer(description: str, schema: str | None = None, **headers: str) -> dict:
    out: dict = {"description": description}
    if schema:
        out["content"] = {"application/json": {"schema": {"$ref": REF + schema}}}
    if headers:
        out["headers"] = {name: {"description": text, "schema": {"type": "string"}}
                          for name, text in headers.items()}
    return out


RETRY = "seconds to wait before trying again"
GUARD = {
    "401": _answer("no API key, or a wrong or revoked one", "Error",
                   **{"WWW-Authenticate": "Bearer"}),
    "403": _answer("the key's publisher is not active", "Error"),
    "429": _answer("over the key's rate limit, or too many failed keys from this address",
                   "Error", **{"Retry-After": RETRY}),
    "503": _answer("PostgreSQL does not answer", "Error", **{"Retry-After": RETRY}),
}


def _lead_variants(components: dict) -> list[dict]:
    """One request schema per vertical: its `vertical` and its own qualifiers."""
    base = components.pop("Lead")
    variants = []
    for vertical in leads.QUALIFIER_SCHEMAS:
        name = "".join(part.title() for part in vertical.split("_"))
        variant = copy.deepcopy(base)
        variant["properties"]["vertical"] = {"type": "string", "enum": [vertical]}
        variant["properties"]["qualifiers"] = {"$ref": f"{REF}{name}Qualifiers"}
        components[f"{name}Lead"] = variant
        variants.append({"$ref": f"{REF}{name}Lead"})
    return variants


def _formats(components: dict) -> None:
    """What the marshmallow fields check in code, said in the description's own terms."""
    contact, consent = components["Contact"]["properties"], components["Consent"]["properties"]
    contact["email"]["format"] = "email"
    contact["state"]["enum"] = sorted(leads.STATES)
    contact["phone"]["description"] = "a US (NANP) number in any common format"
    consent["timestamp"]["format"] = "date-time"
    consent["timestamp"]["description"] = "with a timezone; within the last day, not in the future"
    consent["ip"]["description"] = "IPv4 or IPv6, without an IPv6 zone"
    consent["page_url"]["format"] = "uri"
    for moment in components["Form"]["properties"].values():
        moment["format"] = "date-time"


def document() -> dict:
    spec = APISpec("pingtree intake", "1", "3.0.3", plugins=[MarshmallowPlugin()], info={
        "description": "Form backends hand leads to pingtree. Every /v1 call needs"
                       " `Authorization: Bearer <key>`: a publisher's key (the lead's"
                       " `source.publisher_id` is the key's publisher) or an operator key."})
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for schema in (Accepted, Error, Conflict, FieldErrors, LeadView, Health):
        spec.components.schema(schema.__name__, schema=schema)
    for vertical, schema in leads.QUALIFIER_SCHEMAS.items():
        name = "".join(part.title() for part in vertical.split("_"))
        spec.components.schema(f"{name}Qualifiers", schema=type(schema))
    spec.components.schema("Lead", schema=leads.LeadSchema)
    doc = spec.to_dict()
    components = doc["components"]["schemas"]
    variants = _lead_variants(components)
    source = components["Source"]
    source["required"] = []
    source["properties"]["publisher_id"]["description"] = (
        "Needed with an operator key. With a publisher's key it is that publisher:"
        " leave it out or repeat it (another publisher's id is a 422).")
    _formats(components)
    idempotency = {"name": "Idempotency-Key", "in": "header", "required": False,
                   "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                   "description": "A replay with the same key and body answers with the first"
                                  " lead; the key is the publisher's own and expires."}
    doc["paths"] = {
        "/v1/leads": {"post": {
            "summary": "Submit a lead", "security": [{"bearer": []}], "parameters": [idempotency],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"oneOf": variants}}}},
            "responses": {
                "202": _answer("stored as `received`; the pipeline takes it from here", "Accepted"),
                "400": _answer("not one strict JSON object (NaN, duplicate keys, too deep…)",
                               "Error"),
                **GUARD,
                "409": _answer("the Idempotency-Key was used with another body", "Conflict"),
                "413": _answer("body over 64 KiB", "Error"),
                "415": _answer("Content-Type is not application/json", "Error"),
                "422": _answer("the lead is invalid, field by field; nothing was stored",
                               "FieldErrors"),
            }}},
        "/v1/leads/{lead_id}": {"get": {
            "summary": "A lead's status and history", "security": [{"bearer": []}],
            "parameters": [{"name": "lead_id", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": _answer("the lead view", "LeadView"), **GUARD,
                          "404": _answer("no such lead (or not this publisher's)", "Error")}}},
        "/livez": {"get": {"summary": "Liveness: the process answers", "responses": {
            "200": {"description": "alive", "content": {"application/json": {
                "schema": {"type": "object"}}}}}}},
        "/readyz": {"get": {"summary": "Readiness: PostgreSQL and Redis answer", "responses": {
            "200": _answer("ready", "Health"), "503": _answer("not ready", "Health")}}},
        "/healthz": {"get": {"summary": "PostgreSQL and Redis answer; beat jobs shown", "responses": {
            "200": _answer("healthy", "Health"), "503": _answer("not healthy", "Health")}}},
        "/healthz/beat": {"get": {"summary": "Every beat job ran recently", "responses": {
            "200": {"description": "no job is late", "content": {"application/json": {
                "schema": {"type": "object"}}}},
            "503": {"description": "a job is late, or PostgreSQL is down", "content": {
                "application/json": {"schema": {"type": "object"}}}}}}},
        "/openapi.json": {"get": {"summary": "This description", "responses": {
            "200": {"description": "OpenAPI 3.0", "content": {"application/json": {
                "schema": {"type": "object"}}}}}}},
    }
    return doc
