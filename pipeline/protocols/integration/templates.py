"""Integration templates: sandboxed Jinja2, value filters, and per-format escaping of every substitution."""
from __future__ import annotations

import hashlib
import json
import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from urllib.parse import quote, urlencode

from jinja2 import StrictUndefined, TemplateError, Undefined, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import escape

# What a template may name. Pings and pre-pings carry no personal data: contact and consent
# are simply not in their context.
PING_NAMES = frozenset({"lead_id", "ping_id", "vertical", "score", "cycle", "geo", "qualifiers",
                        "source", "bid", "expires_at", "credentials"})
POST_NAMES = PING_NAMES | {"contact", "consent", "price", "ping_ref", "signals", "submitted_at"}
PERSONAL_NAMES = frozenset({"contact", "consent"})
SINGLE = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}|\{\{|\{%).)*)\}\}\s*$", re.S)


class Problem(ValueError):
    """A template that cannot be compiled or rendered; the message never carries lead values."""


def _text(value) -> str:
    """How a value reads inside text: null is empty, booleans are true/false."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---- value filters ------------------------------------------------------------------------

def phone(value, style: str = "e164") -> str:
    """A US phone in the buyer's style: e164, digits (10), digits11, dashed, dotted, paren."""
    digits = re.sub(r"\D", "", _text(value))
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    if len(digits) != 10:
        return digits
    a, b, c = digits[:3], digits[3:6], digits[6:]
    styles = {"e164": f"+1{digits}", "digits": digits, "digits11": f"1{digits}",
              "dashed": f"{a}-{b}-{c}", "dotted": f"{a}.{b}.{c}", "paren": f"({a}) {b}-{c}"}
    if style not in styles:
        raise Problem(f"phone: unknown style {style!r} (one of {', '.join(styles)})")
    return styles[style]


def yesno(value, yes: str = "Yes", no: str = "No", none: str = "") -> str:
    if value is None:
        return none
    if isinstance(value, str):
        value = value.strip().lower() in ("true", "yes", "y", "1")
    return yes if value else no


_NO_DEFAULT = object()


def value_map(value, mapping: dict, default=_NO_DEFAULT):
    """Our value -> the buyer's (single_family -> Single Family); unknown values take the default."""
    if not isinstance(mapping, dict):
        raise Problem("value_map: the map must be an object")
    key = _text(value) if not isinstance(value, str) else value
    if key in mapping:
        return mapping[key]
    if default is _NO_DEFAULT:
        raise Problem("value_map: a value is not in the map and there is no default")
    return default


def as_date(value, fmt: str = "%Y-%m-%d") -> str:
    """A date or timestamp (ISO-8601 text or a datetime) in the buyer's format (strftime)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise Problem("date: not an ISO-8601 date or timestamp") from None
    if not isinstance(value, (date, datetime)):
        raise Problem("date: not a date")
    return value.strftime(fmt)


def money(value, places: int = 2) -> str:
    """A price as plain text with fixed decimals: 22.4 -> 22.40."""
    try:
        amount = Decimal(_text(value))
    except InvalidOperation:
        raise Problem("money: not a number") from None
    return f"{amount:.{int(places)}f}"


def digits(value) -> str:
    return re.sub(r"\D", "", _text(value))


def sha256(value) -> str:
    return hashlib.sha256(_text(value).encode()).hexdigest()


FILTERS = {"phone": phone, "yesno": yesno, "value_map": value_map, "date": as_date, "money": money,
           "digits": digits, "sha256": sha256}


def _env(finalize, autoescape: bool = False) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=autoescape,
                                        finalize=finalize, keep_trailing_newline=True)
    env.filters.update(FILTERS)
    env.globals = {"dict": dict}      # no range, lipsum, cycler: nothing to loop on or waste CPU with
    return env


TEXT = _env(_text)
XML = _env(lambda v: escape(_text(v)), autoescape=True)    # every substitution XML-escaped
URL = _env(lambda v: quote(_text(v), safe=""))            # every substitution percent-encoded


def _header_text(value) -> str:
    text = _text(value)
    if "\r" in text or "\n" in text:
        raise Problem("a header value cannot hold a line break")
    return text


HEADER = _env(_header_text)


# ---- compiled pieces ----------------------------------------------------------------------

class Piece:
    """One compiled template string; ``render`` gives text, ``value`` a native value."""
    __slots__ = ("template", "expression", "constant", "where")

    def __init__(self, env, source: str, names: frozenset[str], where: str, problems: list[str]):
        self.template = self.expression = None
        self.constant, self.where = source, where
        if "{" not in source:
            return
        try:
            before = len(problems)
            check_names(env, source, names, where, problems)
            if len(problems) > before:
                return                  # refused: it renders as written, and the tree is refused
            self.template = env.from_string(source)
            single = SINGLE.match(source)
            if single and env is TEXT:
                self.expression = env.compile_expression(single["expr"], undefined_to_none=False)
        except TemplateError as exc:
            problems.append(f"{where}: line {getattr(exc, 'lineno', None) or 1}: {exc.message}")

    def render(self, context: dict) -> str:
        if self.template is None:
            return self.constant
        try:
            return self.template.render(context)
        except Exception as exc:
            exc.where = self.where  # type: ignore[attr-defined]  # which template failed: reason, load
            raise

    def value(self, context: dict):
        """A lone {{ expression }} keeps its type (numbers stay numbers in JSON)."""
        if self.expression is None:
            return self.render(context)
        try:
            result = self.expression(context)
            if isinstance(result, Undefined):
                result._fail_with_undefined_error()
        except Exception as exc:
            exc.where = self.where  # type: ignore[attr-defined]
            raise
        return result


def check_names(env, source: str, names: frozenset[str], where: str, problems: list[str]) -> None:
    """Refuse a template naming what its call cannot see: personal data in a ping, or unknowns."""
    ast = env.parse(source)
    lines: dict[str, int] = {}
    for node in ast.find_all(nodes.Name):
        lines.setdefault(node.name, node.lineno)
    for name in sorted(meta.find_undeclared_variables(ast) - set(env.globals)):
        if name in names:
            continue
        if name in PERSONAL_NAMES:
            problems.append(f"{where}: line {lines.get(name, 1)}: {name} is personal data, which a "
                            "ping or pre-ping never carries (only the post can use it)")
        else:
            problems.append(f"{where}: line {lines.get(name, 1)}: unknown variable {name!r} "
                            f"(known: {', '.join(sorted(names))})")


def compile_tree(value, names: frozenset[str], where: str, problems: list[str]):
    """A JSON body: every string in it is a template; objects and lists keep their shape."""
    if isinstance(value, str):
        return Piece(TEXT, value, names, where, problems)
    if isinstance(value, dict):
        return {k: compile_tree(v, names, f"{where}.{k}", problems) for k, v in value.items()}
    if isinstance(value, list):
        return [compile_tree(v, names, f"{where}[{i}]", problems) for i, v in enumerate(value)]
    return value


def render_tree(compiled, context: dict):
    if isinstance(compiled, Piece):
        return compiled.value(context)
    if isinstance(compiled, dict):
        return {k: render_tree(v, context) for k, v in compiled.items()}
    if isinstance(compiled, list):
        return [render_tree(v, context) for v in compiled]
    return compiled


def _json_default(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def json_bytes(doc) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, default=_json_default).encode()


def form_bytes(fields: dict) -> str:
    """Form and query fields, each value percent-encoded; a list repeats its field."""
    pairs = []
    for name, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((name, _text(item)))
    return urlencode(pairs)
