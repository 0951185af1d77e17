"""Schema building blocks shared by the lead envelope, the verticals and the tree file."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from marshmallow import RAISE, Schema, ValidationError, fields, validate
from marshmallow.experimental.context import Context

CREDIT_RATINGS = ("excellent", "good", "fair", "poor")
PROPERTY_TYPES = ("single_family", "condo", "townhouse", "multi_family", "mobile_home")


@dataclass(frozen=True)
class Clock:
    now: datetime
    max_future_s: int
    max_age_s: int


# marshmallow 4 dropped schema.context; the parse-time clock travels in a context variable.
clock = Context[Clock]


class Strict(Schema):
    """Unknown fields are refused at every level."""

    class Meta:
        unknown = RAISE


class Text(fields.String):
    """A string, NFC-normalised and stripped, without NUL or control characters.

    An optional field sent blank counts as null: form backends send "" for empty inputs.
    """

    def __init__(self, *, max_length: int = 100, strip: bool = True, multiline: bool = False,
                 required: bool = False, validate=None, normalize: bool = True, **kwargs):
        self.strip, self.multiline, self.normalize = strip, multiline, normalize
        checks = [validate] if callable(validate) else list(validate or ())
        kwargs.setdefault("allow_none", not required)
        super().__init__(required=required,
                         validate=[longest(max_length), *checks], **kwargs)

    def deserialize(self, value, attr=None, data=None, **kwargs):
        if isinstance(value, str):
            if self.normalize:
                value = unicodedata.normalize("NFC", value)
            if self.strip:
                value = value.strip()
            if not value and not self.required:
                value = None
        return super().deserialize(value, attr, data, **kwargs)

    def _validate(self, value) -> None:
        # marshmallow builds an And of the field's checks on every call: a lead has some thirty
        # text fields. The checks run here directly; a failing one lets marshmallow run them all
        # again, so the errors are every check's messages, as they always were.
        try:
            for check in self.validators:
                check(value)
        except ValidationError:
            super()._validate(value)
            raise

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not text:
            raise ValidationError("May not be blank.")
        if "\x00" in text:
            raise ValidationError("NUL characters are not allowed.")
        if (MULTILINE_CONTROL if self.multiline else CONTROL).search(text):
            raise ValidationError("Control characters are not allowed.")
        return text


# Unicode's control (Cc: U+0000-U+001F, U+007F-U+009F) and surrogate (Cs) code points, fixed
# by the standard's stability policy: one regex search, not a category look-up per character
# (a lead's consent text runs to hundreds of them). Multi-line text may carry tab, LF and CR.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
MULTILINE_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def longest(limit: int):
    return validate.Length(max=limit, error="Longer than {max} characters.")


def not_after_next_year(year: int) -> None:
    now = clock.get(None)
    if now is not None and year > now.now.year + 1:
        raise ValidationError(f"Must be {now.now.year + 1} or earlier.")


class WholeNumber(fields.Integer):
    """An integer, or a number or string that is one exactly: 72.9 is refused, never cut to 72."""

    def _validated(self, value):
        if isinstance(value, float) and not value.is_integer():
            raise self.make_error("invalid")
        return super()._validated(value)


def whole(low: int, high: int | None = None, *, required: bool = False, checks=()):
    return WholeNumber(required=required, allow_none=not required,
                       validate=[validate.Range(min=low, max=high), *checks])


def flag(*, required: bool = False):
    return fields.Boolean(required=required, allow_none=not required)


def choice(choices, *, required: bool = False):
    return Text(required=required, validate=validate.OneOf(choices))


def error_lines(errors, prefix: str = ""):
    """marshmallow's nested error dict as `path: message; message` lines, one per field."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            yield from error_lines(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(errors, list) and all(isinstance(e, str) for e in errors):
        yield f"{prefix}: {'; '.join(errors)}"
    else:
        yield f"{prefix}: {errors}"
