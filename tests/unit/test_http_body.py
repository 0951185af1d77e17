"""The API's strict JSON (pipeline/entrypoints/http.py parse_body): lone surrogate escapes and
nesting past MAX_DEPTH are refused however the text spells them; what is neither is read."""

import json

import pytest

from pipeline.entrypoints.http import MAX_DEPTH, BadBody, parse_body


@pytest.mark.parametrize("escape", ["\\ud800", "\\uD800", "\\udbff", "\\uDc00", "\\udfff",
                                    "\\ude00\\ud83d", "\\ud83dx"])
def test_a_lone_surrogate_escape_is_refused(escape):
    with pytest.raises(BadBody, match="unpaired surrogate"):
        parse_body(f'{{"a": "{escape}"}}'.encode())
    with pytest.raises(BadBody, match="unpaired surrogate"):
        parse_body(f'{{"a": {{"b": ["x", "{escape}"]}}}}'.encode())
    with pytest.raises(BadBody, match="unpaired surrogate"):
        parse_body(f'{{"{escape}": 1}}'.encode())


def test_a_pair_of_surrogate_escapes_and_a_escaped_backslash_are_text():
    assert parse_body(b'{"a": "\\ud83d\\ude00"}') == {"a": "\U0001F600"}
    assert parse_body(b'{"a": "\\\\ud800"}') == {"a": "\\ud800"}
    assert parse_body('{"a": "\u00e9\\u00e9"}'.encode()) == {"a": "\u00e9\u00e9"}


def _nested(depth: int, kinds: str) -> bytes:
    """An object nested ``depth`` containers deep, the inner ones of the kinds named in turn."""
    text = "1"
    for level in range(depth - 1, 0, -1):
        text = f'{{"a": {text}}}' if kinds[level % len(kinds)] == "o" else f"[{text}]"
    return f'{{"x": {text}}}'.encode()


@pytest.mark.parametrize("kinds", ["o", "a", "oa"])
def test_nesting_up_to_max_depth_is_read_and_deeper_is_refused(kinds):
    parse_body(_nested(MAX_DEPTH, kinds))
    with pytest.raises(BadBody, match="nested deeper"):
        parse_body(_nested(MAX_DEPTH + 1, kinds))


def test_brackets_inside_strings_do_not_count_as_nesting():
    body = {"a": "[" * 100 + "{" * 100, "b": [["x"]]}
    assert parse_body(json.dumps(body).encode()) == body
