"""A backend that stops in mid-run, and access tokens that expire in mid-run, become failures or token
refreshes in the streaming users' stats; no exception escapes a user, and the users keep running."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.backend_process import Backend, run_backend
from tests.streaming.headless import assert_clean_exit, assert_survived, run_locust
from tests.streaming.users import both_locustfile


def test_a_stopped_backend_becomes_failures_and_the_users_keep_running(tmp_path: Path) -> None:
    with run_backend(tmp_path) as backend:

        def stop_backend_in_mid_run(_locust: subprocess.Popen[bytes]) -> None:
            # Once both kinds of reply have been served (Locust's start-up time varies), stop it.
            deadline = time.monotonic() + 60
            while not _served(backend, "POST /api/chat/stream", "WS /ws/chat"):
                assert time.monotonic() < deadline, "the users never reached the backend"
                time.sleep(0.1)
            backend.process.terminate()
            backend.process.wait(timeout=15)

        run = run_locust(
            both_locustfile(tmp_path, network_timeout=2.0),
            tmp_path,
            host=backend.url,
            users=4,
            seconds=6,
            during=stop_backend_in_mid_run,
        )
    assert_survived(run)
    assert run.returncode == 1
    # Replies succeeded before the stop ...
    stream = ("POST", "/api/chat/stream")
    assert run.requests(*stream) > run.failures_of(*stream) > 0
    assert run.requests("WS", "ws reply") > run.failures_of("WS", "ws reply")
    # ... and after it every attempt failed with a message, including the reconnections.
    assert run.failures_of("WS", "ws connect") > 0
    errors = run.errors()
    assert any(e.startswith("POST /api/chat/stream:") and "no response" in e for e in errors), errors
    assert any(e.startswith("WS ws connect:") and "ws connect to /ws/chat failed" in e for e in errors), (
        errors
    )


def _served(backend: Backend, *routes: str) -> bool:
    status, body = backend.request("GET", "/admin/requests")
    counts = body.get("routes", {}) if status == 200 and isinstance(body, dict) else {}
    return all(counts.get(route, 0) >= 3 for route in routes)


def test_expired_access_tokens_are_refreshed_over_sse_and_before_reconnecting(tmp_path: Path) -> None:
    with run_backend(tmp_path, settings={"CGPT_TOKEN_TTL_SECONDS": "1"}) as backend:
        # Streams and WebSocket questions only, so each expiry meets the code under test.
        locustfile = both_locustfile(tmp_path, only=("stream_message", "ask", "reload_page"))
        run = run_locust(locustfile, tmp_path, host=backend.url, users=4, seconds=5)
    # Every refused request was answered by a refresh and a retry, so nothing failed.
    assert_clean_exit(run)
    assert run.requests("POST", "/api/chat/stream [401]") > 0
    assert run.requests("WS", "ws reply [1008]") > 0  # a reconnection refused, refreshed, asked again
    assert run.requests("POST", "/api/auth/refresh") > 0
    assert run.requests("LLM", "ws total") > 0 and run.requests("LLM", "sse total") > 0
    assert "/api/chat/send" not in run.names("POST")  # only the streaming tasks ran
