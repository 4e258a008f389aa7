"""Small clients for the backend tests: fresh users, raw HTTP, Server-Sent Events."""

from __future__ import annotations

import http.client
import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tests.backend_process import Backend

PASSWORD = "correct-horse-battery"


@dataclass
class User:
    backend: Backend
    email: str
    user_id: str
    org_id: str
    token: str
    refresh_token: str

    def call(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        return self.backend.request(method, path, body, token=self.token)

    def ok(self, method: str, path: str, body: object = None, status: int = 200) -> Any:
        got, data = self.call(method, path, body)
        assert got == status, f"{method} {path}: expected {status}, got {got}: {data}"
        return data


def new_user(backend: Backend, org_name: str | None = None) -> User:
    email = f"u{uuid.uuid4().hex[:12]}@example.com"
    body: dict[str, Any] = {"email": email, "password": PASSWORD, "full_name": "Test User"}
    if org_name:
        body["organization_name"] = org_name
    status, reg = backend.request("POST", "/api/auth/register", body)
    assert status == 201, reg
    status, tokens = backend.request("POST", "/api/auth/login", {"email": email, "password": PASSWORD})
    assert status == 200, tokens
    return User(
        backend,
        email,
        reg["user_id"],
        reg["organization_id"],
        tokens["access_token"],
        tokens["refresh_token"],
    )


def raw_request(
    backend: Backend, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request over http.client, for bodies and headers urllib would not send as given."""
    u = urlsplit(backend.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def sse_events(
    backend: Backend, token: str, body: dict[str, Any], max_events: int | None = None, timeout: float = 30
) -> tuple[int, list[tuple[str, Any]]]:
    """POST /api/chat/stream and parse the events; stop (disconnecting) after max_events if given."""
    u = urlsplit(backend.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    events: list[tuple[str, Any]] = []
    try:
        conn.request(
            "POST",
            "/api/chat/stream",
            body=json.dumps(body),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        resp = conn.getresponse()
        if resp.status != 200:
            return resp.status, [("error", json.loads(resp.read() or b"null"))]
        event, data = "message", ""
        while True:
            line = resp.readline()
            if not line:
                break
            text = line.decode().rstrip("\r\n")
            if text.startswith("event:"):
                event = text[6:].strip()
            elif text.startswith("data:"):
                data += text[5:].strip()
            elif text == "" and data:
                events.append((event, json.loads(data)))
                event, data = "message", ""
                if max_events is not None and len(events) >= max_events:
                    break
        return resp.status, events
    finally:
        conn.close()
