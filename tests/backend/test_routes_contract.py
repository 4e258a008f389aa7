"""Every route of the API contract answers its documented status and key fields, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request

from tests.backend.clients import PASSWORD, User, new_user, raw_request
from tests.backend_process import Backend

EVIDENCE = {
    "title": "Quarterly access review for production databases",
    "description": "Reviewed privileged access to the production cluster; removed two stale accounts.",
    "evidence_type": "audit_log",
    "source": "okta",
    "framework_mappings": ["ISO27001.A.9.2.3", "SOC2.CC6.1"],
    "tags": ["access", "security"],
    "metadata": {"reviewer": "secops"},
    "status": "reviewed",
    "quality_score": 0.9,
}


def test_ops_routes_answer_and_unknown_routes_are_json_404(any_backend: Backend) -> None:
    assert any_backend.request("GET", "/health")[0] == 200
    status, body = any_backend.request("GET", "/ready")
    assert (status, body["status"]) == (200, "ready")
    status, body = any_backend.request("GET", "/api/no-such-route")
    assert status == 404 and body == {"detail": "Not Found"}


def test_auth_register_login_token_refresh_me(any_backend: Backend) -> None:
    user = new_user(any_backend, org_name="Acme Compliance")
    status, dup = any_backend.request(
        "POST", "/api/auth/register", {"email": user.email, "password": PASSWORD, "full_name": "Again"}
    )
    assert status == 409, dup
    assert (
        any_backend.request("POST", "/api/auth/login", {"email": user.email, "password": "wrong-password"})[0]
        == 401
    )

    form = urllib.parse.urlencode({"username": user.email, "password": PASSWORD}).encode()
    status, _, raw = raw_request(
        any_backend, "POST", "/api/auth/token", form, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    tokens = json.loads(raw)
    assert status == 200 and tokens["token_type"] == "bearer" and tokens["expires_in"] > 0

    status, fresh = any_backend.request("POST", "/api/auth/refresh", {"refresh_token": user.refresh_token})
    assert status == 200 and {"access_token", "refresh_token"} <= set(fresh)
    # An access token is not a refresh token, and vice versa.
    assert any_backend.request("POST", "/api/auth/refresh", {"refresh_token": user.token})[0] == 401
    assert any_backend.request("GET", "/api/users/me", token=user.refresh_token)[0] == 401

    for path in ("/api/users/me", "/api/users/profile"):
        me = user.ok("GET", path)
        assert me["id"] == user.user_id and me["email"] == user.email
        assert me["organization_id"] == user.org_id and me["organization_name"] == "Acme Compliance"
        assert me["created_at"]


def test_profiles_assessments_frameworks_onboarding(any_backend: Backend) -> None:
    user = new_user(any_backend)
    profile = user.ok(
        "POST",
        "/api/business-profiles",
        {
            "company_name": "Helix Health",
            "industry": "healthcare",
            "employee_count": 320,
            "revenue_range": "10M-50M",
            "location": "London, UK",
            "description": "Telehealth platform",
            "data_processing": {"personal_data": True, "health_data": True},
        },
        status=201,
    )
    assert profile["id"] and profile["created_at"] and profile["company_name"] == "Helix Health"
    assert [p["id"] for p in user.ok("GET", "/api/business-profiles")] == [profile["id"]]
    patched = user.ok("PATCH", f"/api/business-profiles/{profile['id']}", {"employee_count": 400})
    assert patched["employee_count"] == 400
    assert user.ok("GET", f"/api/business-profiles/{profile['id']}")["employee_count"] == 400

    session = user.ok(
        "POST",
        "/api/assessments",
        {
            "business_profile_id": profile["id"],
            "assessment_type": "compliance_scoping",
            "frameworks_of_interest": ["HIPAA", "GDPR"],
        },
        status=201,
    )
    assert session["session_id"] == session["id"] and session["status"] == "in_progress"
    assert (session["current_stage"], session["total_stages"]) == (1, 4)
    for i, answer in enumerate(["yes", "partial", "no"]):
        session = user.ok(
            "POST",
            f"/api/assessments/{session['id']}/responses",
            {"question_id": f"q{i}", "response": answer, "details": {}, "move_to_next_stage": True},
        )
    assert session["current_stage"] == 4 and [r["question_id"] for r in session["responses"]] == [
        "q0",
        "q1",
        "q2",
    ]
    done = user.ok("POST", f"/api/assessments/{session['id']}/complete")
    assert done["status"] == "completed" and done["score"] == 50.0
    assert {r["framework"] for r in done["recommendations"]} == {"HIPAA", "GDPR"}

    frameworks = user.ok("GET", "/api/frameworks")
    codes = {f["code"] for f in frameworks}
    assert {"SOC2", "ISO27001", "GDPR", "HIPAA"} <= codes
    iso = next(f for f in frameworks if f["code"] == "ISO27001")
    by_id = user.ok("GET", f"/api/frameworks/{iso['id']}/controls")
    assert len(by_id["controls"]) == iso["control_count"] > 0
    assert user.ok("GET", "/api/frameworks/iso27001/controls")["controls"] == by_id["controls"]
    assert user.call("GET", "/api/frameworks/NOPE/controls")[0] == 404

    recs = user.ok("GET", f"/api/frameworks/recommendations/{profile['id']}")
    assert recs and {"framework", "relevance_score", "reasons", "priority"} <= set(recs[0])
    assert recs[0]["framework"] == "HIPAA"  # a healthcare profile ranks HIPAA first

    dash = user.ok("GET", "/api/users/dashboard")
    assert dash["business_profile"]["id"] == profile["id"] and dash["onboarding_completed"] is True
    assert {"compliance_status", "recent_activity", "quick_stats", "active_frameworks"} <= set(dash)
    assert dash["quick_stats"]["assessments_completed"] == 1
    assert dash["recent_activity"][0]["action"] == "assessment.complete"


def test_evidence_crud_list_search_stats_bulk(any_backend: Backend) -> None:
    user = new_user(any_backend)
    item = user.ok("POST", "/api/evidence", EVIDENCE, status=201)
    assert item["id"] and item["status"] == "reviewed" and item["created_at"] == item["updated_at"]
    eid = item["id"]
    assert user.ok("GET", f"/api/evidence/{eid}")["title"] == EVIDENCE["title"]
    patched = user.ok(
        "PATCH", f"/api/evidence/{eid}", {"status": "approved", "notes": "signed off", "tags": ["x"]}
    )
    assert (patched["status"], patched["notes"], patched["tags"]) == ("approved", "signed off", ["x"])
    replaced = user.ok(
        "PUT",
        f"/api/evidence/{eid}",
        {**EVIDENCE, "title": "Replaced title", "framework_mappings": [], "status": "approved"},
    )
    assert replaced["title"] == "Replaced title" and replaced["framework_mappings"] == []

    created = user.ok(
        "POST",
        "/api/evidence/bulk",
        {
            "items": [
                {
                    "title": f"Firewall rule export {i}",
                    "description": "network configuration snapshot",
                    "evidence_type": "configuration",
                    "framework_mappings": ["PCIDSS.1.2"],
                    "quality_score": 0.5,
                }
                for i in range(25)
            ]
        },
        status=201,
    )
    assert created["created_count"] == 25 and len(set(created["ids"])) == 25

    page = user.ok("GET", "/api/evidence?page=2&page_size=10&sort_by=title&sort_order=asc")
    assert (page["total_count"], page["page"], page["page_size"], page["total_pages"]) == (26, 2, 10, 3)
    titles = [r["title"] for r in page["results"]]
    assert titles == sorted(titles) and len(titles) == 10
    assert user.ok("GET", "/api/evidence?framework=PCIDSS&evidence_type=configuration")["total_count"] == 25
    assert user.ok("GET", "/api/evidence?status=approved")["total_count"] == 1
    assert user.ok("GET", "/api/evidence?framework=ISO27001")["total_count"] == 0  # PUT cleared the mappings
    tomorrow = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 86400))
    assert user.ok("GET", f"/api/evidence?created_from={tomorrow}")["total_count"] == 0

    found = user.ok("GET", "/api/evidence/search?q=firewall+network&evidence_type=configuration&page_size=5")
    assert found["total_count"] == 25 and len(found["results"]) == 5
    first = found["results"][0]
    assert (
        first["relevance_score"] > 0
        and "<mark>" in first["highlight"]["title"] + first["highlight"]["description"]
    )
    assert user.ok("GET", "/api/evidence/search?q=replaced")["results"][0]["id"] == eid
    assert user.ok("GET", "/api/evidence/search?q=nonexistentword")["total_count"] == 0

    stats = user.ok("GET", "/api/evidence/stats")
    assert stats["total_evidence_items"] == 26
    assert stats["by_status"] == {"approved": 1, "collected": 25}
    assert stats["by_type"] == {"audit_log": 1, "configuration": 25}
    assert stats["by_framework"] == {"PCIDSS": 25}
    assert abs(stats["average_quality_score"] - (0.9 + 25 * 0.5) / 26) < 1e-3

    result = user.ok(
        "POST",
        "/api/evidence/bulk-update",
        {"evidence_ids": [*created["ids"][:10], "not-a-uuid"], "status": "reviewed", "reason": "ok"},
    )
    assert (result["updated_count"], result["failed_count"], result["failed_ids"]) == (10, 1, ["not-a-uuid"])
    assert user.ok("GET", "/api/evidence?status=reviewed")["total_count"] == 10

    assert user.call("DELETE", f"/api/evidence/{eid}")[0] == 204
    assert user.call("GET", f"/api/evidence/{eid}")[0] == 404
    assert user.call("DELETE", f"/api/evidence/{eid}")[0] == 404


def test_compliance_analytics_export(any_backend: Backend) -> None:
    user = new_user(any_backend)
    for status in ("approved", "approved", "collected", "rejected"):
        user.ok("POST", "/api/evidence", {**EVIDENCE, "status": status}, status=201)
    comp = user.ok("GET", "/api/compliance/status")
    assert comp["overall_score"] == round(100 * (1 + 1 + 0.5 + 0) / 4, 1)
    assert comp["status"] == "partially_compliant" and comp["last_updated"]
    assert set(comp["framework_scores"]) == {"ISO27001", "SOC2"}
    assert comp["evidence_summary"]["total_evidence_items"] == 4

    dash = user.ok("GET", "/api/analytics/dashboard?time_range=7d&metrics=evidence_created&metrics=activity")
    assert set(dash["metrics"]) == {"evidence_created", "activity"}
    points = dash["metrics"]["evidence_created"]["points"]
    assert len(points) == 7 and points[-1]["value"] == 4 and dash["metrics"]["evidence_created"]["total"] == 4
    agg = user.ok(
        "GET", "/api/analytics/aggregate?metrics=count,avg_quality_score&group_by=status&group_by=framework"
    )
    counts = {(g["status"], g["framework"]): g["count"] for g in agg["groups"]}
    assert counts[("approved", "ISO27001")] == 2 and counts[("rejected", "SOC2")] == 1
    assert user.call("GET", "/api/analytics/aggregate?group_by=nope")[0] == 422

    for fmt in ("csv", "json"):
        req = urllib.request.Request(
            user.backend.url + "/api/export",
            data=json.dumps(
                {"data_type": "evidence", "format": fmt, "date_range": {"start": "2020-01-01"}}
            ).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {user.token}"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read().decode()
            assert resp.status == 200 and "attachment" in resp.headers["Content-Disposition"]
        if fmt == "json":
            assert json.loads(raw)["count"] == 4
        else:
            assert raw.splitlines()[0].startswith("id,") and len(raw.strip().splitlines()) == 5
    assert user.ok("POST", "/api/export", {"data_type": "audit_trail", "format": "json"})["count"] == 4


def test_chat_send_and_conversation_messages(any_backend: Backend) -> None:
    user = new_user(any_backend)
    cited = user.ok("POST", "/api/evidence", EVIDENCE, status=201)
    conv = user.ok(
        "POST", "/api/chat/conversations", {"title": "Audit prep", "context": {"f": "SOC2"}}, status=201
    )
    assert conv["conversation_id"] == conv["id"] and conv["title"] == "Audit prep"
    question = "What evidence do we have for privileged access review?"
    first = user.ok("POST", "/api/chat/send", {"message": question, "conversation_id": conv["id"]})
    assert first["conversation_id"] == conv["id"] and first["response"]
    assert [c["evidence_id"] for c in first["citations"]] == [cited["id"]]
    assert first["usage"]["completion_tokens"] > 0 and first["usage"]["prompt_tokens"] > 0
    again = user.ok("POST", "/api/chat/send", {"message": question, "conversation_id": conv["id"]})
    assert again["response"] == first["response"]  # the simulated model is deterministic
    history = user.ok("GET", f"/api/chat/conversations/{conv['id']}/messages")["messages"]
    assert [(m["role"], m["seq"]) for m in history] == [
        ("user", 1),
        ("assistant", 2),
        ("user", 3),
        ("assistant", 4),
    ]
    assert history[1]["content"] == first["response"]
    # Without a conversation id, send starts one.
    solo = user.ok("POST", "/api/chat/send", {"message": "Hello"})
    assert solo["conversation_id"] != conv["id"]


def test_report_job_runs_to_completion_and_downloads(any_backend: Backend) -> None:
    user: User = new_user(any_backend)
    user.ok("POST", "/api/evidence", EVIDENCE, status=201)
    task = user.ok(
        "POST",
        "/api/reports/generate",
        {
            "report_type": "gap_analysis",
            "frameworks": ["SOC2"],
            "format": "json",
            "include_sections": ["summary"],
            "filters": {"date_range": "30d"},
            "priority": "high",
        },
        status=202,
    )
    seen = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = user.ok("GET", f"/api/reports/status/{task['task_id']}")
        seen.add(status["status"])
        assert 0 <= status["progress"] <= 100
        if status["status"] in ("completed", "failed"):
            break
        time.sleep(0.05)
    assert status["status"] == "completed" and status["progress"] == 100, status
    assert seen & {"pending", "running"}
    report = user.ok("GET", f"/api/reports/{task['task_id']}/download")
    assert report["report_type"] == "gap_analysis" and set(report["framework_scores"]) == {"SOC2"}
    assert (
        user.call("POST", "/api/reports/generate", {"report_type": "gap_analysis", "frameworks": ["NOPE"]})[0]
        == 422
    )


def test_stats_and_compliance_status_follow_every_write(any_backend: Backend) -> None:
    user = new_user(any_backend)

    def snapshot() -> tuple[dict[str, int], float]:
        return user.ok("GET", "/api/evidence/stats")["by_status"], user.ok("GET", "/api/compliance/status")[
            "overall_score"
        ]

    assert snapshot() == ({}, 0.0)
    a = user.ok("POST", "/api/evidence", {"title": "a", "status": "approved"}, status=201)["id"]
    assert snapshot() == ({"approved": 1}, 100.0)
    ids = user.ok(
        "POST", "/api/evidence/bulk", {"items": [{"title": "b", "status": "rejected"}]}, status=201
    )["ids"]
    assert snapshot() == ({"approved": 1, "rejected": 1}, 50.0)
    user.ok("POST", "/api/evidence/bulk-update", {"evidence_ids": ids, "status": "approved"})
    assert snapshot() == ({"approved": 2}, 100.0)
    user.ok("PATCH", f"/api/evidence/{a}", {"status": "collected"})
    assert snapshot() == ({"approved": 1, "collected": 1}, 75.0)
    user.ok("PUT", f"/api/evidence/{a}", {"title": "a", "status": "expired"})
    assert snapshot() == ({"approved": 1, "expired": 1}, 50.0)
    assert user.call("DELETE", f"/api/evidence/{a}")[0] == 204
    assert snapshot() == ({"approved": 1}, 100.0)
