"""Bad bodies answer 422 naming the field; oversized pages, bulks, bodies and messages answer 4xx,
never 500."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

from tests.backend.clients import new_user, raw_request
from tests.backend_process import Backend


def _fields(body: dict) -> list[str]:
    return [str(e["loc"][-1]) for e in body["detail"]]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/evidence", {"description": "no title"}, "title"),
        ("/api/evidence", {"title": "x", "status": "lost"}, "status"),
        ("/api/evidence", {"title": "x", "quality_score": 7}, "quality_score"),
        ("/api/evidence", {"title": "x", "tags": "not-a-list"}, "tags"),
        ("/api/evidence/bulk", {"items": [{"title": "ok"}, {"title": ""}]}, "title"),
        ("/api/evidence/bulk-update", {"evidence_ids": [], "status": "nope"}, "status"),
        ("/api/business-profiles", {"industry": "no name"}, "company_name"),
        ("/api/chat/send", {"conversation_id": None}, "message"),
        ("/api/reports/generate", {"report_type": "poetry"}, "report_type"),
        ("/api/export", {"data_type": "evidence", "format": "xlsx"}, "format"),
        (
            "/api/auth/register",
            {"email": "not-an-email", "password": "long-enough", "full_name": "X"},
            "email",
        ),
    ],
)
def test_bad_bodies_answer_422_naming_the_field(backend: Backend, path: str, body: dict, field: str) -> None:
    user = new_user(backend)
    status, answer = user.call("POST", path, body)
    assert status == 422 and field in _fields(answer), answer


def test_bulk_item_errors_name_the_item_index(backend: Backend) -> None:
    user = new_user(backend)
    status, answer = user.call("POST", "/api/evidence/bulk", {"items": [{"title": "ok"}, {"title": ""}]})
    assert status == 422 and answer["detail"][0]["loc"] == ["body", "items", 1, "title"]
    assert user.ok("GET", "/api/evidence")["total_count"] == 0  # all or nothing


def test_malformed_json_answers_422(backend: Backend) -> None:
    user = new_user(backend)
    status, _, raw = raw_request(
        backend,
        "POST",
        "/api/evidence",
        b"{not json",
        {"Content-Type": "application/json", "Authorization": f"Bearer {user.token}"},
    )
    assert status == 422, raw


def test_limits_answer_4xx(backend: Backend) -> None:
    user = new_user(backend)
    status, answer = user.call("GET", "/api/evidence?page_size=101")
    assert status == 422 and _fields(answer) == ["page_size"]
    assert user.call("GET", "/api/evidence/search?q=x&page_size=1000")[0] == 422
    assert user.call("GET", "/api/evidence?page=0")[0] == 422
    assert user.call("GET", "/api/evidence?sort_by=password_hash")[0] == 422
    assert user.call("GET", "/api/evidence?created_from=yesterday")[0] == 422
    status, answer = user.call("POST", "/api/evidence/bulk", {"items": [{"title": "t"}] * 1001})
    assert status == 422 and "at most 1000" in answer["detail"][0]["msg"]
    status, answer = user.call(
        "POST", "/api/evidence/bulk-update", {"evidence_ids": ["x"] * 1001, "status": "reviewed"}
    )
    assert status == 422
    status, answer = user.call("POST", "/api/chat/send", {"message": "x" * 8001})
    assert status == 422 and _fields(answer) == ["message"]
    assert user.call("POST", "/api/chat/send", {"message": "   "})[0] == 422
    assert user.call("GET", "/api/evidence/search?q=%21%21%21")[0] == 422


def test_bodies_over_the_limit_answer_413_declared_or_streamed(backend: Backend) -> None:
    user = new_user(backend)
    big = json.dumps({"title": "x", "description": "y" * (5 * 1024 * 1024)}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {user.token}"}
    status, _, raw = raw_request(backend, "POST", "/api/evidence", big, headers)
    assert status == 413, raw
    # Chunked, without Content-Length: the streamed size is checked too.
    u = urlsplit(backend.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        chunks = (big[i : i + 65536] for i in range(0, len(big), 65536))
        conn.request("POST", "/api/evidence", body=chunks, headers=headers, encode_chunked=True)
        resp = conn.getresponse()
        assert resp.status == 413
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may answer and close before the client has sent everything
    finally:
        conn.close()
    assert backend.request("GET", "/health")[0] == 200
