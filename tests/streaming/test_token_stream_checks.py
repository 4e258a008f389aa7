"""`TokenStream` refuses every way a streamed reply can break its protocol, with a message saying what
was expected: tokens out of order or without content, a final message missing, early, doubled, or
disagreeing with the tokens that arrived. (The backend never sends these, so the real runs cannot.)"""

from __future__ import annotations

import re
from typing import Any

import pytest

from compliance_loadtest.streaming import StreamError, TokenStream, fire_llm_measures


def streamed(*tokens: str) -> TokenStream:
    stream = TokenStream("sse")
    for i, content in enumerate(tokens):
        stream.token({"content": content, "index": i})
    return stream


def test_a_well_formed_reply_is_accepted_and_measured() -> None:
    stream = streamed("Hello ", "world")
    stream.done(
        {"response": "Hello world", "usage": {"completion_tokens": 2}, "citations": []},
        content_key="response",
    )
    assert stream.tokens == 2
    assert stream.ttft_ms is not None and 0 <= stream.ttft_ms <= stream.total_ms
    assert stream.inter_token_ms is not None and stream.inter_token_ms >= 0
    assert stream.tokens_per_second > 0
    assert stream.record_context() == {"ttft_ms": stream.ttft_ms, "tokens": 2}


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"content": "b", "index": 2}, "token out of order: expected index 1, got 2"),
        ({"content": "b", "index": 0}, "token out of order: expected index 1, got 0"),
        ({"index": 1}, "token 1 has no string 'content'"),
        ({"content": 7, "index": 1}, "token 1 has no string 'content'"),
        (["b"], "token message is not an object"),
    ],
)
def test_a_broken_token_is_refused(message: object, error: str) -> None:
    stream = streamed("a")
    with pytest.raises(StreamError, match="^" + re.escape(f"sse: {error}")):
        stream.token(message)


@pytest.mark.parametrize(
    ("tokens", "final", "error"),
    [
        (("a", "b"), {"response": "ab"}, "final message has no usage.completion_tokens"),
        (
            ("a", "b"),
            {"response": "ab", "usage": {"completion_tokens": 3}},
            "usage.completion_tokens is 3 but 2",
        ),
        (("a", "b"), {"response": "a b", "usage": {"completion_tokens": 2}}, "final 'response' differs"),
        (("a", "b"), {"usage": {"completion_tokens": 2}}, "final message has no string 'response'"),
        ((), {"response": "", "usage": {"completion_tokens": 0}}, "final message before any token"),
    ],
)
def test_a_final_message_that_disagrees_with_the_tokens_is_refused(
    tokens: tuple[str, ...], final: dict[str, object], error: str
) -> None:
    stream = streamed(*tokens)
    with pytest.raises(StreamError, match="^" + re.escape(f"sse: {error}")):
        stream.done(final, content_key="response")


def test_nothing_may_follow_the_final_message() -> None:
    stream = streamed("a")
    stream.done({"response": "a", "usage": {"completion_tokens": 1}}, content_key="response")
    with pytest.raises(StreamError, match=r"^sse: token after the final message"):
        stream.token({"content": "b", "index": 1})
    with pytest.raises(StreamError, match=r"^sse: a second final message"):
        stream.done({"response": "a", "usage": {"completion_tokens": 1}})


class _Events:
    """Collects what `fire_llm_measures` fires (the request event's keywords)."""

    def __init__(self) -> None:
        self.fired: list[dict[str, Any]] = []

    def fire(self, **event: Any) -> None:
        self.fired.append(event)


def test_the_llm_entries_are_times_and_not_streams() -> None:
    stream = streamed("Hello ", "world")
    stream.done({"response": "Hello world", "usage": {"completion_tokens": 2}}, content_key="response")
    events = _Events()
    whole_reply_context = {"user_class": "U", "tags": "ai", **stream.record_context()}
    fire_llm_measures(events, stream, whole_reply_context)
    by_name = {e["name"]: e for e in events.fired}
    # No tokens/s entry: its "response time" would be a rate among times (Locust's Aggregated row).
    assert set(by_name) == {"sse time to first token", "sse inter-token latency", "sse total"}
    assert by_name["sse total"]["response_time"] == stream.total_ms
    assert by_name["sse time to first token"]["response_time"] == stream.ttft_ms
    for event in events.fired:
        assert event["request_type"] == "LLM" and event["exception"] is None
        # ttft_ms and tokens mark the whole reply's own row, the one row per stream.
        assert event["context"] == {"user_class": "U", "tags": "ai", "group": "ai"}
