"""The AI assistant over HTTP: conversations, history, a whole reply, and a reply streamed over SSE.

A streamed reply (`ask_sse`) is read token by token and judged as a whole: tokens in order, then one
`done` event whose `response` is the tokens joined and whose usage counts them; anything else is a
failure with a message. Its entry `POST /api/chat/stream` times the whole reply (not only the time to
the headers) and carries `ttft_ms` and `tokens` in its context; time to first token, inter-token
latency, total and tokens per second are `LLM` entries of their own (`sse time to first token`, ...).
"""

from __future__ import annotations

import json
from typing import Any

from compliance_loadtest.steps.base import StepFailed, required
from compliance_loadtest.streaming import SseReader, StreamError, TokenStream, fire_llm_measures


def new_conversation(user: Any, title: str | None = None) -> str:
    """`POST /api/chat/conversations`; its id, which becomes `workspace.conversation_id`."""
    title = title or f"{user.fake.bs().capitalize()} review"
    body = user.call(
        "POST", "chat.conversations", json={"title": title, "context": {}}, fields=("created_at",)
    )
    conversation_id = str(required(user, body, "open a conversation")["conversation_id"])
    user.workspace.remember_conversation(conversation_id)
    return conversation_id


def history(user: Any) -> dict[str, Any]:
    """`GET /api/chat/conversations/[id]/messages` of one of the user's conversations (a new one if
    it has none)."""
    conversations = user.workspace.conversation_ids
    conversation_id = user.rng.choice(conversations) if conversations else new_conversation(user)
    body = user.call("GET", "chat.messages", ids={"id": conversation_id}, fields=("messages", "total_count"))
    return required(user, body, "conversation history")


def _payload(user: Any, question: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = user.api.chat_payload(user.fake, user.rng, user.workspace.conversation_id)
    if question is not None:
        payload["message"] = question
    return payload


def send(user: Any, question: str | None = None) -> dict[str, Any]:
    """`POST /api/chat/send`: the whole reply at once, with citations and usage."""
    payload = _payload(user, question)
    body = user.call("POST", "chat.send", json=payload, fields=("citations", "usage.completion_tokens"))
    reply: dict[str, Any] = required(user, body, "ask the assistant")
    user.workspace.remember_conversation(reply["conversation_id"])
    return reply


def ask_sse(user: Any, question: str | None = None) -> TokenStream:
    """`POST /api/chat/stream`: ask and read the streamed reply to its end; the checked `TokenStream`.

    An expired token (401) is refreshed and the question asked once more; the refused attempt is
    recorded as `POST /api/chat/stream [401]`, as `call` records a refused request."""
    payload = _payload(user, question)
    stream, refreshed = _stream_reply(user, payload, retry=True)
    if refreshed:
        stream, _ = _stream_reply(user, payload, retry=False)
    if stream is None:
        raise StepFailed(f"streamed reply: {user.last_failure}")
    return stream


def _stream_reply(user: Any, payload: dict[str, Any], *, retry: bool) -> tuple[TokenStream | None, bool]:
    """One streamed question: (the reply when it was whole, whether a 401 was answered by refreshing)."""
    stat = user.api.name("chat.stream")
    stream = TokenStream("sse")
    headers = {**user.auth_headers(), "Accept": "text/event-stream"}
    refreshed = False
    with user.client.request(
        "POST",
        user.api.path("chat.stream"),
        name=stat,
        json=payload,
        headers=headers,
        stream=True,
        catch_response=True,
        context={},
    ) as resp:
        status = resp.status_code
        problem = _status_problem(resp, stat, status)
        if problem is None:
            reader: SseReader | None = None
            try:
                reader = SseReader(resp)
                _read(reader, stream)
            except StreamError as exc:
                problem = str(exc)
            except Exception as exc:  # the connection broke or timed out mid-reply
                problem = f"POST {stat}: stream broken ({type(exc).__name__}: {exc}) before the 'done' event"
            # The entry covers the whole reply, not only the time to the headers.
            resp.request_meta["response_time"] = stream.total_ms
            resp.request_meta["response_length"] = reader.bytes_read if reader else 0
            resp.request_meta["context"].update(stream.record_context())
        if problem is None:
            resp.success()
        elif status == 401 and retry and user.refresh_access_token():
            refreshed = True
            resp.request_meta["name"] = f"{stat} [401]"
            resp.success()  # refused, refreshed, asked again: as `call` records it
        else:
            user.last_failure = problem
            resp.failure(problem)
    if problem is not None:
        return None, refreshed
    user.workspace.remember_conversation(stream.conversation_id)
    fire_llm_measures(user.request_event, stream, user.context())
    return stream, False


def _status_problem(resp: Any, stat: str, status: int) -> str | None:
    if status == 200:
        content_type = resp.headers.get("content-type", "") if resp.headers else ""
        if "text/event-stream" not in content_type:
            return f"POST {stat}: expected text/event-stream, got {content_type or 'no content type'}"
        return None
    if status == 401:
        return f"401 Unauthorized from POST {stat}, and the token could not be refreshed"
    if status == 429:
        resp.request_meta["name"] = f"{stat} [429]"
        retry_after = resp.headers.get("retry-after", "?") if resp.headers else "?"
        return f"rate limited (429), Retry-After={retry_after}"
    if status == 0:
        error = getattr(resp, "error", None)
        return f"POST {stat}: no response ({type(error).__name__}: {error})"
    return f"POST {stat}: expected 200, got {status}{_detail(resp)}"


def _read(reader: SseReader, stream: TokenStream) -> None:
    for event in reader:
        if event.event == "token":
            stream.token(event.json())
        elif event.event == "done":
            done = event.json()
            stream.done(done, content_key="response")
            if not isinstance(done.get("citations"), list) or not done.get("conversation_id"):
                raise StreamError("sse: 'done' event lacks citations or conversation_id")
            stream.conversation_id = done["conversation_id"]
        elif event.event == "error":
            raise StreamError(f"sse: error event: {event.data[:200]}")
        else:
            raise StreamError(f"sse: unexpected event {event.event!r}")
    if stream.finished is None:
        raise StreamError("sse: stream ended without a 'done' event")


def _detail(resp: Any) -> str:
    try:
        body = json.loads(resp.content) if resp.content else None
    except (ValueError, TypeError):
        return ""
    detail = body.get("detail") if isinstance(body, dict) else None
    return f" ({str(detail)[:200]})" if isinstance(detail, str) and detail else ""
