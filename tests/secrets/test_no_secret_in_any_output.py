"""No secret reaches anything a run or its analysis writes, whoever's users carried it.

One run loads the library and three users, ours (`ApiUser`) and a plain `HttpUser` and `FastHttpUser`,
that carry canary secrets everywhere a secret travels: in query strings, in headers (X-Api-Key,
X-Auth-Token, Cookie), in request bodies (JSON and form), in the host's Basic-auth password
(`--host http://user:pw@127.0.0.1:PORT`), in `--login-password` and the tokens the login returns, in an
exception a task raises and in a log line. The target is a loopback stub that echoes every request
(request line, headers, body) into its error answers, and the users put those answers into their
failure messages, as careless locustfiles do. Then every byte of the run folder (the parquet parts
read back as values), Locust's CSV, JSON and HTML, the analysis reports, and Locust's and the
analysis's stdout and stderr are searched for every canary.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.scenarios.locust_run import REPO, clean_env

LOCUSTFILE = '''
import logging

from locust import FastHttpUser, HttpUser, constant, task

from locust_scenarios import ApiUser

log = logging.getLogger("canary")


class CanaryApiUser(ApiUser):
    """Ours: logs in with --login-email/--login-password; its requests carry canaries and fail."""

    wait_time = constant(0.1)

    @task
    def search(self):
        self.call("GET", "evidence.search", params={"q": "audit", "api_key": C["api_query"]})
        self.client.get(f"/api/evidence?token={C['api_unnamed']}&page=1")
        self.call("POST", "evidence.create", json={"title": "t", "password": C["api_body"]})


class CanaryHttpUser(HttpUser):
    """A plain HttpUser (requests) that names nothing and reports whatever it got."""

    wait_time = constant(0.1)

    @task
    def work(self):
        self.client.get(f"/ok/search?q=audit&access_token={C['http_query']}&sig={C['http_sig']}")
        headers = {"X-Api-Key": C["http_header"], "Cookie": f"session={C['http_cookie']}; theme=dark"}
        with self.client.post(
            "/login", json={"username": "u", "password": C["http_body"]}, headers=headers, catch_response=True
        ) as r:
            r.failure(f"login refused: {r.text}; sent {dict(r.request.headers)}")
        log.warning("sent headers %s to /login?secret=%s", headers, C["http_log"])
        self.client.get(f"/missing?secret={C['http_missing']}")

    @task
    def crash(self):
        raise ValueError(f"cannot go on with api_key={C['exception']}")


class CanaryFastUser(FastHttpUser):
    """A plain FastHttpUser that names nothing and reports whatever it got."""

    wait_time = constant(0.1)

    @task
    def work(self):
        self.client.get(f"/ok/items?apikey={C['fast_query']}")
        with self.client.post(
            f"/token?refresh_token={C['fast_refresh']}",
            data=f"grant_type=password&password={C['fast_body']}",
            headers={"X-Auth-Token": C["fast_header"], "Content-Type": "application/x-www-form-urlencoded"},
            catch_response=True,
        ) as r:
            r.failure(r.text)
'''


class _Echo(BaseHTTPRequestHandler):
    """200 under /ok/; the login answers tokens; everything else: 400 echoing the whole request."""

    protocol_version = "HTTP/1.1"
    login: bytes = b""

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        raw = f"{self.requestline}\r\n{self.headers}".encode() + body
        self.server.seen.append(raw)  # type: ignore[attr-defined]
        if self.path.startswith("/ok/"):
            self._answer(200, b'{"ok": true}')
        elif self.path == "/api/auth/login":
            self._answer(200, self.login)
        else:
            self._answer(400, json.dumps({"detail": f"echo: {raw.decode(errors='replace')}"}).encode())

    do_GET = do_POST = _handle

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def canaries() -> dict[str, str]:
    names = [
        "api_query", "api_unnamed", "api_body", "login_password", "access_token", "refresh_token",
        "http_query", "http_sig", "http_header", "http_cookie", "http_body", "http_log", "http_missing",
        "exception", "fast_query", "fast_refresh", "fast_body", "fast_header", "host_password",
    ]  # fmt: skip
    return {name: f"cnry{secrets.token_hex(6)}" for name in names}


@pytest.fixture
def echo(canaries: dict[str, str]) -> Iterator[ThreadingHTTPServer]:
    handler = type("Echo", (_Echo,), {})
    handler.login = json.dumps(
        {"access_token": canaries["access_token"], "refresh_token": canaries["refresh_token"]}
    ).encode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, cwd=cwd, env=clean_env(), capture_output=True, timeout=120)


def _written(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` as bytes; a parquet part as the text of all its values (its bytes are
    compressed, where a canary would not show)."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            out[str(path)] = json.dumps(pq.read_table(path).to_pylist(), default=str).encode()
        else:
            out[str(path)] = path.read_bytes()
    return out


def test_no_canary_reaches_any_file_log_or_report(
    tmp_path: Path, canaries: dict[str, str], echo: ThreadingHTTPServer
) -> None:
    (tmp_path / "canary_users.py").write_text(f"C = {json.dumps(canaries)}\n{LOCUSTFILE}")
    port = echo.server_address[1]
    run_dir = tmp_path / "run"
    locust = _run(
        [
            sys.executable, "-m", "locust", "-f", "canary_users.py", "--headless", "-u", "3", "-r", "3",
            "-t", "3s", "--stop-timeout", "2", "--loglevel", "INFO", "--run-dir", str(run_dir),
            "--host", f"http://canary-user:{canaries['host_password']}@127.0.0.1:{port}",
            "--login-email", "canary@example.com", "--login-password", canaries["login_password"],
        ],
        tmp_path,
    )  # fmt: skip
    assert locust.returncode == 1, locust.stderr[-3000:]  # the failures are failures
    analysis = _run([sys.executable, "-m", "analysis", str(run_dir), "--no-step-summary"], REPO)
    assert analysis.returncode in (0, 1, 3), analysis.stderr[-3000:]

    # The canaries were really sent: in query strings, headers, bodies and the Basic-auth header.
    basic = base64.b64encode(f"canary-user:{canaries['host_password']}".encode()).decode()
    sent = b"\n".join(echo.seen).decode(errors="replace")  # type: ignore[attr-defined]
    unsent = {"access_token", "refresh_token", "http_log", "exception", "host_password"}
    assert [n for n, c in canaries.items() if n not in unsent and c not in sent] == []
    assert basic in sent

    # ... and their requests, failures and exceptions were recorded (redacted) by every user.
    stats = (run_dir / "locust_stats.csv").read_text()
    assert "/ok/search?q=audit&access_token=<redacted>&sig=<redacted>" in stats  # HttpUser: name = URL
    assert "/ok/items?apikey=<redacted>" in stats  # FastHttpUser
    assert "/api/evidence?token=<redacted>&page=1" in stats  # ours, unnamed
    failures = (run_dir / "locust_failures.csv").read_text()
    assert "Basic <redacted>" in failures and "password=<redacted>" in failures
    assert "api_key=<redacted>" in (run_dir / "locust_exceptions.csv").read_text()
    record = pq.read_table(run_dir / "requests").to_pydict()
    assert "CanaryApiUser" in record["user_class"] and "/ok/items?apikey=<redacted>" in record["name"]
    assert any(e.startswith("login refused") and "<redacted>" in e for e in record["error"])

    # Nothing holds a canary: every file of the run folder (reports included), stdout and stderr.
    outputs = _written(run_dir)
    assert {"locust.html", "locust.json", "summary.json", "run.json"} <= {Path(p).name for p in outputs}
    assert any(Path(p).name.endswith(".html") and "report" in p for p in outputs)
    assert json.loads(outputs[str(run_dir / "run.json")])["host"].startswith("http://canary-user:<redacted>@")
    outputs |= {
        "locust stdout": locust.stdout,
        "locust stderr": locust.stderr,
        "analysis stdout": analysis.stdout,
        "analysis stderr": analysis.stderr,
    }
    leaks = [
        f"{name} in {where}: ...{data[max(at - 80, 0) : at + 40]!r}..."
        for where, data in outputs.items()
        for name, canary in [*canaries.items(), ("host basic auth", basic)]
        if (at := data.find(canary.encode())) >= 0
    ]
    assert leaks == [], "\n".join(leaks)
