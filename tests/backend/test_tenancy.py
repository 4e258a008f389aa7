"""The tenancy wall: another organisation's ids answer 404 everywhere, and its rows never show up in lists,
search, stats, dashboards, chat citations, reports or exports. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.backend.clients import User, new_user
from tests.backend_process import Backend

SECRET_WORD = "zanzibarquokka"


def _owner_data(owner: User) -> dict[str, Any]:
    ev = owner.ok(
        "POST",
        "/api/evidence",
        {
            "title": f"{SECRET_WORD} penetration test",
            "description": f"{SECRET_WORD} findings",
            "framework_mappings": ["HIPAA.164.312.B"],
            "status": "approved",
        },
        status=201,
    )
    profile = owner.ok("POST", "/api/business-profiles", {"company_name": "Owner Ltd"}, status=201)
    session = owner.ok("POST", "/api/assessments", {"business_profile_id": profile["id"]}, status=201)
    conv = owner.ok("POST", "/api/chat/conversations", {"title": "private"}, status=201)
    owner.ok("POST", "/api/chat/send", {"message": f"{SECRET_WORD} status?", "conversation_id": conv["id"]})
    report = owner.ok(
        "POST", "/api/reports/generate", {"report_type": "evidence_summary", "format": "json"}, status=202
    )
    deadline = time.monotonic() + 30
    while owner.ok("GET", f"/api/reports/status/{report['task_id']}")["status"] != "completed":
        assert time.monotonic() < deadline, "report never completed"
        time.sleep(0.05)
    return {
        "evidence": ev["id"],
        "profile": profile["id"],
        "session": session["id"],
        "conversation": conv["id"],
        "report": report["task_id"],
    }


def test_other_organisations_ids_answer_404_on_every_route(any_backend: Backend) -> None:
    owner, stranger = new_user(any_backend), new_user(any_backend)
    assert owner.org_id != stranger.org_id
    ids = _owner_data(owner)
    e, pr, s, c, r = ids["evidence"], ids["profile"], ids["session"], ids["conversation"], ids["report"]
    attempts: list[tuple[str, str, object]] = [
        ("GET", f"/api/evidence/{e}", None),
        ("PATCH", f"/api/evidence/{e}", {"status": "rejected"}),
        ("PUT", f"/api/evidence/{e}", {"title": "hijacked"}),
        ("DELETE", f"/api/evidence/{e}", None),
        ("GET", f"/api/business-profiles/{pr}", None),
        ("PATCH", f"/api/business-profiles/{pr}", {"company_name": "hijacked"}),
        ("GET", f"/api/frameworks/recommendations/{pr}", None),
        ("POST", "/api/assessments", {"business_profile_id": pr}),
        ("GET", f"/api/assessments/{s}", None),
        ("POST", f"/api/assessments/{s}/responses", {"question_id": "q", "response": "yes"}),
        ("POST", f"/api/assessments/{s}/complete", None),
        ("GET", f"/api/chat/conversations/{c}/messages", None),
        ("POST", "/api/chat/send", {"message": "hello", "conversation_id": c}),
        ("POST", "/api/chat/stream", {"message": "hello", "conversation_id": c}),
        ("GET", f"/api/reports/status/{r}", None),
        ("GET", f"/api/reports/{r}/download", None),
        ("GET", f"/api/evidence/{uuid.uuid4()}", None),
    ]
    for method, path, body in attempts:
        status, answer = stranger.call(method, path, body)
        assert status == 404, f"{method} {path} answered {status}: {answer}"

    bulk = stranger.ok("POST", "/api/evidence/bulk-update", {"evidence_ids": [e], "status": "rejected"})
    assert (bulk["updated_count"], bulk["failed_ids"]) == (0, [e])
    # Nothing the stranger tried changed the owner's rows.
    assert owner.ok("GET", f"/api/evidence/{e}")["status"] == "approved"
    assert owner.ok("GET", f"/api/business-profiles/{pr}")["company_name"] == "Owner Ltd"


def test_lists_search_stats_and_dashboards_show_only_own_rows(any_backend: Backend) -> None:
    owner, stranger = new_user(any_backend), new_user(any_backend)
    _owner_data(owner)
    mine = stranger.ok("POST", "/api/evidence", {"title": "stranger's own policy"}, status=201)

    assert [x["id"] for x in stranger.ok("GET", "/api/evidence")["results"]] == [mine["id"]]
    assert stranger.ok("GET", f"/api/evidence/search?q={SECRET_WORD}")["total_count"] == 0
    assert owner.ok("GET", f"/api/evidence/search?q={SECRET_WORD}")["total_count"] == 1
    stats = stranger.ok("GET", "/api/evidence/stats")
    assert stats["total_evidence_items"] == 1 and stats["by_framework"] == {}
    assert stranger.ok("GET", "/api/compliance/status")["framework_scores"] == {}
    dash = stranger.ok("GET", "/api/users/dashboard")
    assert dash["business_profile"] is None and dash["quick_stats"]["conversations"] == 0
    assert {a["user_id"] for a in dash["recent_activity"]} == {stranger.user_id}
    assert stranger.ok("GET", "/api/business-profiles") == []
    assert stranger.ok("GET", "/api/chat/conversations") == []
    assert stranger.ok("GET", "/api/reports") == []
    agg = stranger.ok("GET", "/api/analytics/aggregate?metrics=count&group_by=status")
    assert agg["groups"] == [{"status": "collected", "count": 1}]
    exported = stranger.ok("POST", "/api/export", {"data_type": "evidence", "format": "json"})
    assert [row["id"] for row in exported["rows"]] == [mine["id"]]

    # Chat cites only the caller's own evidence, even when the question names another's.
    reply = stranger.ok("POST", "/api/chat/send", {"message": f"What about {SECRET_WORD} penetration?"})
    assert reply["citations"] == []
    assert owner.ok("POST", "/api/chat/send", {"message": f"What about {SECRET_WORD}?"})["citations"]


def test_fields_a_client_must_not_set_are_ignored(any_backend: Backend) -> None:
    victim, attacker = new_user(any_backend), new_user(any_backend)
    forged_id = str(uuid.uuid4())
    item = attacker.ok(
        "POST",
        "/api/evidence",
        {
            "title": "forged",
            "id": forged_id,
            "organization_id": victim.org_id,
            "owner_id": victim.user_id,
            "created_at": "2001-01-01T00:00:00Z",
            "row_id": 1,
        },
        status=201,
    )
    assert item["id"] != forged_id and item["organization_id"] == attacker.org_id
    assert item["owner_id"] == attacker.user_id and not item["created_at"].startswith("2001")
    assert victim.ok("GET", "/api/evidence")["total_count"] == 0
    patched = attacker.ok(
        "PATCH", f"/api/evidence/{item['id']}", {"organization_id": victim.org_id, "title": "x"}
    )
    assert patched["organization_id"] == attacker.org_id
    assert victim.ok("GET", "/api/evidence")["total_count"] == 0
    assert victim.call("GET", f"/api/evidence/{item['id']}")[0] == 404
