"""Judging an HTTP answer: parsed when a step reads it, glanced at when it does not.

Checking an answer is most of what the library's request path costs the load generator, and parsing
JSON is most of that: `parse_answer` parses (through the C scanner, `loads_json`) and checks the
required fields exactly; `glance_at_answer` checks an answer nobody reads without parsing it, and
parses only to say what is wrong. Pure: no Locust, no state; any object with `content` (bytes) and
`headers` will do as an answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from compliance_loadtest.api import Api

__all__ = ["glance_at_answer", "loads_json", "parse_answer"]

# The C scanner json.loads ends in; JSONDecoder sets it per instance, typeshed does not say so.
_SCAN_JSON: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_JSON_STARTS = (b"{", b"[")


def parse_answer(
    resp: Any, required: tuple[str, ...], required_set: frozenset[str]
) -> tuple[Any, str | None]:
    """An answer's parsed JSON, and what is wrong with it (None when nothing is): empty where fields are
    required, not JSON, or lacking a required field. A body that is not JSON by its first byte and its
    content type is returned as bytes."""
    content = resp.content
    if not content:
        return ({}, None) if not required else (None, f"empty body, expected fields {', '.join(required)}")
    # A JSON API answers an object or a list: its first byte says so without reading headers.
    if not content.startswith(_JSON_STARTS):
        headers = resp.headers
        content_type = headers.get("content-type", "") if headers is not None else ""
        if "json" not in content_type:
            if required:
                got = content_type or "no content type"
                return None, f"expected JSON with {', '.join(required)}, got {got}"
            return content, None
    try:
        body = loads_json(content.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError included
        return None, "body is not valid JSON"
    if required and not (type(body) is dict and body.keys() >= required_set):
        missing = Api.missing_fields(body, required)
        if missing:
            return None, f"response lacks {', '.join(missing)}"
    return body, None


def glance_at_answer(
    resp: Any, required: tuple[str, ...], required_set: frozenset[str], keys: tuple[bytes, ...]
) -> str | None:
    """What is wrong with an answer nobody reads, without parsing it: each required field must appear in
    the body as a quoted key (`keys`); when one does not, the answer is parsed to say exactly what is
    wrong."""
    content = resp.content
    if content.startswith(b"{") if required else content.startswith(_JSON_STARTS):
        for key in keys:
            if key not in content:
                break
        else:
            return None
    return parse_answer(resp, required, required_set)[1]


def loads_json(text: str) -> Any:
    """`json.loads`, straight through the C scanner for the common case (a document that starts at the
    first character and fills the text): each answer is parsed on the load generator's hot path."""
    try:
        value, end = _SCAN_JSON(text, 0)
    except StopIteration:  # leading whitespace, or nothing JSON there: json.loads says which
        return json.loads(text)
    if end != len(text) and not text[end:].isspace():
        return json.loads(text)  # raises: extra data after the document
    return value
