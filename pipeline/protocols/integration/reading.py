"""Reading a buyer's own answer: JSON by JMESPath, XML by XPath (defusedxml), text by pattern."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import defusedxml.ElementTree as SafeXML
import elementpath
import jmespath
from defusedxml import DefusedXmlException

from pipeline.protocols import answers

TEXT_LIMIT = 120
TRUTHY = ("true", "yes", "y", "1")
# "$22.40", "22.40 USD", "1,250.00": the number inside a price written as text.
PRICE = re.compile(r"^\s*(?:USD|US\$|\$)?\s*([0-9][0-9,]*(?:\.[0-9]+)?|\.[0-9]+)\s*(?:USD)?\s*$", re.I)


class Unreadable(ValueError):
    """The answer is not in the format the integration says (not JSON, not XML, too deep)."""


def buyer_text(value, limit: int = TEXT_LIMIT) -> str | None:
    """Buyer text made safe to keep and show (answers.safe_text), on one line; None when empty."""
    if value is None:
        return None
    text = answers.safe_text(" ".join((value if isinstance(value, str) else _plain(value)).split()), limit)
    return text or None


def _plain(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))[:TEXT_LIMIT]
    return str(value)


def price_cents(value) -> int | None:
    """A bid as the buyer wrote it (17.25, "17.25", "$22.40") in cents; None when not a sane price."""
    if isinstance(value, str):
        match = PRICE.match(value)
        if not match:
            return None
        value = match.group(1).replace(",", "")
    if isinstance(value, float):
        value = Decimal(repr(value))
    return answers.read_bid(value)


def _label(rule: dict, name: str) -> str:
    """A short name for where a rule looks: the last name in its path; for a text pattern, its role."""
    names = re.findall(r"[A-Za-z_][\w-]*", rule.get("path", ""))
    return names[-1] if names else ("answer" if name == "accept" else name)


@dataclass(frozen=True)
class Rule:
    label: str
    find: Any                          # compiled path (JMESPath, XPath) or pattern
    equals: tuple | None               # accept values, lower-cased text; None: truthy

    def matches(self, value) -> bool:
        if self.equals is None:
            return value is True or (isinstance(value, str) and value.strip().lower() in TRUTHY)
        return _plain(value).strip().lower() in self.equals if value is not None else False


@dataclass(frozen=True)
class Reading:
    """What an answer said, by rule; values are raw (bid) or made-safe text."""
    accepted: bool
    seen: str | None                   # what the accept rule found, for the reason of a pass
    bid: object = None
    ref: str | None = None
    reason: str | None = None


class AnswerReader:
    """The answer rules of one call, compiled once."""

    def __init__(self, spec: dict, where: str, problems: list[str]):
        self.format = spec.get("format", "json")
        self.rules: dict[str, Rule] = {}
        for name in ("accept", "bid", "ref", "reason"):
            rule = spec.get(name)
            if rule is None:
                continue
            try:
                self.rules[name] = self._compile(rule, name)
            except Exception as exc:    # each library raises its own syntax error
                problems.append(f"{where}.{name}: cannot compile {rule.get('path') or rule.get('pattern')!r}:"
                                f" {buyer_text(str(exc), 200)}")

    def _compile(self, rule: dict, name: str) -> Rule:
        find: Any
        if self.format == "text":
            find = re.compile(rule["pattern"], re.M)
        elif self.format == "json":
            find = jmespath.compile(rule["path"])
        else:
            find = elementpath.Selector(rule["path"])
        equals = rule.get("one_of") or ([rule["equals"]] if "equals" in rule else None)
        equals = None if equals is None else tuple(_plain(e).strip().lower() for e in equals)
        return Rule(_label(rule, name), find, equals)

    def parse(self, body: bytes):
        if self.format == "text":
            return body.decode("utf-8", "replace")
        if self.format == "json":
            doc, unreadable = answers.read_json(body)
            if unreadable:
                raise Unreadable(f"not JSON ({unreadable})")
            return doc
        try:
            return SafeXML.fromstring(body, forbid_dtd=True)
        except (SafeXML.ParseError, DefusedXmlException, ValueError, RecursionError):
            raise Unreadable("not XML") from None

    def value(self, rule: Rule, doc):
        if self.format == "text":
            match = rule.find.search(doc)
            if match is None:
                return None
            return match.group(1) if match.re.groups else match.group(0)
        if self.format == "json":
            return rule.find.search(doc)
        found = rule.find.select(doc)
        if isinstance(found, list):
            if not found:
                return None
            found = found[0]
        if hasattr(found, "itertext"):
            return "".join(found.itertext()).strip()
        return found if isinstance(found, (str, int, float, Decimal, bool)) else str(found)

    def read(self, body: bytes) -> Reading:
        """Raises Unreadable for an answer that is not in its format."""
        doc = self.parse(body)
        got = {name: self.value(rule, doc) for name, rule in self.rules.items()}
        accept = self.rules.get("accept")
        if accept is None:
            accepted = True
        elif self.format == "text" and accept.equals is None:
            accepted = got["accept"] is not None
            # A pattern that did not match found nothing: show the start of the answer instead.
            got["accept"] = got["accept"] if accepted else doc.strip().split("\n", 1)[0]
        else:
            accepted = accept.matches(got["accept"])
        return Reading(accepted=accepted, seen=buyer_text(got.get("accept")), bid=got.get("bid"),
                       ref=buyer_text(got.get("ref"), 200), reason=buyer_text(got.get("reason")))

    def refusal(self, reading: Reading) -> str:
        """Why an answer is a pass: what the accept rule found, and the buyer's reason."""
        accept = self.rules["accept"]
        text = f"answer did not match the accept rule: {accept.label}={reading.seen or '(nothing)'}"
        if reading.reason:
            text += f", {self.rules['reason'].label}={reading.reason}"
        return text
