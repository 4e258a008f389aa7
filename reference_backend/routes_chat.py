"""The AI assistant: conversations, messages, and replies whole (`/api/chat/send`), as Server-Sent Events
(`/api/chat/stream`) or over a WebSocket (`/ws/chat`).

Replies come from `model.SimulatedModel` and cite the organisation's own evidence found by full-text
search. Waiting for the simulated model happens on the event loop (`asyncio.sleep`), never in the
threadpool, so thousands of slow streams cost no threads. Streams (SSE, and WebSocket questions in
flight) per user are bounded by `Settings.max_streams_per_user`; over it the answer is 429.

SSE format: `event: token` / `data: {"content": "...", "index": i}` per token, then `event: done` /
`data: {"conversation_id", "message_id", "response", "usage", "citations"}`.
WebSocket: client sends `{"type": "question", "message": ..., "conversation_id"?: ..., "token"?: ...}`
(the token in the first message or as `?token=`); server sends `{"type": "token", "content": ...}`
frames, then `{"type": "response", "content": <whole reply>, "usage", "citations", "conversation_id",
"message_id"}`; errors are `{"type": "error", "status": N, "detail": ...}` frames. A missing or bad
token closes the socket with 1008 (policy violation); an injected drop closes it with 1011.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from reference_backend.core import (
    AppState,
    Caller,
    Principal,
    check_id,
    json_response,
    not_found,
    principal_from_token,
    state,
    validation_error,
)
from reference_backend.db import new_id, now_iso
from reference_backend.faults import Decision
from reference_backend.model import keywords
from reference_backend.routes_evidence import search_rows

router = APIRouter(tags=["chat"])


class StreamDropped(Exception):
    """Raised inside a stream to drop the connection mid-way (fault injection)."""


class ConversationIn(BaseModel):
    title: Annotated[str, Field(min_length=1, max_length=300)] = "New conversation"
    context: dict[str, Any] = {}


class ChatIn(BaseModel):
    message: Annotated[str, Field(min_length=1)]
    conversation_id: str | None = None
    context: dict[str, Any] = {}


def _conversation(st: AppState, p: Principal, conversation_id: str) -> dict[str, Any]:
    row = st.db.fetchone(
        "SELECT id, organization_id, user_id, title, context, created_at, updated_at FROM conversations"
        " WHERE id = ? AND organization_id = ?",
        (check_id(conversation_id, "conversation"), p.org_id),
    )
    if row is None:
        raise not_found("conversation")
    return row


def _create_conversation(st: AppState, p: Principal, title: str, context: dict[str, Any]) -> dict[str, Any]:
    cid, now = new_id(), now_iso()
    st.db.execute(
        "INSERT INTO conversations (id, organization_id, user_id, title, context, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (cid, p.org_id, p.user_id, title, json.dumps(context), now, now),
    )
    return {"conversation_id": cid, "id": cid, "title": title, "context": context, "created_at": now}


@router.post("/api/chat/conversations", status_code=201)
def create_conversation(body: ConversationIn, request: Request, p: Caller) -> Any:
    return json_response(_create_conversation(state(request), p, body.title, body.context), 201)


@router.get("/api/chat/conversations")
def list_conversations(request: Request, p: Caller) -> Any:
    rows = state(request).db.fetchall(
        "SELECT id, title, context, created_at, updated_at FROM conversations WHERE organization_id = ?"
        " ORDER BY created_at DESC LIMIT 100",
        (p.org_id,),
    )
    return json_response(rows)


@router.get("/api/chat/conversations/{conversation_id}/messages")
def conversation_messages(conversation_id: str, request: Request, p: Caller) -> Any:
    st = state(request)
    conv = _conversation(st, p, conversation_id)
    messages = st.db.fetchall(
        "SELECT id, seq, role, content, citations, prompt_tokens, completion_tokens, created_at FROM messages"
        " WHERE conversation_id = ? AND organization_id = ? ORDER BY seq",
        (conv["id"], p.org_id),
    )
    return json_response(
        {
            "conversation_id": conv["id"],
            "title": conv["title"],
            "messages": messages,
            "total_count": len(messages),
        }
    )


# -- one question, three transports --------------------------------------------------------------


def _check_message(st: AppState, message: str) -> None:
    limit = st.settings.max_message_chars
    if len(message) > limit:
        raise validation_error(["message"], f"at most {limit} characters, got {len(message)}")
    if not message.strip():
        raise validation_error(["message"], "may not be blank")


def _prepare(st: AppState, p: Principal, body: ChatIn) -> dict[str, Any]:
    """Threadpool part before the model runs: the conversation, the citations, the user's message."""
    db = st.db
    words = keywords(body.message)
    citations: list[dict[str, Any]] = []
    if words:
        where = "e.organization_id = ?"
        _, rows = search_rows(
            db, p, " ".join(words), where, [p.org_id], "relevance", 3, 0, any_term=True, count=False
        )
        citations = [
            {
                "evidence_id": r["id"],
                "title": r["title"],
                "evidence_type": r["evidence_type"],
                "relevance_score": r["relevance_score"],
            }
            for r in rows
        ]
    with db.transaction():
        if body.conversation_id:
            conv_id = _conversation(st, p, body.conversation_id)["id"]
        else:
            conv_id = _create_conversation(st, p, body.message[:60], body.context)["id"]
        seq = int(
            db.scalar("SELECT coalesce(max(seq), 0) FROM messages WHERE conversation_id = ?", (conv_id,))
        )
        db.execute(
            "INSERT INTO messages (id, conversation_id, organization_id, seq, role, content, citations,"
            " prompt_tokens, completion_tokens, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (new_id(), conv_id, p.org_id, seq + 1, "user", body.message, "[]", None, None, now_iso()),
        )
    tokens = st.model.reply_tokens(body.message, citations)
    return {
        "conversation_id": conv_id,
        "citations": citations,
        "tokens": tokens,
        "usage": st.model.usage(body.message, tokens, citations),
        "seq": seq + 2,
    }


def _finish(st: AppState, p: Principal, turn: dict[str, Any]) -> dict[str, Any]:
    """Threadpool part after the model: store the assistant's reply; the answer's final fields."""
    mid, now = new_id(), now_iso()
    reply = "".join(turn["tokens"])
    with st.db.transaction():
        st.db.execute(
            "INSERT INTO messages (id, conversation_id, organization_id, seq, role, content, citations,"
            " prompt_tokens, completion_tokens, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                mid,
                turn["conversation_id"],
                p.org_id,
                turn["seq"],
                "assistant",
                reply,
                json.dumps(turn["citations"]),
                turn["usage"]["prompt_tokens"],
                turn["usage"]["completion_tokens"],
                now,
            ),
        )
        st.db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, turn["conversation_id"]))
    return {
        "conversation_id": turn["conversation_id"],
        "message_id": mid,
        "response": reply,
        "citations": turn["citations"],
        "usage": turn["usage"],
        "created_at": now,
    }


def take_stream_slot(st: AppState, p: Principal) -> Callable[[], None]:
    """Take one of the user's stream slots (429 when all are taken); returns its release function,
    which frees the slot once however often it is called."""
    held = st.active_streams.get(p.user_id, 0)
    if held >= st.settings.max_streams_per_user:
        raise HTTPException(
            429,
            f"at most {st.settings.max_streams_per_user} concurrent streams per user",
            headers={"Retry-After": "1"},
        )
    st.active_streams[p.user_id] = held + 1
    released = False

    def release() -> None:
        nonlocal released
        if released:
            return
        released = True
        left = st.active_streams.get(p.user_id, 1) - 1
        if left > 0:
            st.active_streams[p.user_id] = left
        else:
            st.active_streams.pop(p.user_id, None)

    return release


async def _tokens(st: AppState, tokens: list[str], fault: Decision | None) -> AsyncIterator[tuple[int, str]]:
    """The tokens at the model's pace, with an injected stall or drop applied mid-way.

    Each token is due at a fixed time after the one before was due, not after it was sent: sleeping
    `token_s` after each send made every token late by the time a send takes on a busy core (about
    5% at 25 ms a token), so the stream ran slower than the pace it was configured with."""
    model = st.model
    loop = asyncio.get_running_loop()
    due = loop.time()
    for i, tok in enumerate(tokens):
        if fault is not None:
            if fault.drop_after_tokens is not None and i >= fault.drop_after_tokens:
                raise StreamDropped(f"dropped after {i} tokens")
            if fault.stall_s and i == fault.stall_after_tokens:
                await asyncio.sleep(fault.stall_s)
                due = loop.time()
        delay = model.first_token_s if i == 0 else model.token_s
        if delay:
            due += delay
            await asyncio.sleep(max(0.0, due - loop.time()))
        yield i, tok


@router.post("/api/chat/send")
async def chat_send(body: ChatIn, request: Request, p: Caller) -> Any:
    st = state(request)
    _check_message(st, body.message)
    turn = await run_in_threadpool(_prepare, st, p, body)
    delay = st.model.generation_seconds(len(turn["tokens"]))
    if delay:
        await asyncio.sleep(delay)
    return json_response(await run_in_threadpool(_finish, st, p, turn))


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class _SlotStream(StreamingResponse):
    """A streaming response that frees its stream slot however it ends (done, dropped, client gone),
    including a client gone before the first chunk, when the generator's own `finally` never runs."""

    def __init__(self, release: Callable[[], Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


@router.post("/api/chat/stream")
async def chat_stream(body: ChatIn, request: Request, p: Caller) -> Any:
    st = state(request)
    _check_message(st, body.message)
    fault: Decision | None = request.scope.get("cgpt.faults")
    release = take_stream_slot(st, p)
    try:
        turn = await run_in_threadpool(_prepare, st, p, body)
    except BaseException:
        release()
        raise

    async def events() -> AsyncIterator[bytes]:
        async for i, tok in _tokens(st, turn["tokens"], fault):
            yield _sse("token", {"content": tok, "index": i})
        final = await run_in_threadpool(_finish, st, p, turn)
        yield _sse("done", final)

    return _SlotStream(
        release,
        events(),
        media_type="text/event-stream",
        headers={
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            "X-Conversation-Id": turn["conversation_id"],
        },
    )


@router.websocket("/ws/chat")
async def chat_websocket(ws: WebSocket) -> None:
    st: AppState = ws.app.state.backend
    st.counter.websocket_connections += 1
    await ws.accept()
    principal: Principal | None = None
    query_token = ws.query_params.get("token")
    if query_token is not None:
        principal = await _ws_auth(ws, st, query_token)
        if principal is None:
            return
    try:
        while True:
            raw = await ws.receive_text()
            st.counter.add("WS /ws/chat")
            try:
                msg = json.loads(raw)
                if not isinstance(msg, dict):
                    raise ValueError("not an object")
            except ValueError:
                await ws.send_json(
                    {"type": "error", "status": 422, "detail": "each message is a JSON object"}
                )
                continue
            if principal is None:
                principal = await _ws_auth(ws, st, msg.get("token"))
                if principal is None:
                    return
                if msg.get("type") == "auth" or "message" not in msg:
                    await ws.send_json({"type": "authenticated", "user_id": principal.user_id})
                    continue
            if msg.get("type") == "ping":
                await ws.send_json({"type": "pong"})
                continue
            if not await _ws_question(ws, st, principal, msg):
                return
    except (WebSocketDisconnect, OSError):  # uvicorn's ClientDisconnected is an OSError
        return


async def _ws_auth(ws: WebSocket, st: AppState, token: Any) -> Principal | None:
    try:
        return principal_from_token(st.settings, token if isinstance(token, str) else None)
    except HTTPException as exc:
        await ws.close(code=1008, reason=str(exc.detail))
        return None


async def _ws_question(ws: WebSocket, st: AppState, p: Principal, msg: dict[str, Any]) -> bool:
    """Answer one question; False when the socket was closed (dropped by a fault)."""
    fault = st.faults.decide("WS", "/ws/chat") if st.faults else None
    if fault is not None:
        if fault.latency_s:
            await asyncio.sleep(fault.latency_s)
        if fault.error_status is not None:
            await ws.send_json({"type": "error", "status": fault.error_status, "detail": "injected fault"})
            return True
    message = msg.get("message")
    if not isinstance(message, str) or not message:
        await ws.send_json(
            {"type": "error", "status": 422, "detail": "message: a non-empty string is required"}
        )
        return True
    try:
        _check_message(st, message)
        body = ChatIn(
            message=message, conversation_id=msg.get("conversation_id"), context=msg.get("context") or {}
        )
        release = take_stream_slot(st, p)
        try:
            turn = await run_in_threadpool(_prepare, st, p, body)
            try:
                async for _, tok in _tokens(st, turn["tokens"], fault):
                    await ws.send_json({"type": "token", "content": tok})
            except StreamDropped:
                await ws.close(code=1011, reason="injected fault: stream dropped")
                return False
            final = await run_in_threadpool(_finish, st, p, turn)
        finally:
            release()
    except HTTPException as exc:
        await ws.send_json({"type": "error", "status": exc.status_code, "detail": exc.detail})
        return True
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        await ws.send_json({"type": "error", "status": 422, "detail": str(exc)})
        return True
    await ws.send_json(
        {
            "type": "response",
            "content": final["response"],
            "usage": final["usage"],
            "citations": final["citations"],
            "conversation_id": final["conversation_id"],
            "message_id": final["message_id"],
        }
    )
    return True
