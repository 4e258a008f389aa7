"""Judging answers (compliance_loadtest.answers): parsed exactly when read, glanced at when not."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from compliance_loadtest.answers import glance_at_answer, loads_json, parse_answer
from compliance_loadtest.api import quoted_keys


@dataclass
class Answer:
    content: bytes
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})


@pytest.mark.parametrize(
    "text",
    ['{"a": 1}', "[1, 2]", ' {"a": 1}', '{"a": 1}\n', '"x"', "3", '{"a": "\\u00e9"}', "[]", "{}"],
)
def test_loads_json_reads_what_json_loads_reads(text: str) -> None:
    assert loads_json(text) == json.loads(text)


@pytest.mark.parametrize("text", ["", "{", '{"a": 1} x', "nope", '{"a": 1}{"b": 2}', "[1,]"])
def test_loads_json_refuses_what_json_loads_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        loads_json(text)


REQUIRED = ("id", "usage.completion_tokens")


def check(body: bytes, required: tuple[str, ...] = REQUIRED) -> tuple[object, str | None, str | None]:
    answer = Answer(body)
    parsed, problem = parse_answer(answer, required, frozenset(required))
    return parsed, problem, glance_at_answer(answer, required, frozenset(required), quoted_keys(required))


def test_a_whole_answer_passes_both_ways() -> None:
    parsed, problem, glanced = check(b'{"id": "e1", "usage": {"completion_tokens": 3}}')
    assert parsed == {"id": "e1", "usage": {"completion_tokens": 3}} and problem is None and glanced is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"usage": {"completion_tokens": 3}}', "response lacks id"),
        (b'{"id": "e1", "usage": {}}', "response lacks usage.completion_tokens"),
        (b"", "empty body, expected fields id, usage.completion_tokens"),
        (b'{"id": ', "body is not valid JSON"),
        (b"[1, 2]", "response lacks id, usage.completion_tokens"),
    ],
)
def test_a_faulty_answer_fails_with_the_same_message_read_or_not(body: bytes, message: str) -> None:
    _, problem, glanced = check(body)
    assert problem == message and glanced == message


def test_an_answer_that_is_not_json_says_what_it_is() -> None:
    answer = Answer(b"<html>", {"content-type": "text/html"})
    assert parse_answer(answer, ("id",), frozenset({"id"}))[1] == "expected JSON with id, got text/html"
    assert parse_answer(answer, (), frozenset()) == (b"<html>", None)  # nothing required: the bytes


def test_a_glance_trusts_a_quoted_key_it_finds_without_parsing() -> None:
    # The price of not parsing: a key found anywhere counts; reading the answer checks the top level.
    _, problem, glanced = check(b'{"data": {"id": 1, "completion_tokens": 2}}')
    assert problem == "response lacks id, usage.completion_tokens" and glanced is None
