"""A quicker ``schema.load`` for input that loads cleanly; marshmallow itself for anything else.

marshmallow's load runs a general machine around every field (an error store, a getter closure,
the partial and data_key bookkeeping, the field's missing/null/validate steps), most of a lead's
parse. ``quick_loader(schema)`` builds, once, a function of the schema's own fields that does
their work for the values they usually get (a str for a text field, an int for a whole number,
a bool for a flag, a dict for a nested schema) and hands any other value to the field's own
``deserialize``; it returns the very dict ``schema.load`` returns, or DECLINED the moment
anything fails (a check, a missing required field, an unknown key, a schema validator) or is
not plain, and the caller then runs ``schema.load``, whose errors are the field-level errors the
API answers with. So a refused payload is refused by marshmallow, with its messages, every time;
this path only ever says yes, and says it as marshmallow would. A schema it cannot follow
(a data_key, an attribute, a load_default, a pre_load hook, unknown fields not refused) gets a
loader that always declines.

It calls a few of marshmallow's private parts (a schema's hooks and the steps that run them).
A marshmallow whose private parts are not those, in name or in the arguments passed to them,
gets loaders that always decline: every lead is then loaded by marshmallow itself, slower and
the same, and a warning says so once.
"""
from __future__ import annotations

import inspect
import logging
import unicodedata
from collections.abc import Callable

from marshmallow import RAISE, Schema, ValidationError, fields, missing, validate

try:
    from marshmallow.decorators import POST_LOAD, PRE_LOAD, VALIDATES, VALIDATES_SCHEMA
    from marshmallow.error_store import ErrorStore
except ImportError:                          # moved in a later marshmallow: see _follows()
    POST_LOAD = PRE_LOAD = VALIDATES = VALIDATES_SCHEMA = None  # type: ignore[assignment]
    ErrorStore = None  # type: ignore[assignment,misc]

from pipeline.domain.fields import CONTROL, MULTILINE_CONTROL, Text, WholeNumber

DECLINED = object()
log = logging.getLogger(__name__)
_normalize = unicodedata.normalize

Loader = Callable[[object], object]
# A field's part: (value, the whole input dict) -> the loaded value, `missing` (left out of the
# result) or DECLINED.
Part = Callable[[object, dict], object]


def quick_loader(schema: Schema, special: Callable[[fields.Field], Part | None] | None = None
                 ) -> Loader:
    """``schema``'s quick load; ``special(field)`` may supply a field's part (for a custom field
    class: None means the generic one, the field's own ``deserialize``)."""
    parts = _parts(schema, special) if _follows(schema) else None
    if parts is None:
        return _declines
    names = frozenset(name for name, _ in parts)
    validators = bool(schema._hooks[VALIDATES_SCHEMA] or schema._hooks[VALIDATES])
    post_load = bool(schema._hooks[POST_LOAD])

    def load(data):
        if type(data) is not dict or not data.keys() <= names:
            return DECLINED
        result = {}
        for name, part in parts:
            value = part(data.get(name, missing), data)
            if value is DECLINED:
                return DECLINED
            if value is not missing:
                result[name] = value
        if validators:
            # As schema._do_load runs them on a load without field errors.
            store = ErrorStore()
            schema._invoke_field_validators(error_store=store, data=result, many=False)
            for collection in (True, False):
                schema._invoke_schema_validators(
                    error_store=store, pass_collection=collection, data=result, original_data=data,
                    many=False, partial=schema.partial, unknown=schema.unknown, field_errors=False)
            if store.errors:
                return DECLINED
        if post_load:
            try:
                result = schema._invoke_load_processors(
                    POST_LOAD, result, many=False, original_data=data, partial=schema.partial,
                    unknown=schema.unknown)
            except ValidationError:
                return DECLINED
        return result
    return load


def _declines(data):
    return DECLINED


# The private steps of a schema's load that a quick load runs, with the keyword arguments it
# passes each (beside the first, positional: the processors' tag).
_PRIVATE_STEPS = {
    "_invoke_field_validators": {"error_store", "data", "many"},
    "_invoke_schema_validators": {"error_store", "pass_collection", "data", "original_data", "many",
                                  "partial", "unknown", "field_errors"},
    "_invoke_load_processors": {"many", "original_data", "partial", "unknown"},
}
_warned: list[str] = []


def _follows(schema: Schema) -> bool:
    """Whether this marshmallow's private parts are the ones the quick load calls, as it calls
    them; if not, a warning (once) and marshmallow's own load for everything."""
    try:
        hooks = schema._hooks
        for tag in (POST_LOAD, PRE_LOAD, VALIDATES, VALIDATES_SCHEMA):
            if tag is None or not isinstance(hooks[tag], list):
                raise TypeError(f"hooks[{tag!r}]")
        if ErrorStore is None or not hasattr(ErrorStore(), "errors"):
            raise TypeError("ErrorStore")
        for name, keywords in _PRIVATE_STEPS.items():
            parameters = inspect.signature(getattr(schema, name)).parameters.values()
            accepted = {p.name for p in parameters
                        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
            required = {p.name for p in parameters if p.kind is p.KEYWORD_ONLY and p.default is p.empty}
            if not keywords <= accepted or not required <= keywords:
                raise TypeError(name)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        if not _warned:
            _warned.append(str(exc))
            log.warning("quickload: this marshmallow's private %s is not what the quick load calls;"
                        " every payload is loaded by marshmallow itself (slower, the same)", exc)
        return False
    return True


def _parts(schema: Schema, special) -> list[tuple[str, Part]] | None:
    if (schema.many or schema.unknown != RAISE or schema.dict_class is not dict or schema.partial
            or schema._hooks[PRE_LOAD] or schema.load_fields.keys() != schema.fields.keys()):
        return None
    parts = []
    for name, field in schema.load_fields.items():
        if (field.data_key is not None or field.attribute is not None or "." in name
                or field.load_default is not missing):
            return None
        part = (special and special(field)) or _part(name, field, special)
        parts.append((name, part))
    return parts


def _generic(name: str, field: fields.Field) -> Part:
    deserialize = field.deserialize

    def part(value, data):
        try:
            return deserialize(value, name, data)
        except ValidationError:
            return DECLINED
    return part


def _checked(field: fields.Field, skip: int = 0) -> Callable[[object], bool]:
    """Whether a loaded value passes the field's validators (as Field._validate runs them), the
    first ``skip`` of them left out."""
    validators = tuple(field.validators)[skip:]

    def passes(value) -> bool:
        try:
            for check in validators:
                if check(value) is False:
                    return False
        except ValidationError:
            return False
        return True
    return passes


def _missing_or_null(field: fields.Field, value):
    """What the field makes of a missing or null value: `missing`, None or DECLINED."""
    if value is missing:
        return DECLINED if field.required else missing
    return None if field.allow_none else DECLINED


def _part(name: str, field: fields.Field, special) -> Part:
    kind = type(field)
    if isinstance(field, Text):
        return _text(name, field)
    if kind is WholeNumber or kind is fields.Integer:
        # Integer's load of an int is the int (not a bool: type() is int excludes them).
        return _as_is(name, field, int, not getattr(field, "as_string", False))
    if kind is fields.Boolean and isinstance(field, fields.Boolean):
        # Boolean's load of True or False is itself, while they are its truthy and falsy.
        return _as_is(name, field, bool,
                      not field.truthy or (True in field.truthy and False in field.falsy))
    if kind is fields.Nested and isinstance(field, fields.Nested):
        return _nested(name, field, special)
    return _generic(name, field)


def _as_is(name: str, field: fields.Field, kind: type, plain: bool) -> Part:
    """A field whose load of a value of type ``kind`` is the value itself, checked."""
    passes = _checked(field)
    generic = _generic(name, field)

    def as_is(value, data):
        if type(value) is kind and plain:
            return value if passes(value) else DECLINED
        if value is missing or value is None:
            return _missing_or_null(field, value)
        return generic(value, data)
    return as_is


def _nested(name: str, field: fields.Nested, special) -> Part:
    if not (isinstance(field.nested, type) and issubclass(field.nested, Schema)) or (
            field.unknown is not None or field.only or field.exclude or field.many):
        return _generic(name, field)
    inner = quick_loader(field.schema, special)
    passes = _checked(field)

    def nested(value, data):
        if value is missing or value is None:
            return _missing_or_null(field, value)
        loaded = inner(value)
        return DECLINED if loaded is DECLINED or not passes(loaded) else loaded
    return nested


def _text(name: str, field: Text) -> Part:
    """Text.deserialize: NFC, strip, blank is null when optional; then the field's own
    _deserialize (its checks, a subclass's conversion) and validators."""
    first = field.validators[0] if field.validators else None
    # fields.longest(n), the first check of every Text: its comparison made here, not called.
    longest = (first.max if type(first) is validate.Length and first.min is None
               and first.equal is None and first.max is not None else None)
    passes = _checked(field, skip=0 if longest is None else 1)
    normalize, strip, required, allow_none = field.normalize, field.strip, field.required, field.allow_none
    control = MULTILINE_CONTROL if field.multiline else CONTROL
    plain = type(field) is Text
    convert = field._deserialize

    def text(value, data):
        if type(value) is not str:
            if value is missing or value is None:
                return _missing_or_null(field, value)
            return DECLINED                  # not a string: Text refuses it
        if normalize:
            value = _normalize("NFC", value)
        if strip:
            value = value.strip()
        if not value:
            return None if not required and allow_none else DECLINED
        if plain:
            # Text._deserialize's checks on a str, without String's and Field's calls around them.
            if "\x00" in value or control.search(value):
                return DECLINED
        else:
            try:
                value = convert(value, name, data)
            except ValidationError:
                return DECLINED
        if longest is not None and len(value) > longest:      # the loaded value's length
            return DECLINED
        return value if passes(value) else DECLINED
    return text
