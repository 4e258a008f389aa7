"""ChatWebSocketUser: the assistant's chat over one long-lived WebSocket per user."""

from __future__ import annotations

import json
import logging
import struct
import time
from typing import Any

import websocket
from locust import between, tag, task

from compliance_loadtest.streaming import StreamError, TokenStream, fire_llm_measures
from locust_scenarios import ApiUser

logger = logging.getLogger(__name__)

WS = "WS"
CLOSE_POLICY_VIOLATION = 1008  # what the backend closes with when it refuses the token
CLOSE_WAIT_S = 1.0  # how long a closing user waits for the server's close frame


class ChatWebSocketUser(ApiUser):
    """A user keeping the assistant's chat open in a browser tab: one WebSocket, many questions.

    It logs in over HTTP, then opens `/ws/chat` (websocket-client; Locust's gevent patching makes its
    blocking socket calls cooperate) and sends `{"type": "question", ...}` with the access token in the
    first question of each connection. Each reply arrives as `token` frames and one `response` frame
    whose `content` must be the tokens joined and whose usage must count them. Asking is what people
    do on that page (weight 5); reloading the page, which closes the socket and opens a new one, is
    rarer (1). Stats: `ws connect`, `ws first frame` and `ws reply` (request type `WS`; the reply's
    context carries `ttft_ms` and `tokens`) and the `LLM` entries with transport `ws`. A dropped
    connection, an error frame or a broken reply is a failure with a message; the next task connects
    again. The socket is closed cleanly when the user stops.
    """

    wait_time = between(3, 10)

    ws_timeout: float = 30.0
    """Seconds to wait for the connection, and for each frame of a reply, before failing it."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.ws: websocket.WebSocket | None = None
        self._token_sent = False
        self.conversation_id: str | None = None

    def on_start(self) -> None:
        super().on_start()
        self._task_tags = "ai,websocket"
        self.connect()

    def on_stop(self) -> None:
        self.disconnect()

    # --- connection ---------------------------------------------------------------------------

    def ws_url(self) -> str:
        base = (self.host or "").rstrip("/")
        scheme, _, rest = base.partition("://")
        ws_scheme = "wss" if scheme == "https" else "ws"
        return f"{ws_scheme}://{rest}{self.api.path('ws.chat')}"

    def connect(self) -> bool:
        """Open the socket; the time to the accepted handshake is the `ws connect` entry."""
        self.disconnect()
        start_time, start = time.time(), time.perf_counter()
        exception: Exception | None = None
        try:
            self.ws = websocket.create_connection(self.ws_url(), timeout=self.ws_timeout)
            self._token_sent = False
        except Exception as exc:
            exception = StreamError(
                f"ws connect to {self.api.name('ws.chat')} failed: {type(exc).__name__}: {exc}"
            )
        self._fire("ws connect", (time.perf_counter() - start) * 1000, start_time, exception)
        return exception is None

    def disconnect(self) -> None:
        """Close the socket cleanly: a close frame (1000), then a short wait for the server's.

        Done here rather than with websocket-client's `close()`, whose bare `except: pass` swallows
        the GreenletExit with which Locust stops a user, leaving that user running and the run
        unable to end."""
        ws, self.ws = self.ws, None
        if ws is None:
            return
        try:
            if ws.connected:
                ws.send_close()
                ws.settimeout(CLOSE_WAIT_S)
                deadline = time.monotonic() + CLOSE_WAIT_S
                while time.monotonic() < deadline:
                    if ws.recv_frame().opcode == websocket.ABNF.OPCODE_CLOSE:
                        break
        except (websocket.WebSocketException, OSError) as exc:  # already broken: nothing to close
            logger.debug("closing the WebSocket: %s", exc)
        finally:
            ws.shutdown()

    # --- tasks --------------------------------------------------------------------------------

    @tag("ai", "websocket")
    @task(5)
    def ask(self) -> None:
        if self.ws is None and not self.connect():
            return
        payload = self.api.chat_payload(self.fake, self.rng, self.conversation_id)
        for attempt in (1, 2):
            question: dict[str, Any] = {"type": "question", **payload}
            sends_token = not self._token_sent
            if sends_token:
                question["token"] = self.access_token
            stream = TokenStream("ws")
            start_time = time.time()
            try:
                self._exchange(question, stream, start_time)
            except Exception as exc:
                refused = isinstance(exc, ServerClosed) and exc.code == CLOSE_POLICY_VIOLATION
                if refused and sends_token and attempt == 1 and self.refresh_access_token():
                    # An expired token: refreshed and asked again on a new connection, recorded as
                    # `call` records a refused HTTP request (`<name> [401]`).
                    self._fire(f"ws reply [{CLOSE_POLICY_VIOLATION}]", stream.total_ms, start_time, None)
                    if self.connect():
                        continue
                    return
                self._reply_failed(exc, stream, start_time)
                return
            self._fire("ws reply", stream.total_ms, start_time, None, stream.record_context())
            fire_llm_measures(self.environment, stream, self.context())
            if stream.conversation_id:
                self.conversation_id = stream.conversation_id
            return

    @tag("ai", "websocket")
    @task(1)
    def reload_page(self) -> None:
        self.connect()

    # --- one reply ----------------------------------------------------------------------------

    def _exchange(self, question: dict[str, Any], stream: TokenStream, start_time: float) -> None:
        assert self.ws is not None
        self.ws.send(json.dumps(question))
        self._token_sent = True
        first = True
        while stream.finished is None:
            opcode, data = self.ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise ServerClosed(data)
            if first:
                first = False
                self._fire("ws first frame", (time.perf_counter() - stream.started) * 1000, start_time, None)
            try:
                message = json.loads(data)
            except ValueError:
                raise StreamError(f"ws: frame is not JSON: {data[:80]!r}") from None
            kind = message.get("type") if isinstance(message, dict) else None
            if kind == "token":
                stream.token(message)
            elif kind == "response":
                stream.done(message, content_key="content")
                if not isinstance(message.get("citations"), list) or not message.get("conversation_id"):
                    raise StreamError("ws: response frame lacks citations or conversation_id")
                stream.conversation_id = message["conversation_id"]
            elif kind == "error":
                raise StreamError(
                    f"ws: error frame, status {message.get('status')}: {str(message.get('detail'))[:200]}"
                )
            else:
                raise StreamError(f"ws: unexpected frame type {kind!r}")

    def _reply_failed(self, exc: Exception, stream: TokenStream, start_time: float) -> None:
        """Record the failure; drop the connection unless the server only answered with an error frame."""
        if isinstance(exc, StreamError):
            error: Exception = exc
        else:
            error = StreamError(f"ws: connection lost mid-reply ({type(exc).__name__}: {exc})")
        keep = isinstance(exc, StreamError) and str(exc).startswith("ws: error frame")
        if not keep:
            self.disconnect()
            if isinstance(exc, ServerClosed) and exc.code == CLOSE_POLICY_VIOLATION:
                self.refresh_access_token()  # refused token: refresh before the next connection
        self._fire("ws reply", stream.total_ms, start_time, error, stream.record_context())

    def _fire(
        self,
        name: str,
        response_time: float,
        start_time: float,
        exception: Exception | None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.environment.events.request.fire(
            request_type=WS,
            name=name,
            response_time=response_time,
            response_length=0,
            response=None,
            context={**self.context(), "group": "websocket", **(extra or {})},
            exception=exception,
            start_time=start_time,
            url=None,
        )


class ServerClosed(StreamError):
    """The server closed the socket in mid-reply; `code` is its close code (None when it sent none)."""

    def __init__(self, close_frame: bytes) -> None:
        self.code: int | None = None
        reason = ""
        if len(close_frame) >= 2:
            (self.code,) = struct.unpack("!H", close_frame[:2])
            reason = close_frame[2:].decode("utf-8", errors="replace")
        how = f"close code {self.code}" if self.code is not None else "no close code"
        super().__init__(
            f"ws: connection closed by the server mid-reply ({how}{': ' + reason if reason else ''})"
        )
