"""The AI assistant over one long-lived WebSocket (`/ws/chat`), as a chat page in a browser tab keeps it.

`ChatSocket` is one user's connection (websocket-client; Locust's gevent patching makes its blocking
socket calls cooperate). The steps keep it in `user.workspace.chat`, so it is closed when the user
stops. Each question's reply arrives as `token` frames and one `response` frame whose `content` must
be the tokens joined and whose usage must count them. Stats (request type `WS`): `ws connect` (time to
the accepted handshake), `ws first frame`, `ws reply` (the whole reply; its context carries `ttft_ms`
and `tokens`), and the `LLM` entries with transport `ws`. A dropped connection, an error frame or a
broken reply is a failure with a message; the next question connects again.
"""

from __future__ import annotations

import json
import logging
import struct
import time
from typing import Any

import websocket

from compliance_loadtest.plugin.guard import check_url
from compliance_loadtest.steps.base import StepFailed
from compliance_loadtest.streaming import StreamError, TokenStream, fire_llm_measures

logger = logging.getLogger(__name__)

WS = "WS"
CLOSE_POLICY_VIOLATION = 1008  # what the backend closes with when it refuses the token
CLOSE_WAIT_S = 1.0  # how long a closing user waits for the server's close frame
DEFAULT_TIMEOUT_S = 30.0


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


class ChatSocket:
    """One user's assistant WebSocket: `connect`, `ask`, `close`. `timeout` bounds the handshake and
    each frame of a reply."""

    def __init__(self, user: Any, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.user = user
        self.timeout = timeout
        self.ws: websocket.WebSocket | None = None
        self.token_sent = False
        self.conversation_id: str | None = None

    def url(self) -> str:
        base = (self.user.host or "").rstrip("/")
        scheme, _, rest = base.partition("://")
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{self.user.api.path('ws.chat')}"

    def connect(self) -> bool:
        """Open the socket (closing any open one); the time to the accepted handshake is `ws connect`."""
        self.close()
        start_time, start = time.time(), time.perf_counter()
        exception: Exception | None = None
        try:
            url = self.url()
            check_url(url, self.user.host or "")
            self.ws = websocket.create_connection(url, timeout=self.timeout)
            self.token_sent = False
        except Exception as exc:
            exception = StreamError(
                f"ws connect to {self.user.api.name('ws.chat')} failed: {type(exc).__name__}: {exc}"
            )
            self.user.last_failure = str(exception)
        self._fire("ws connect", (time.perf_counter() - start) * 1000, start_time, exception)
        return exception is None

    def close(self) -> None:
        """Close cleanly: a close frame (1000), then a short wait for the server's.

        Done here rather than with websocket-client's `close()`, whose bare `except: pass` swallows the
        GreenletExit with which Locust stops a user, leaving that user running and the run unable to end."""
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

    def ask(self, question: str | None = None) -> TokenStream | None:
        """Ask one question and read the whole reply; the checked reply, or None after a failure.

        The access token goes with the first question of each connection. An expired token (the server
        closes with 1008) is refreshed and the question asked again on a new connection; the refused
        attempt is recorded as `ws reply [1008]`."""
        user = self.user
        if self.ws is None and not self.connect():
            return None
        payload = user.api.chat_payload(user.fake, user.rng, self.conversation_id)
        if question is not None:
            payload["message"] = question
        for attempt in (1, 2):
            message: dict[str, Any] = {"type": "question", **payload}
            sends_token = not self.token_sent
            if sends_token:
                message["token"] = user.access_token
            stream = TokenStream("ws")
            start_time = time.time()
            try:
                self._exchange(message, stream, start_time)
            except Exception as exc:
                refused = isinstance(exc, ServerClosed) and exc.code == CLOSE_POLICY_VIOLATION
                if refused and sends_token and attempt == 1 and user.refresh_access_token():
                    self._fire(f"ws reply [{CLOSE_POLICY_VIOLATION}]", stream.total_ms, start_time, None)
                    if self.connect():
                        continue
                    return None
                self._reply_failed(exc, stream, start_time)
                return None
            self._fire("ws reply", stream.total_ms, start_time, None, stream.record_context())
            fire_llm_measures(user.request_event, stream, user.context())
            if stream.conversation_id:
                self.conversation_id = stream.conversation_id
                user.workspace.remember_conversation(stream.conversation_id)
            return stream
        return None

    def _exchange(self, question: dict[str, Any], stream: TokenStream, start_time: float) -> None:
        assert self.ws is not None
        self.ws.send(json.dumps(question))
        self.token_sent = True
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
        error = (
            exc
            if isinstance(exc, StreamError)
            else StreamError(f"ws: connection lost mid-reply ({type(exc).__name__}: {exc})")
        )
        keep = isinstance(exc, StreamError) and str(exc).startswith("ws: error frame")
        if not keep:
            self.close()
            if isinstance(exc, ServerClosed) and exc.code == CLOSE_POLICY_VIOLATION:
                self.user.refresh_access_token()  # refused token: refresh before the next connection
        self.user.last_failure = str(error)
        self._fire("ws reply", stream.total_ms, start_time, error, stream.record_context())

    def _fire(
        self,
        name: str,
        response_time: float,
        start_time: float,
        exception: Exception | None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.user.request_event.fire(
            request_type=WS,
            name=name,
            response_time=response_time,
            response_length=0,
            response=None,
            context={**self.user.context(), "group": "websocket", **(extra or {})},
            exception=exception,
            start_time=start_time,
            url=None,
        )


def socket(user: Any) -> ChatSocket:
    """The user's chat socket (`workspace.chat`), made on first use; `ws_timeout` of the user, if it
    has one, bounds its waits."""
    chat = user.workspace.chat
    if not isinstance(chat, ChatSocket):
        chat = user.workspace.chat = ChatSocket(user, float(getattr(user, "ws_timeout", DEFAULT_TIMEOUT_S)))
    return chat


def connect(user: Any) -> None:
    """Open (or reopen, as reloading the chat page does) the user's socket; `ws connect`."""
    if not socket(user).connect():
        raise StepFailed(user.last_failure)


def ask(user: Any, question: str | None = None) -> TokenStream:
    """Ask over the user's socket (connecting first if needed) and read the whole reply."""
    reply = socket(user).ask(question)
    if reply is None:
        raise StepFailed(f"WebSocket reply: {user.last_failure}")
    return reply


def disconnect(user: Any) -> None:
    """Close the user's socket cleanly, if open."""
    chat = user.workspace.chat
    if isinstance(chat, ChatSocket):
        chat.close()
