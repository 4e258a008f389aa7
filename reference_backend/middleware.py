"""The ASGI layer in front of the routes: request counting, a set delay, body-size limit, rate limit, fault
injection.

Pure ASGI (not Starlette's BaseHTTPMiddleware, which costs a task and a queue per request). Everything
here runs on the event loop thread, so the counters are plain dicts needing no lock. `/admin/*` is
never counted, limited or faulted, so a test can always reach it.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from reference_backend.faults import FaultSet
from reference_backend.security import TokenError, decode_token
from reference_backend.settings import RateLimit, Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Chat streams apply stalls and drops mid-stream themselves (see faults.py); WebSocket messages are
# counted and faulted by the WebSocket handler, one per message.
STREAM_PATHS = frozenset({"/api/chat/stream"})
UNLIMITED_PATHS = frozenset({"/health", "/ready"})


class RequestCounter:
    """Requests received, total and per `METHOD /route/{template}`; WebSocket messages as `WS /ws/chat`."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total = 0
        self.routes: dict[str, int] = {}
        self.websocket_connections = 0
        self.since = time.time()

    def add(self, key: str) -> None:
        self.total += 1
        self.routes[key] = self.routes.get(key, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "routes": dict(sorted(self.routes.items())),
            "websocket_connections": self.websocket_connections,
            "since": self.since,
        }


class RateLimiter:
    """Fixed windows per key: at most `requests` per `per_seconds`; keys are users, else client IPs."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._windows: dict[str, tuple[float, int]] = {}
        self._last_prune = time.monotonic()

    def retry_after(self, key: str) -> float:
        """0 when the request may pass (and is counted), else seconds until the key's window reopens."""
        now = time.monotonic()
        if now - self._last_prune > 60:
            self._windows = {k: w for k, w in self._windows.items() if now - w[0] < self.limit.per_seconds}
            self._last_prune = now
        start, count = self._windows.get(key, (now, 0))
        if now - start >= self.limit.per_seconds:
            start, count = now, 0
        if count >= self.limit.requests:
            self._windows[key] = (start, count)
            return max(start + self.limit.per_seconds - now, 0.001)
        self._windows[key] = (start, count + 1)
        return 0.0


def route_key(app: Any, scope: Scope) -> str:
    """`METHOD /path/{template}` of the route the request matched (or would match), `unmatched` if none."""
    method = scope.get("method", "WS")
    route = scope.get("route")
    if route is None:
        from starlette.routing import Match

        for candidate in app.router.routes:
            match, _ = candidate.matches(scope)
            if match is Match.FULL:
                route = candidate
                break
    path = getattr(route, "path", None)
    return f"{method} {path}" if path else f"{method} unmatched"


async def _send_json(send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class Gateway:
    """Wraps the FastAPI app; see the module docstring for what it does and in which order."""

    def __init__(
        self,
        app: ASGIApp,
        fastapi_app: Any,
        settings: Settings,
        counter: RequestCounter,
        faults: FaultSet,
        limiter: RateLimiter | None,
    ) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self.settings = settings
        self.counter = counter
        self.faults = faults
        self.limiter = limiter
        self.max_body = settings.max_body_bytes
        # A known capacity (settings.capacity_slots): slots held for the fixed service time.
        self.slots = asyncio.Semaphore(settings.capacity_slots) if settings.capacity_slots > 0 else None
        self.service_s = settings.service_ms / 1000.0
        # A known latency shape (settings.delay_median_ms): a seeded lognormal wait before each request.
        self.delay = random.Random(settings.delay_seed) if settings.delay_median_ms > 0 else None
        self.delay_log_median = math.log(max(settings.delay_median_ms, 1e-9) / 1000.0)
        self.delay_sigma = settings.delay_sigma

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/admin/"):
            await self.app(scope, receive, send)
            return
        try:
            if self.delay is not None and scope["path"] != "/ready":
                await asyncio.sleep(self.delay.lognormvariate(self.delay_log_median, self.delay_sigma))
            if self.slots is not None and scope["path"] not in UNLIMITED_PATHS:
                async with self.slots:
                    await asyncio.sleep(self.service_s)
                    await self._http(scope, receive, send)
            else:
                await self._http(scope, receive, send)
        except Exception as exc:
            # An injected drop ends a stream mid-way: let uvicorn close the connection, without a traceback.
            if type(exc).__name__ != "StreamDropped":
                raise
        finally:
            self.counter.add(route_key(self.fastapi_app, scope))

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if self.limiter is not None and path not in UNLIMITED_PATHS:
            wait = self.limiter.retry_after(self._limit_key(scope))
            if wait:
                seconds = math.ceil(wait)
                await _send_json(
                    send,
                    429,
                    {"detail": f"rate limit exceeded; retry after {seconds} s"},
                    [(b"retry-after", str(seconds).encode())],
                )
                return
        if self.faults:
            decision = self.faults.decide(scope["method"], path)
            if decision is not None:
                scope["cgpt.faults"] = decision
                delay = decision.latency_s + (decision.stall_s if path not in STREAM_PATHS else 0.0)
                if delay:
                    await asyncio.sleep(delay)
                if decision.error_status is not None:
                    await _send_json(send, decision.error_status, {"detail": "injected fault"})
                    return
        if scope["method"] in ("POST", "PUT", "PATCH"):
            body = await self._read_body(scope, receive, send)
            if body is None:
                return
            sent = False

            async def replay() -> Message:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
        else:
            await self.app(scope, receive, send)

    def _limit_key(self, scope: Scope) -> str:
        for name, value in scope["headers"]:
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                try:
                    claims = decode_token(self.settings.jwt_secret, value[7:].decode(), "access")
                    return "user:" + str(claims["sub"])
                except (TokenError, UnicodeDecodeError):
                    break
        client = scope.get("client")
        return "ip:" + (client[0] if client else "unknown")

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None after answering 413 (declared or streamed size over the limit)."""
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_json(send, 400, {"detail": "invalid Content-Length"})
                    return None
                if declared > self.max_body:
                    await _send_json(send, 413, {"detail": f"request body over {self.max_body} bytes"})
                    return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _send_json(send, 413, {"detail": f"request body over {self.max_body} bytes"})
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
