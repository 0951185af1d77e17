"""A buyer's rules on a lead: what each op means, and which rules could never match a vertical."""
from __future__ import annotations

from decimal import Decimal

from marshmallow import fields, validate

from pipeline.domain import verticals

RULE_OPS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "exists")
ORDER_OPS = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
             "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}
# What the ping view of a lead has besides its qualifiers (pipeline.service.lifecycle.ping_view).
LEAD_FIELDS = {"score": "number", "vertical": "text", "lead_id": "text", "geo.zip": "text",
               "geo.state": "text", "geo.city": "text", "source.publisher_id": "text"}

_MISSING = object()


def lookup(doc: dict, path: str):
    """The value at a dotted path, or a sentinel when any part is missing."""
    node = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def kind(value) -> str:
    """The JSON type of a value; a boolean is not a number (true never equals 1)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float, Decimal)):
        return "number"
    if isinstance(value, str):
        return "text"
    return "list" if isinstance(value, list) else "other"


def _same(a, b) -> bool:
    return kind(a) == kind(b) and a == b


def rule_holds(rule: dict, doc: dict) -> bool:
    """One rule on the lead's ping view.

    A null field and a missing one are alike: only ``exists`` can hold on them. On a list
    field ``in`` means any overlap and ``not_in`` none. Types compare strictly, so no rule
    holds by accident of a type (``true`` is not ``1``, ``"5"`` is not ``5``).
    """
    value, op, want = lookup(doc, rule["field"]), rule["op"], rule.get("value")
    present = value is not _MISSING and value is not None
    if op == "exists":
        return present if want in (None, True) else not present
    if not present:
        return False
    if op in ("in", "not_in"):
        if not isinstance(want, list):
            return False
        found = any(_same(v, w) for v in (value if isinstance(value, list) else [value]) for w in want)
        return found if op == "in" else not found
    if isinstance(value, list):
        return False                    # a list is only ever tested for overlap
    if op == "eq":
        return _same(value, want)
    if op == "ne":
        return not _same(value, want)
    return kind(value) == "number" and kind(want) == "number" and ORDER_OPS[op](value, want)


# ---- checking rules when the tree is loaded --------------------------------------------------

def _field_type(field: fields.Field) -> tuple[str, tuple | None]:
    """(kind, allowed values or None) of a qualifier's schema field; a list gives its items'."""
    if isinstance(field, fields.List):
        item, choices = _field_type(field.inner)
        return f"list of {item}", choices
    if isinstance(field, fields.Boolean):
        return "boolean", None
    if isinstance(field, fields.Number):
        choices = next((tuple(v.choices) for v in field.validators if isinstance(v, validate.OneOf)), None)
        return "number", choices
    choices = next((tuple(v.choices) for v in field.validators if isinstance(v, validate.OneOf)), None)
    return "text", choices


def _types_of(path: str, vertical_names) -> list[tuple[str, tuple | None]]:
    if path in LEAD_FIELDS:
        return [(LEAD_FIELDS[path], tuple(verticals.NAMES) if path == "vertical" else None)]
    head, _, name = path.partition(".")
    if head != "qualifiers" or not name or "." in name:
        return []
    found = []
    for vertical in vertical_names:
        schema = verticals.REGISTRY.get(vertical)
        if schema is not None and name in schema.qualifiers.fields:
            found.append(_field_type(schema.qualifiers.fields[name]))
    return found


def _fits(field_kind: str, choices: tuple | None, op: str, value) -> bool:
    listed = field_kind.startswith("list of ")
    item_kind = field_kind.removeprefix("list of ")
    if op == "exists":
        return value is None or isinstance(value, bool)
    if op in ("gt", "gte", "lt", "lte"):
        return not listed and item_kind == "number" and kind(value) == "number"
    if listed and op in ("eq", "ne"):
        return False                    # a list field is tested for overlap: in / not_in
    wanted = value if op in ("in", "not_in") else [value]
    if not isinstance(wanted, list) or not wanted:
        return False
    return all(kind(w) == item_kind and (choices is None or w in choices) for w in wanted)


def rule_problem(rule: dict, vertical_names) -> tuple[str, str] | None:
    """(key, message) when a rule can never match a lead of the buyer's verticals, else None.

    A rule on a field none of the verticals asks, or with a value of another type than the
    field's (``homeowner eq 1``), or outside the field's choices, would silently never hold
    (or always, for ``ne``): it is refused when the tree is loaded, naming the rule.
    """
    path, op, value = rule["field"], rule["op"], rule.get("value")
    types = _types_of(path, vertical_names)
    if not types:
        return "field", f"{path} is not a field of a {' / '.join(vertical_names)} lead"
    if any(_fits(field_kind, choices, op, value) for field_kind, choices in types):
        return None
    field_kind, choices = types[0]
    within = f" among {', '.join(map(str, choices))}" if choices else ""
    if op == "exists":
        return "value", "exists takes true, false or null"
    if field_kind.startswith("list of ") and op in ("eq", "ne", "gt", "gte", "lt", "lte"):
        return "op", f"{path} is a list: use in, not_in or exists"
    return "value", f"{path} is {field_kind}: {op} needs a {field_kind.removeprefix('list of ')}" \
                     f" value{within}" + (" (a non-empty list of them)" if op in ("in", "not_in") else "")
