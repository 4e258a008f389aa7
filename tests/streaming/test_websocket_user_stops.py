"""A ChatWebSocketUser that Locust kills while it closes its socket dies, so the run ends.

websocket-client's `close()` waits for the server's close frame inside a bare `except: pass`, which
swallows the GreenletExit Locust uses to stop a user: the user would keep running and the run would
never end. Here the WebSocket server never answers a close frame, so every closing user waits, and
`--stop-timeout 0` kills the users wherever they are, most of them in that wait.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backend_process import Backend
from tests.streaming.headless import run_locust, write_locustfile

RELOADING_USER = """
from locust import constant
from locust_scenarios import chat_websocket


class ReloadingChatWebSocketUser(chat_websocket.ChatWebSocketUser):
    wait_time = constant(0)

    def ws_url(self):
        return "WS_URL"


# Only the page reload: close the socket (waiting for the server), open a new one, again and again.
ReloadingChatWebSocketUser.tasks = [
    t for t in ReloadingChatWebSocketUser.tasks if t.__name__ == "reload_page"
][:1]
"""

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@pytest.fixture
def silent_ws_server() -> Iterator[str]:
    """A WebSocket server that accepts every handshake, then reads and ignores everything."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            key = next(
                line.split(b":", 1)[1].strip()
                for line in request.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept = base64.b64encode(hashlib.sha1(key + _GUID.encode()).digest())
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            conn.settimeout(0.2)
            while not stop.is_set():
                try:
                    if not conn.recv(4096):
                        return
                except TimeoutError:
                    continue
                except OSError:
                    return

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.getsockname()[1]}/ws/chat"
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def test_a_user_killed_while_closing_its_socket_stops_and_the_run_ends(
    backend: Backend, silent_ws_server: str, tmp_path: Path
) -> None:
    locustfile = write_locustfile(
        tmp_path, "reloading_ws", RELOADING_USER.replace("WS_URL", silent_ws_server)
    )
    run = run_locust(
        locustfile, tmp_path, host=backend.url, users=3, seconds=6, extra=["--stop-timeout", "0"], timeout=40
    )
    assert run.returncode == 0, run.output[-3000:]
    assert run.exceptions == []
    # Every user had closed a socket (a second connection) before the kill, so it was in the loop.
    assert run.requests("WS", "ws connect") >= 6 and run.failures_of("WS", "ws connect") == 0
