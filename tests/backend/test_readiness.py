"""`/ready` answers 503 while the database is unreachable and 200 again once it is back; `/health` stays 200.

The backend reaches PostgreSQL through a TCP relay the test can cut, which is how a database outage
looks from the service: established connections break and new ones are refused.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.backend.clients import new_user
from tests.backend_process import POSTGRES_URL, postgres_schema, run_backend


class Relay:
    """A loopback TCP relay to PostgreSQL that can be cut (closing every connection) and restored."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up = False
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.fixture
def relay() -> Iterator[Relay]:
    u = urlsplit(POSTGRES_URL)
    r = Relay((u.hostname or "127.0.0.1", u.port or 5432))
    yield r
    r.close()


def _via(url: str, port: int) -> str:
    u = urlsplit(url)
    netloc = (f"{u.username}@" if u.username else "") + f"127.0.0.1:{port}"
    return urlunsplit(u._replace(netloc=netloc))


@pytest.mark.postgres
def test_ready_is_503_while_the_database_is_down(tmp_path: Path, relay: Relay) -> None:
    with postgres_schema() as url, run_backend(tmp_path, database_url=_via(url, relay.port)) as b:
        user = new_user(b)
        assert b.request("GET", "/ready")[0] == 200
        relay.cut()
        statuses = [b.request("GET", "/ready")[0] for _ in range(3)]
        assert statuses == [503, 503, 503]
        assert b.request("GET", "/health")[0] == 200
        status, body = user.call("GET", "/api/evidence")
        assert status == 503 and body["detail"].startswith("PostgreSQL"), body
        relay.restore()
        # Broken connections are replaced on first use: no request fails once the database is back.
        assert [b.request("GET", "/ready")[0] for _ in range(5)] == [200] * 5
        assert [user.call("GET", "/api/evidence")[0] for _ in range(10)] == [200] * 10


@pytest.mark.postgres
def test_report_cut_off_by_an_outage_ends_failed_with_the_reason(tmp_path: Path, relay: Relay) -> None:
    settings = {"CGPT_REPORT_SECONDS": "3"}
    with (
        postgres_schema() as url,
        run_backend(tmp_path, database_url=_via(url, relay.port), settings=settings) as b,
    ):
        user = new_user(b)
        task = user.ok(
            "POST", "/api/reports/generate", {"report_type": "gap_analysis", "format": "json"}, status=202
        )
        deadline = time.monotonic() + 10
        while user.ok("GET", f"/api/reports/status/{task['task_id']}")["status"] != "running":
            assert time.monotonic() < deadline, "report never started"
            time.sleep(0.05)
        relay.cut()
        time.sleep(1.0)  # progress writes (every 0.3 s) meet the outage
        relay.restore()
        deadline = time.monotonic() + 20
        while (status := b.request("GET", f"/api/reports/status/{task['task_id']}", token=user.token))[
            0
        ] != 200 or (status[1]["status"] in ("pending", "running")):
            assert time.monotonic() < deadline, f"report still {status}"
            time.sleep(0.1)
        assert status[1]["status"] == "failed" and "DatabaseUnavailable" in status[1]["error"], status
        assert user.call("GET", f"/api/reports/{task['task_id']}/download")[0] == 409
