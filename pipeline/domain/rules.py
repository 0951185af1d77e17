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
    return "text" if isinstance(value, str) else "other"


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
    listed = [tuple(v.choices) for v in field.validators if isinstance(v, validate.OneOf)]
    if isinstance(field, fields.Boolean):
        return "boolean", None
    return ("number" if isinstance(field, fields.Number) else "text"), (listed[0] if listed else None)


def _types_of(path: str, vertical_names) -> list[tuple[str, tuple | None]]:
    """The (kind, choices) the field has in each of the verticals that ask it."""
    if path in LEAD_FIELDS:
        return [(LEAD_FIELDS[path], verticals.NAMES if path == "vertical" else None)]
    parts = path.split(".")
    if len(parts) != 2 or parts[0] != "qualifiers":
        return []
    asked = [verticals.REGISTRY[v].qualifiers.fields.get(parts[1]) for v in vertical_names
             if v in verticals.REGISTRY]
    return [_field_type(field) for field in asked if field is not None]


def _fits(field_kind: str, choices: tuple | None, op: str, value) -> bool:
    """Whether a value of this op can ever match a field of this kind."""
    if op == "exists":
        return value is None or isinstance(value, bool)
    listed = field_kind.startswith("list of ")
    if listed and op not in ("in", "not_in"):
        return False                    # a list field is tested for overlap: in / not_in
    wanted = value if op in ("in", "not_in") else [value]
    if not isinstance(wanted, list) or not wanted:
        return False
    item_kind = field_kind.removeprefix("list of ")
    # An order (gt 12) may fall between the choices; an equality must be one of them.
    return all(kind(w) == item_kind and (choices is None or op in ORDER_OPS or w in choices)
               for w in wanted)


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
    if op == "exists":
        return "value", "exists takes true, false or null"
    if field_kind.startswith("list of ") and op not in ("in", "not_in"):
        return "op", f"{path} is a list: use in, not_in or exists"
    if op in ORDER_OPS:
        return "value", f"{path} is {field_kind}: {op} needs a number field"
    among = f" among {', '.join(map(str, choices))}" if choices else ""
    return "value", f"{path} is {field_kind}: {op} needs {field_kind.removeprefix('list of ')}{among}"
