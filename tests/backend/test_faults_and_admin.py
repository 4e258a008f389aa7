"""Fault injection does what its rules say, `/admin/requests` counts exactly what the backend received,
and admin endpoints exist only when enabled."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
import websocket

from reference_backend.app import is_loopback
from tests.backend.clients import new_user, sse_events
from tests.backend.test_streams import QUESTION, ws_url
from tests.backend_process import Backend, run_backend


@pytest.fixture
def faults(backend: Backend) -> Iterator[Backend]:
    """The session backend, its fault rules cleared afterwards whatever the test did."""
    yield backend
    assert backend.request("DELETE", "/admin/faults")[0] == 200


def test_error_rate_fails_exactly_that_share_of_matching_requests(faults: Backend) -> None:
    user = new_user(faults)
    item = user.ok("POST", "/api/evidence", {"title": "t"}, status=201)
    status, rules = faults.request(
        "PUT", "/admin/faults", {"faults": [{"path": "/api/evidence/*", "method": "GET", "error_rate": 0.25}]}
    )
    assert status == 200 and rules["faults"][0]["error_rate"] == 0.25
    statuses = [user.call("GET", f"/api/evidence/{item['id']}")[0] for _ in range(20)]
    assert statuses.count(500) == 5 and statuses.count(200) == 15
    # Other methods and paths are untouched.
    assert user.call("GET", "/api/evidence")[0] == 200
    assert user.call("PATCH", f"/api/evidence/{item['id']}", {"notes": "n"})[0] == 200
    shown = faults.request("GET", "/admin/faults")[1]["faults"][0]
    assert (shown["matched"], shown["errors"]) == (20, 5)


def test_stall_holds_the_request_past_a_client_timeout(faults: Backend) -> None:
    faults.request("PUT", "/admin/faults", [{"path": "/api/users/me", "stall_ms": 5000}])
    user = new_user(faults)
    req = urllib.request.Request(
        faults.url + "/api/users/me", headers={"Authorization": f"Bearer {user.token}"}
    )
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        urllib.request.urlopen(req, timeout=0.5)
    assert faults.request("GET", "/health")[0] == 200


def test_latency_rule_is_applied_and_counted(faults: Backend) -> None:
    faults.request("PUT", "/admin/faults", [{"path": "/health", "latency_ms": 50}])
    assert faults.request("GET", "/health")[0] == 200
    assert faults.request("GET", "/admin/faults")[1]["faults"][0]["matched"] == 1


def test_drop_cuts_sse_and_websocket_streams_mid_way(faults: Backend) -> None:
    user = new_user(faults)
    faults.request(
        "PUT",
        "/admin/faults",
        [
            {"path": "/api/chat/stream", "drop_after_tokens": 4},
            {"path": "/ws/chat", "method": "WS", "drop_after_tokens": 3},
        ],
    )
    try:
        status, events = sse_events(faults, user.token, {"message": QUESTION})
        assert status == 200 and [e for e, _ in events] == ["token"] * 4  # no done event
    except (ConnectionError, OSError):
        pytest.fail("the dropped SSE stream should end the response, not break the client")
    conn = websocket.create_connection(ws_url(faults, f"?token={user.token}"), timeout=10)
    try:
        conn.send(json.dumps({"type": "question", "message": QUESTION}))
        frames = [json.loads(conn.recv()) for _ in range(3)]
        assert [f["type"] for f in frames] == ["token"] * 3
        opcode, data = conn.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(data[:2], "big") == 1011
    finally:
        conn.close()
    assert faults.request("GET", "/health")[0] == 200


def test_bad_fault_rules_answer_422_naming_the_key(faults: Backend) -> None:
    status, body = faults.request("PUT", "/admin/faults", [{"path": "/x", "error_rate": 2}])
    assert status == 422 and "faults[0].error_rate" in body["detail"]
    status, body = faults.request("PUT", "/admin/faults", [{"path": "/x", "typo": 1}])
    assert status == 422 and "unknown key 'typo'" in body["detail"]
    assert faults.request("GET", "/admin/faults")[1]["faults"] == []


def test_request_counts_are_exact_per_route_template(backend: Backend) -> None:
    user = new_user(backend)  # register + login, before the reset
    backend.request("DELETE", "/admin/requests")
    ids = [user.ok("POST", "/api/evidence", {"title": f"t{i}"}, status=201)["id"] for i in range(3)]
    for eid in ids:
        user.ok("GET", f"/api/evidence/{eid}")
    user.call("GET", "/api/evidence?page_size=500")  # a 422 is still a request received
    backend.request("GET", "/api/unknown")
    conn = websocket.create_connection(ws_url(backend, f"?token={user.token}"), timeout=10)
    for _ in range(2):
        conn.send(json.dumps({"type": "ping"}))
        assert json.loads(conn.recv())["type"] == "pong"
    conn.close()
    backend.request("GET", "/admin/faults")  # admin calls are never counted
    counts = backend.request("GET", "/admin/requests")[1]
    assert counts["routes"] == {
        "POST /api/evidence": 3,
        "GET /api/evidence/{evidence_id}": 3,
        "GET /api/evidence": 1,
        "GET unmatched": 1,
        "WS /ws/chat": 2,
    }
    assert counts["total"] == 10


def test_admin_endpoints_are_absent_unless_enabled(tmp_path_factory: pytest.TempPathFactory) -> None:
    with run_backend(tmp_path_factory.mktemp("noadmin"), settings={"CGPT_ADMIN": "0"}) as b:
        assert b.request("GET", "/admin/requests")[0] == 404
        assert b.request("PUT", "/admin/faults", [])[0] in (404, 405)


def test_admin_is_loopback_only() -> None:
    # The server is only reachable on loopback in tests, so the check itself is what can be tested.
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert (
        not is_loopback("10.0.0.5") and not is_loopback(None) and not is_loopback(socket.gethostname() + ".x")
    )
