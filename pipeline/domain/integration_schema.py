"""The shape of a buyer integration in the tree file: requests and answer rules per call."""
from __future__ import annotations

import re

from marshmallow import ValidationError, fields, validate, validates_schema

from pipeline.domain.fields import Strict

CALLS = ("ping", "pre_ping", "post")
METHODS = ("POST", "PUT", "GET")
BODY_FORMATS = ("json", "xml", "form", "query")
ANSWER_FORMATS = ("json", "xml", "text")
AUTH_TYPES = ("bearer", "basic", "header")
CREDENTIAL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
TEMPLATE_MAX = 20_000


Template = lambda **kw: fields.String(validate=validate.Length(max=TEMPLATE_MAX), **kw)  # noqa: E731


class AnswerRuleSchema(Strict):
    """Where an answer says something: a path (JSON: JMESPath, XML: XPath) or a text pattern."""
    path = fields.String(validate=validate.Length(min=1, max=500))
    pattern = fields.String(validate=validate.Length(min=1, max=500))
    equals = fields.Raw(allow_none=True)
    one_of = fields.List(fields.Raw(allow_none=True), validate=validate.Length(min=1))

    @validates_schema
    def _one_source(self, data, **_):
        if ("path" in data) == ("pattern" in data):
            raise ValidationError("give exactly one of path (JSON, XML) or pattern (text)")
        if "equals" in data and "one_of" in data:
            raise ValidationError("give equals or one_of, not both")
        if "pattern" in data:
            try:
                re.compile(data["pattern"])
            except re.error as exc:
                raise ValidationError({"pattern": [f"not a regular expression: {exc}"]}) from None


class AnswerSchema(Strict):
    format = fields.String(load_default="json", validate=validate.OneOf(ANSWER_FORMATS))
    accept = fields.Nested(AnswerRuleSchema)
    bid = fields.Nested(AnswerRuleSchema)
    ref = fields.Nested(AnswerRuleSchema)
    reason = fields.Nested(AnswerRuleSchema)

    @validates_schema
    def _rules_fit_format(self, data, **_):
        needs = "pattern" if data.get("format") == "text" else "path"
        for name in ("accept", "bid", "ref", "reason"):
            rule = data.get(name)
            if rule is not None and needs not in rule:
                raise ValidationError({name: [f"a {data.get('format')} answer is read with a {needs}"]})


class AuthSchema(Strict):
    type = fields.String(required=True, validate=validate.OneOf(AUTH_TYPES))
    token = Template()                       # bearer
    username = Template()                    # basic
    password = Template()                    # basic
    name = fields.String(validate=validate.Regexp(HEADER_NAME))   # header
    value = Template()                       # header

    @validates_schema
    def _fields_fit_type(self, data, **_):
        needed = {"bearer": ("token",), "basic": ("username", "password"),
                  "header": ("name", "value")}[data["type"]]
        missing = [k for k in needed if k not in data]
        if missing:
            raise ValidationError({k: [f"required for {data['type']} auth"] for k in missing})


class CallSchema(Strict):
    """One request (ping, pre-ping or post) and how its answer reads."""
    method = fields.String(load_default="POST", validate=validate.OneOf(METHODS))
    url = Template(required=True)
    format = fields.String(load_default="json", validate=validate.OneOf(BODY_FORMATS))
    headers = fields.Dict(keys=fields.String(validate=validate.Regexp(HEADER_NAME)),
                          values=Template(), load_default=dict)
    auth = fields.Nested(AuthSchema, load_default=None, allow_none=True)
    body = fields.Raw(load_default=None, allow_none=True)
    answer = fields.Nested(AnswerSchema, load_default=None, allow_none=True)

    @validates_schema
    def _body_fits_format(self, data, **_):
        body, fmt = data.get("body"), data.get("format")
        if fmt == "xml" and not isinstance(body, str):
            raise ValidationError({"body": ["an xml body is a template string of the XML document"]})
        if fmt in ("form", "query") and not isinstance(body, dict):
            raise ValidationError({"body": [f"a {fmt} body is an object of field name -> template"]})
        if fmt in ("form", "query") and not all(isinstance(v, (str, int, float, bool)) or v is None
                                                for v in body.values()):
            raise ValidationError({"body": [f"{fmt} field values are templates (strings)"]})
        if fmt == "json" and body is None:
            raise ValidationError({"body": ["a json body is an object or list whose strings are templates"]})
        if data.get("method") == "GET" and fmt != "query":
            raise ValidationError({"format": ["a GET sends its fields as a query string: format query"]})


class PingCallSchema(CallSchema):
    @validates_schema
    def _answer_says_accept(self, data, **_):
        if not data.get("answer") or "accept" not in data["answer"]:
            raise ValidationError({"answer": ["a ping or pre-ping answer needs an accept rule"]})


class IntegrationSchema(Strict):
    ping = fields.Nested(PingCallSchema, load_default=None, allow_none=True)
    pre_ping = fields.Nested(PingCallSchema, load_default=None, allow_none=True)
    post = fields.Nested(CallSchema, required=True)

    @validates_schema
    def _pre_ping_needs_ping(self, data, **_):
        if data.get("pre_ping") and not data.get("ping"):
            raise ValidationError({"pre_ping": ["a direct-post buyer (no ping) has no pre-ping"]})


def credentials_field():
    """Per-buyer secrets that templates use by name (credentials.NAME); never shown."""
    return fields.Dict(keys=fields.String(validate=validate.Regexp(CREDENTIAL_NAME)),
                       values=fields.String(validate=validate.Length(max=2000)), load_default=dict)
