"""Chat streams: SSE and WebSocket replies arrive complete and in order, match the whole reply of
/api/chat/send, reject bad tokens, stay bounded per user, and survive clients that leave mid-stream."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import websocket

from tests.backend.clients import User, new_user, sse_events
from tests.backend_process import Backend, run_backend

QUESTION = "Which evidence covers encryption at rest for SOC 2?"


def ws_url(backend: Backend, query: str = "") -> str:
    return backend.url.replace("http://", "ws://") + "/ws/chat" + query


def ws_ask(conn: websocket.WebSocket, payload: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    conn.send(json.dumps(payload))
    tokens: list[str] = []
    while True:
        frame = json.loads(conn.recv())
        if frame["type"] == "token":
            tokens.append(frame["content"])
        else:
            return tokens, frame


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """A backend whose model takes 20 ms per token and allows two streams per user."""
    settings = {"CGPT_LLM_TOKEN_MS": "20", "CGPT_MAX_STREAMS_PER_USER": "2"}
    with run_backend(tmp_path_factory.mktemp("slow"), settings=settings) as b:
        yield b


def test_sse_stream_is_complete_ordered_and_equals_send(any_backend: Backend) -> None:
    user = new_user(any_backend)
    cited = user.ok("POST", "/api/evidence", {"title": "Encryption at rest configuration"}, status=201)
    status, events = sse_events(any_backend, user.token, {"message": QUESTION})
    assert status == 200
    kinds = [e for e, _ in events]
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"token"} and len(kinds) > 10
    assert [d["index"] for _, d in events[:-1]] == list(range(len(events) - 1))
    done = events[-1][1]
    text = "".join(d["content"] for _, d in events[:-1])
    assert text == done["response"]
    assert done["usage"]["completion_tokens"] == len(events) - 1
    assert [c["evidence_id"] for c in done["citations"]] == [cited["id"]]
    whole = user.ok("POST", "/api/chat/send", {"message": QUESTION})
    assert whole["response"] == text
    history = user.ok("GET", f"/api/chat/conversations/{done['conversation_id']}/messages")["messages"]
    assert [m["role"] for m in history] == ["user", "assistant"] and history[1]["content"] == text


def test_websocket_token_in_first_message_or_query(any_backend: Backend) -> None:
    user = new_user(any_backend)
    expected = user.ok("POST", "/api/chat/send", {"message": QUESTION})["response"]
    conn = websocket.create_connection(ws_url(any_backend), timeout=30)
    try:
        tokens, final = ws_ask(conn, {"type": "question", "message": QUESTION, "token": user.token})
        assert final["type"] == "response" and "".join(tokens) == final["content"] == expected
        assert final["usage"]["completion_tokens"] == len(tokens)
        # The same socket answers further questions in the same conversation.
        tokens2, final2 = ws_ask(
            conn, {"type": "question", "message": "And GDPR?", "conversation_id": final["conversation_id"]}
        )
        assert final2["conversation_id"] == final["conversation_id"] and "".join(tokens2) == final2["content"]
    finally:
        conn.close()
    conn = websocket.create_connection(ws_url(any_backend, f"?token={user.token}"), timeout=30)
    try:
        tokens, final = ws_ask(conn, {"type": "question", "message": QUESTION})
        assert "".join(tokens) == final["content"] == expected
    finally:
        conn.close()


@pytest.mark.parametrize("where", ["query", "first message", "missing"])
def test_websocket_bad_token_closes_with_policy_violation(backend: Backend, where: str) -> None:
    query = "?token=garbage" if where == "query" else ""
    conn = websocket.create_connection(ws_url(backend, query), timeout=10)
    try:
        if where != "query":
            first = {"type": "question", "message": "hi"}
            if where == "first message":
                first["token"] = "garbage"
            conn.send(json.dumps(first))
        opcode, data = conn.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(data[:2], "big") == 1008
    finally:
        conn.close()


def _abandon_sse(backend: Backend, user: User, tokens_before_leaving: int) -> None:
    status, events = sse_events(backend, user.token, {"message": QUESTION}, max_events=tokens_before_leaving)
    assert status == 200 and len(events) == tokens_before_leaving and events[-1][0] == "token"


def test_clients_leaving_mid_stream_leave_the_server_healthy(slow_model: Backend) -> None:
    user = new_user(slow_model)
    for _ in range(3):  # more departures than the user's two stream slots: slots must be given back
        _abandon_sse(slow_model, user, 3)
        conn = websocket.create_connection(ws_url(slow_model, f"?token={user.token}"), timeout=10)
        conn.send(json.dumps({"type": "question", "message": QUESTION}))
        assert json.loads(conn.recv())["type"] == "token"
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
    assert slow_model.request("GET", "/health")[0] == 200
    status, events = sse_events(slow_model, user.token, {"message": QUESTION})
    assert status == 200 and events[-1][0] == "done"


def _open_stream(backend: Backend, user: User) -> tuple[http.client.HTTPConnection, int]:
    """Start an SSE stream and leave it unread: its slot stays held until the connection closes."""
    u = urlsplit(backend.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request(
        "POST",
        "/api/chat/stream",
        body=json.dumps({"message": QUESTION}),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {user.token}"},
    )
    return conn, conn.getresponse().status


def test_streams_per_user_are_bounded(slow_model: Backend) -> None:
    user, other = new_user(slow_model), new_user(slow_model)
    held = [_open_stream(slow_model, user) for _ in range(2)]
    try:
        assert [status for _, status in held] == [200, 200]
        status, events = sse_events(slow_model, user.token, {"message": QUESTION})
        assert status == 429 and "concurrent streams" in events[0][1]["detail"]
        assert sse_events(slow_model, other.token, {"message": "hi"})[0] == 200
    finally:
        for conn, _ in held:
            conn.close()
