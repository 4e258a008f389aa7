"""Load goes only to the host under test: a non-loopback --host stops the run before it starts, and
absolute URLs or redirects to any other host are refused and counted as failures, for the library's
users and for plain Locust users (HttpUser, FastHttpUser, a websocket-client user) run beside them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from compliance_loadtest.plugin.guard import (
    OffTargetRequestRefused,
    RemoteHostNotAllowed,
    check_target,
    check_url,
    is_loopback,
)
from tests.scenarios.locust_run import locust, run_users, stats_of


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_hosts_are_recognised(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["10.0.0.1", "192.0.2.7", "example.com", "localhost.example.com", "::2"])
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def test_remote_target_needs_explicit_permission() -> None:
    with pytest.raises(RemoteHostNotAllowed, match=r"192\.0\.2\.7.*--allow-remote-host"):
        check_target("http://192.0.2.7:8000", allow_remote=False)
    check_target("http://192.0.2.7:8000", allow_remote=True)
    check_target("http://127.0.0.1:8000", allow_remote=False)


def test_urls_off_the_target_origin_are_refused() -> None:
    target = "http://127.0.0.1:8000"
    check_url("/api/evidence", target)
    check_url("http://127.0.0.1:8000/api", target)
    check_url("ws://127.0.0.1:8000/ws/chat?token=x", target)
    for other in (
        "http://127.0.0.1:8001/",
        "https://127.0.0.1:8000/",
        "http://127.0.0.2:8000/",
        "http://evil.test/",
    ):
        with pytest.raises(OffTargetRequestRefused, match=r"only http://127\.0\.0\.1:8000 is under test"):
            check_url(other, target)


def test_refusal_messages_carry_no_query_string() -> None:
    with pytest.raises(OffTargetRequestRefused) as info:
        check_url("http://127.0.0.2:8000/ws/chat?token=SECRET-TOKEN", "http://127.0.0.1:8000")
    assert "SECRET-TOKEN" not in str(info.value)


def test_non_loopback_host_stops_the_run_with_exit_2() -> None:
    proc = locust(
        ["-f", "locust_scenarios", "--headless", "-u", "1", "-t", "5s", "--host", "http://192.0.2.7:8000"]
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "is not a loopback address" in proc.stderr and "--allow-remote-host" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Embedded reference backend" not in proc.stderr


class _Server:
    def __init__(self, host: str, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer((host, 0), handler)
        self.hits: list[str] = []
        self.httpd.hits = self.hits  # type: ignore[attr-defined]
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    other = ""

    def do_GET(self) -> None:
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        if self.path == "/redirect-away":
            self._answer(302, {"Location": f"{_Handler.other}/landing"})
        elif self.path == "/redirect-home":
            self._answer(302, {"Location": "/ok"})
        else:
            self._answer(200, {"Content-Type": "application/json"}, b'{"ok": true}')

    def _answer(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[tuple[_Server, _Server]]:
    target, other = _Server("127.0.0.1", _Handler), _Server("127.0.0.2", _Handler)
    _Handler.other = other.url
    try:
        yield target, other
    finally:
        target.close()
        other.close()


PROBE = """
from locust import constant, task
from locust_scenarios import ApiUser


class GuardProbeUser(ApiUser):
    wait_time = constant(0.2)

    def on_start(self):
        pass  # the stub target has no auth

    @task
    def probe(self):
        self.client.get(OTHER + "/absolute", name="absolute other host")
        self.client.get("/redirect-away", name="redirect to other host")
        self.client.get("/redirect-home", name="redirect on target")
"""


def test_absolute_urls_and_redirects_to_another_host_are_refused_and_failed(
    tmp_path: Path, servers: tuple[_Server, _Server]
) -> None:
    target, other = servers
    probe = tmp_path / "guard_probe.py"
    probe.write_text(f"OTHER = {json.dumps(other.url)}\n{PROBE}")
    args = ["-f", str(probe), "--headless", "-u", "1", "-r", "1", "-t", "3s", "--host", target.url]
    proc = locust([*args, "--csv", str(tmp_path / "run"), "--only-summary"], cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]  # the refused requests are failures
    stats = stats_of(proc)
    for name in ("absolute other host", "redirect to other host"):
        assert stats.requests("GET", name) > 0
        assert stats.failed("GET", name) == stats.requests("GET", name)
    assert stats.failed("GET", "redirect on target") == 0 and stats.requests("GET", "redirect on target") > 0
    messages = stats.messages
    assert f"refused request to {other.url}" in messages.replace(":80/", "/")
    assert other.hits == [], "a request reached the other host"
    assert "/ok" in target.hits
    assert stats.exceptions == []


PLAIN_PROBE = """
import websocket
from locust import FastHttpUser, HttpUser, User, constant, task
from locust.clients import HttpSession
from locust.contrib.fasthttp import FastHttpSession

import locust_scenarios  # noqa: F401  (the library is loaded: its guard holds for every user of the run)


class PlainFastUser(FastHttpUser):
    wait_time = constant(0.2)

    @task
    def probe(self):
        self.client.get(OTHER + "/absolute", name="fast: absolute other port")
        self.client.get("/redirect-away", name="fast: redirect to other port")
        self.client.get("/redirect-home", name="fast: redirect on target")
        remote = FastHttpSession("http://192.0.2.7:9", self.environment.events.request, user=self)
        remote.get("/x", name="fast: session of a remote host")


class PlainHttpUser(HttpUser):
    wait_time = constant(0.2)

    @task
    def probe(self):
        self.client.get(OTHER + "/absolute", name="http: absolute other port")
        self.client.get("/redirect-away", name="http: redirect to other port")
        self.client.get("/redirect-home", name="http: redirect on target")
        remote = HttpSession("http://192.0.2.7:9", self.environment.events.request, user=self)
        remote.get("/x", name="http: session of a remote host")


class PlainSocketUser(User):
    wait_time = constant(0.2)

    @task
    def probe(self):
        with self.environment.events.request.measure("WS", "socket to other port"):
            websocket.create_connection(OTHER.replace("http", "ws", 1) + "/socket", timeout=2)
"""


@pytest.fixture
def two_ports() -> Iterator[tuple[_Server, _Server]]:
    """The target and another server on the same loopback address, each on a port of its own."""
    target, other = _Server("127.0.0.1", _Handler), _Server("127.0.0.1", _Handler)
    _Handler.other = other.url
    try:
        yield target, other
    finally:
        target.close()
        other.close()


def test_plain_locust_users_beside_the_library_keep_to_the_host_under_test(
    tmp_path: Path, two_ports: tuple[_Server, _Server]
) -> None:
    target, other = two_ports
    probe = tmp_path / "plain_probe.py"
    probe.write_text(f"OTHER = {json.dumps(other.url)}\n{PLAIN_PROBE}")
    args = ["-f", str(probe), "--headless", "-u", "3", "-r", "3", "-t", "3s", "--host", target.url]
    proc = locust([*args, "--csv", str(tmp_path / "run"), "--only-summary"], cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]  # the refused requests are failures
    stats = stats_of(proc)
    for client in ("fast", "http"):
        for name in (f"{client}: absolute other port", f"{client}: redirect to other port"):
            assert stats.requests("GET", name) > 0 and stats.failed("GET", name) == stats.requests(
                "GET", name
            )
        on_target = f"{client}: redirect on target"
        assert stats.requests("GET", on_target) > 0 and stats.failed("GET", on_target) == 0
        remote = f"{client}: session of a remote host"
        assert stats.requests("GET", remote) > 0 and stats.failed("GET", remote) == stats.requests(
            "GET", remote
        )
    assert stats.requests("WS", "socket to other port") > 0
    assert stats.failed("WS", "socket to other port") == stats.requests("WS", "socket to other port")
    assert other.hits == [], "a request reached the other port"
    assert "/ok" in target.hits
    messages = stats.messages
    assert f"refused request to {other.url}/absolute: only {target.url} is under test" in messages
    assert f"refused request to {other.url}/landing: only {target.url} is under test" in messages
    assert f"refused request to ws://{other.url[7:]}/socket: only {target.url} is under test" in messages
    assert "http://192.0.2.7:9 is not a loopback address (pass --allow-remote-host to load it)" in messages
    assert stats.exceptions == []


def test_a_remote_host_set_after_start_is_refused_by_every_user() -> None:
    # As when a remote host is typed into the web UI's form: the run exists, its users must not send.
    result = run_users("http://192.0.2.7:8000", "peak_traffic:PeakTrafficScenario", users=2, seconds=1)
    assert result.rows == {}
    assert "is not a loopback address" in result.log and "--allow-remote-host" in result.log
    assert result.exceptions == [] and not result.unhandled_greenlet_exception
