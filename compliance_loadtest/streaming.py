"""Reading streamed chat replies (HTTP server-sent events, WebSocket frames) and measuring them.

A streamed reply is judged as a whole: tokens in order, each with its fields, then exactly one final
message with the usage. `TokenStream` checks that and keeps the timings. The request event of the whole
reply (`POST /api/chat/stream`, `WS ws reply`) carries `ttft_ms` and `tokens` in its context
(`record_context`), from which the analysis derives tokens per second (tokens / whole reply time).
`fire_llm_measures` adds the `LLM` stat entries named in docs/run-folder.md (`<transport> time to first
token`, `<transport> inter-token latency`, `<transport> total`), so thresholds can name them like any
request; every one of them is a time in milliseconds, so Locust's Aggregated row and its response-time
chart stay times, and none carries `ttft_ms` or `tokens`: the whole reply is the one row per stream.

Nothing here sends requests or logs: the users do, and report every problem as a failure.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

LLM = "LLM"
# The context keys that mark a row as a whole streamed reply (the record's `ttft_ms` and `tokens`).
_STREAM_KEYS = frozenset(("ttft_ms", "tokens"))


class StreamError(Exception):
    """A streamed reply broke its protocol: ended early, tokens out of order, a field missing."""


@dataclass(frozen=True)
class SseEvent:
    event: str
    data: str

    def json(self) -> Any:
        try:
            return json.loads(self.data)
        except ValueError:
            raise StreamError(f"{self.event!r} event data is not JSON: {self.data[:80]!r}") from None


class SseReader:
    """The events of a Locust `FastHttpSession` response sent with `stream=True`, as they arrive.

    Lines are read with the underlying geventhttpclient response's `readline`, which returns as soon as
    a line is in: `iter_content(1024)` waits until 1024 bytes are buffered, which would delay every
    token of a reply and hide its real time to first token. A connection closed in mid-reply raises
    (geventhttpclient's HTTPParseError "Incomplete response"), as does a network timeout.
    `bytes_read` counts the body read so far.
    """

    def __init__(self, response: Any) -> None:
        raw = getattr(response, "_response", None)
        if raw is None or not hasattr(raw, "readline"):
            raise StreamError("the response has no readable body")
        self._raw: Any = raw
        self.bytes_read = 0

    def __iter__(self) -> Iterator[SseEvent]:
        event, data = "message", list[str]()
        while True:
            line = self._raw.readline(b"\n")
            self.bytes_read += len(line)
            if not line:  # the body ended
                if data:
                    yield SseEvent(event, "\n".join(data))
                return
            text = line.decode("utf-8", errors="replace").rstrip("\r\n")
            if not text:
                if data:
                    yield SseEvent(event, "\n".join(data))
                event, data = "message", []
            elif text.startswith(":"):
                continue  # a comment or keep-alive
            else:
                key, _, value = text.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if key == "event":
                    event = value
                elif key == "data":
                    data.append(value)


@dataclass
class TokenStream:
    """Checks one streamed reply token by token and times it with `time.perf_counter`.

    Create it just before sending the question; call `token()` for each token message and `done()`
    for the final one. Both raise `StreamError` with a message saying what was expected.
    """

    transport: str
    started: float = field(default_factory=time.perf_counter)
    token_times: list[float] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    finished: float | None = None
    usage: Mapping[str, Any] = field(default_factory=dict)
    citations: list[Any] = field(default_factory=list)
    conversation_id: str | None = None

    def token(self, message: Any) -> None:
        now = time.perf_counter()
        if self.finished is not None:
            raise StreamError(f"{self.transport}: token after the final message")
        if not isinstance(message, Mapping):
            raise StreamError(f"{self.transport}: token message is not an object: {message!r:.80}")
        content = message.get("content")
        if not isinstance(content, str):
            raise StreamError(f"{self.transport}: token {len(self.token_times)} has no string 'content'")
        index = message.get("index")
        if index is not None and index != len(self.token_times):
            raise StreamError(
                f"{self.transport}: token out of order: expected index {len(self.token_times)}, got {index!r}"
            )
        self.token_times.append(now)
        self.text.append(content)

    def done(self, message: Any, *, content_key: str | None = None) -> None:
        """The final message: needs `usage.completion_tokens` equal to the tokens received, and when
        `content_key` is given, that field equal to the tokens joined."""
        now = time.perf_counter()
        if self.finished is not None:
            raise StreamError(f"{self.transport}: a second final message")
        if not isinstance(message, Mapping):
            raise StreamError(f"{self.transport}: final message is not an object: {message!r:.80}")
        usage = message.get("usage")
        if not isinstance(usage, Mapping) or not isinstance(usage.get("completion_tokens"), int):
            raise StreamError(f"{self.transport}: final message has no usage.completion_tokens")
        if not self.token_times:
            raise StreamError(f"{self.transport}: final message before any token")
        if usage["completion_tokens"] != len(self.token_times):
            raise StreamError(
                f"{self.transport}: usage.completion_tokens is {usage['completion_tokens']} but "
                f"{len(self.token_times)} tokens arrived"
            )
        if content_key is not None:
            content = message.get(content_key)
            if not isinstance(content, str):
                raise StreamError(f"{self.transport}: final message has no string {content_key!r}")
            if content != "".join(self.text):
                raise StreamError(f"{self.transport}: final {content_key!r} differs from the tokens streamed")
        self.usage = usage
        citations = message.get("citations")
        self.citations = list(citations) if isinstance(citations, list) else []
        self.finished = now

    @property
    def tokens(self) -> int:
        return len(self.token_times)

    @property
    def ttft_ms(self) -> float | None:
        return (self.token_times[0] - self.started) * 1000 if self.token_times else None

    @property
    def total_ms(self) -> float:
        end = self.finished if self.finished is not None else time.perf_counter()
        return (end - self.started) * 1000

    @property
    def inter_token_ms(self) -> float | None:
        """Mean gap between consecutive tokens; None with fewer than two tokens."""
        if len(self.token_times) < 2:
            return None
        return (self.token_times[-1] - self.token_times[0]) * 1000 / (len(self.token_times) - 1)

    @property
    def tokens_per_second(self) -> float:
        """Tokens over the whole reply time, first-token wait included (what a reader experiences): what
        the analysis derives from the whole reply's row. Not a stat entry of its own."""
        seconds = self.total_ms / 1000
        return self.tokens / seconds if seconds > 0 else 0.0

    def record_context(self) -> dict[str, Any]:
        """`ttft_ms` and `tokens` for the context of the request event of the whole reply, and of no
        other: a row with them is a stream's row."""
        return {"ttft_ms": self.ttft_ms, "tokens": self.tokens}


def fire_llm_measures(
    request_event: Any, stream: TokenStream, context: Mapping[str, Any] | None = None
) -> None:
    """Fire the `LLM` entries of one complete reply, each a time in milliseconds: time to first token,
    mean inter-token latency (one event per reply, so the record grows with replies, not tokens) and
    total. Their context is `context` with group `ai`, without `ttft_ms` and `tokens` (those belong to
    the whole reply's own event). Nothing is fired for a reply without tokens."""
    if stream.ttft_ms is None:
        return
    t = stream.transport
    start_time = time.time() - stream.total_ms / 1000
    base = {key: value for key, value in (context or {}).items() if key not in _STREAM_KEYS}
    base["group"] = "ai"
    measures: list[tuple[str, float]] = [(f"{t} time to first token", stream.ttft_ms)]
    if stream.inter_token_ms is not None:
        measures.append((f"{t} inter-token latency", stream.inter_token_ms))
    measures.append((f"{t} total", stream.total_ms))
    for name, value in measures:
        request_event.fire(
            request_type=LLM,
            name=name,
            response_time=value,
            response_length=stream.tokens,
            response=None,
            context=base,
            exception=None,
            start_time=start_time,
            url=None,
        )
