"""Business profiles, assessments, frameworks, the user dashboard, compliance status, analytics, export.

Scores are simple, deterministic functions of the organisation's own rows (evidence status mix,
assessment answers), so two runs over the same data answer the same. The analytics aggregate is a
heavy query on purpose, as a real one is.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from reference_backend import frameworks as fw
from reference_backend.core import (
    Caller,
    Principal,
    audit,
    check_id,
    json_response,
    not_found,
    split_list,
    state,
    validation_error,
)
from reference_backend.db import Database, new_id, now_iso
from reference_backend.routes_evidence import COLUMNS as EVIDENCE_COLUMNS
from reference_backend.routes_evidence import evidence_stats

router = APIRouter(prefix="/api")

STAGES = ("business_context", "data_handling", "security_controls", "governance")
STATUS_WEIGHT = {
    "approved": 1.0,
    "reviewed": 0.8,
    "collected": 0.5,
    "pending": 0.3,
    "rejected": 0.0,
    "expired": 0.0,
}
Name = Annotated[str, Field(min_length=1, max_length=200)]
Short = Annotated[str | None, Field(max_length=200)]


# -- business profiles ---------------------------------------------------------------------------


class ProfileIn(BaseModel):
    company_name: Name
    industry: Short = None
    employee_count: Annotated[int | None, Field(ge=0, le=10_000_000)] = None
    revenue_range: Short = None
    location: Short = None
    description: Annotated[str | None, Field(max_length=5000)] = None
    data_processing: dict[str, Any] = {}


class ProfilePatch(BaseModel):
    company_name: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    industry: Short = None
    employee_count: Annotated[int | None, Field(ge=0, le=10_000_000)] = None
    revenue_range: Short = None
    location: Short = None
    description: Annotated[str | None, Field(max_length=5000)] = None
    data_processing: dict[str, Any] | None = None


PROFILE_COLUMNS = (
    "id, organization_id, owner_id, company_name, industry, employee_count, revenue_range, location,"
    " description, data_processing, created_at, updated_at"
)


def _profile(db: Database, p: Principal, profile_id: str) -> dict[str, Any]:
    row = db.fetchone(
        f"SELECT {PROFILE_COLUMNS} FROM business_profiles WHERE id = ? AND organization_id = ?",
        (check_id(profile_id, "business profile"), p.org_id),
    )
    if row is None:
        raise not_found("business profile")
    return row


@router.post("/business-profiles", status_code=201, tags=["profiles"])
def create_profile(body: ProfileIn, request: Request, p: Caller) -> Any:
    db = state(request).db
    pid, now = new_id(), now_iso()
    with db.transaction():
        db.execute(
            f"INSERT INTO business_profiles ({PROFILE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                pid,
                p.org_id,
                p.user_id,
                body.company_name,
                body.industry,
                body.employee_count,
                body.revenue_range,
                body.location,
                body.description,
                json.dumps(body.data_processing),
                now,
                now,
            ),
        )
        audit(db, p, "business_profile.create", "business_profile", pid)
    row = {"id": pid, "organization_id": p.org_id, "owner_id": p.user_id, **body.model_dump()}
    return json_response({**row, "created_at": now, "updated_at": now}, 201)


@router.get("/business-profiles", tags=["profiles"])
def list_profiles(request: Request, p: Caller) -> Any:
    rows = state(request).db.fetchall(
        f"SELECT {PROFILE_COLUMNS} FROM business_profiles WHERE organization_id = ? ORDER BY created_at DESC"
        " LIMIT 100",
        (p.org_id,),
    )
    return json_response(rows)


@router.get("/business-profiles/{profile_id}", tags=["profiles"])
def get_profile(profile_id: str, request: Request, p: Caller) -> Any:
    return json_response(_profile(state(request).db, p, profile_id))


@router.patch("/business-profiles/{profile_id}", tags=["profiles"])
def patch_profile(profile_id: str, body: ProfilePatch, request: Request, p: Caller) -> Any:
    db = state(request).db
    changes = body.model_dump(exclude_unset=True)
    if "company_name" in changes and changes["company_name"] is None:
        raise validation_error(["company_name"], "may not be null")
    with db.transaction():
        row = _profile(db, p, profile_id)
        if changes:
            now = now_iso()
            sets = ", ".join(f"{k} = ?" for k in changes)
            values = [json.dumps(v) if k == "data_processing" else v for k, v in changes.items()]
            db.execute(
                f"UPDATE business_profiles SET {sets}, updated_at = ? WHERE id = ? AND organization_id = ?",
                [*values, now, row["id"], p.org_id],
            )
            row.update(changes, updated_at=now)
    return json_response(row)


# -- assessments ---------------------------------------------------------------------------------


class AssessmentIn(BaseModel):
    business_profile_id: str | None = None
    assessment_type: Annotated[str, Field(min_length=1, max_length=100)] = "compliance_scoping"
    frameworks_of_interest: Annotated[list[Annotated[str, Field(max_length=50)]], Field(max_length=20)] = []


class ResponseIn(BaseModel):
    question_id: Annotated[str, Field(min_length=1, max_length=200)]
    response: Annotated[str | bool | int | float | list[str] | None, Field()] = None
    details: dict[str, Any] = {}
    move_to_next_stage: bool = False


ASSESSMENT_COLUMNS = (
    "id, organization_id, owner_id, business_profile_id, assessment_type, frameworks_of_interest, status,"
    " current_stage, total_stages, score, recommendations, created_at, updated_at, completed_at"
)


def _session(db: Database, p: Principal, assessment_id: str, with_responses: bool = True) -> dict[str, Any]:
    aid = check_id(assessment_id, "assessment")
    row = db.fetchone(
        f"SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE id = ? AND organization_id = ?", (aid, p.org_id)
    )
    if row is None:
        raise not_found("assessment")
    row["session_id"] = row["id"]
    row["stage_name"] = STAGES[min(row["current_stage"], len(STAGES)) - 1]
    if with_responses:
        row["responses"] = db.fetchall(
            "SELECT question_id, response, details, stage, created_at FROM assessment_responses"
            " WHERE assessment_id = ? AND organization_id = ? ORDER BY created_at, id",
            (aid, p.org_id),
        )
        for r in row["responses"]:
            r["response"] = json.loads(r["response"]) if r["response"] is not None else None
    return row


@router.post("/assessments", status_code=201, tags=["assessments"])
def create_assessment(body: AssessmentIn, request: Request, p: Caller) -> Any:
    db = state(request).db
    if body.business_profile_id is not None:
        _profile(db, p, body.business_profile_id)
    aid, now = new_id(), now_iso()
    with db.transaction():
        db.execute(
            f"INSERT INTO assessments ({ASSESSMENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?, ?, ?, ?)",
            (
                aid,
                p.org_id,
                p.user_id,
                check_id(body.business_profile_id, "business profile") if body.business_profile_id else None,
                body.assessment_type,
                json.dumps(body.frameworks_of_interest),
                "in_progress",
                1,
                len(STAGES),
                None,
                json.dumps([]),
                now,
                now,
                None,
            ),
        )
        audit(db, p, "assessment.create", "assessment", aid)
    return json_response(_session(db, p, aid), 201)


@router.get("/assessments", tags=["assessments"])
def list_assessments(request: Request, p: Caller) -> Any:
    rows = state(request).db.fetchall(
        f"SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE organization_id = ? ORDER BY"
        " created_at DESC LIMIT 100",
        (p.org_id,),
    )
    return json_response(rows)


@router.get("/assessments/{assessment_id}", tags=["assessments"])
def get_assessment(assessment_id: str, request: Request, p: Caller) -> Any:
    return json_response(_session(state(request).db, p, assessment_id))


@router.post("/assessments/{assessment_id}/responses", tags=["assessments"])
def add_response(assessment_id: str, body: ResponseIn, request: Request, p: Caller) -> Any:
    db = state(request).db
    with db.transaction():
        session = _session(db, p, assessment_id, with_responses=False)
        if session["status"] == "completed":
            raise HTTPException(409, "assessment already completed")
        now = now_iso()
        db.execute(
            "INSERT INTO assessment_responses (id, assessment_id, organization_id, question_id,"
            " response, details,"
            " stage, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                new_id(),
                session["id"],
                p.org_id,
                body.question_id,
                json.dumps(body.response),
                json.dumps(body.details),
                session["current_stage"],
                now,
            ),
        )
        stage = session["current_stage"]
        if body.move_to_next_stage and stage < session["total_stages"]:
            stage += 1
        db.execute(
            "UPDATE assessments SET current_stage = ?, updated_at = ? WHERE id = ? AND organization_id = ?",
            (stage, now, session["id"], p.org_id),
        )
    return json_response(_session(db, p, session["id"]))


def _answer_score(value: Any) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return max(0.0, min(1.0, float(value) / 5 if value > 1 else float(value)))
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("yes", "true", "implemented", "always", "fully"):
            return 1.0
        if low in ("partial", "partially", "sometimes", "in_progress", "planned"):
            return 0.5
        return 0.0 if low in ("no", "false", "never", "none") else 0.6
    if isinstance(value, list):
        return min(1.0, len(value) / 3)
    return 0.0


@router.post("/assessments/{assessment_id}/complete", tags=["assessments"])
def complete_assessment(assessment_id: str, request: Request, p: Caller) -> Any:
    db = state(request).db
    with db.transaction():
        session = _session(db, p, assessment_id)
        if session["status"] != "completed":
            answers = [_answer_score(r["response"]) for r in session["responses"]]
            score = round(100 * sum(answers) / len(answers), 1) if answers else 0.0
            frameworks = [f.upper() for f in session["frameworks_of_interest"] or []] or ["SOC2", "ISO27001"]
            weak = [r["question_id"] for r, a in zip(session["responses"], answers, strict=True) if a < 0.75]
            recommendations = [
                {
                    "framework": code,
                    "priority": "high" if score < 50 else "medium" if score < 80 else "low",
                    "title": f"Close gaps for {fw.BY_CODE[code]['name'] if code in fw.BY_CODE else code}",
                    "actions": [f"Address question {q}" for q in weak[:5]] or ["Keep evidence current"],
                }
                for code in frameworks
            ]
            now = now_iso()
            db.execute(
                "UPDATE assessments SET status = 'completed', score = ?, recommendations = ?, updated_at = ?,"
                " completed_at = ?, current_stage = total_stages WHERE id = ? AND organization_id = ?",
                (score, json.dumps(recommendations), now, now, session["id"], p.org_id),
            )
            audit(db, p, "assessment.complete", "assessment", session["id"], {"score": score})
    return json_response(_session(db, p, session["id"]))


# -- frameworks ----------------------------------------------------------------------------------


def _framework_rows(db: Database) -> list[dict[str, Any]]:
    return db.fetchall(
        "SELECT f.id, f.code, f.name, f.version, f.description, f.category, count(c.id) AS control_count"
        " FROM frameworks f LEFT JOIN framework_controls c ON c.framework_id = f.id"
        " GROUP BY f.id, f.code, f.name, f.version, f.description, f.category ORDER BY f.code"
    )


@router.get("/frameworks", tags=["frameworks"])
def list_frameworks(request: Request, p: Caller) -> Any:
    return json_response(_framework_rows(state(request).db))


@router.get("/frameworks/recommendations/{business_profile_id}", tags=["frameworks"])
def recommendations(business_profile_id: str, request: Request, p: Caller) -> Any:
    profile = _profile(state(request).db, p, business_profile_id)
    return json_response(recommend(profile))


def recommend(profile: dict[str, Any]) -> list[dict[str, Any]]:
    """Frameworks ranked for a business profile, each with the reasons that raised its relevance."""
    industry = (profile.get("industry") or "").lower()
    location = (profile.get("location") or "").lower()
    processing = {str(k).lower(): v for k, v in (profile.get("data_processing") or {}).items()}
    text = json.dumps(processing).lower()
    scores: dict[str, tuple[float, list[str]]] = {
        "SOC2": (0.6, ["customers of SaaS vendors commonly ask for a SOC 2 report"]),
        "ISO27001": (0.55, ["an internationally recognised security management baseline"]),
        "NIST_CSF": (0.35, ["a free framework to organise a security programme"]),
    }

    def bump(code: str, amount: float, reason: str) -> None:
        score, reasons = scores.get(code, (0.2, []))
        scores[code] = (min(1.0, score + amount), [*reasons, reason])

    if any(w in industry for w in ("health", "medical", "pharma", "clinic")) or "health" in text:
        bump("HIPAA", 0.7, "the business handles health information")
    if any(w in location for w in ("eu", "europe", "uk", "germany", "france", "london", "ireland")) or any(
        w in text for w in ("personal", "gdpr", "eu_")
    ):
        bump("GDPR", 0.65, "personal data of people in the EU or UK")
    if any(
        w in industry for w in ("fintech", "finance", "payment", "retail", "e-commerce", "ecommerce")
    ) or any(w in text for w in ("payment", "card")):
        bump("PCIDSS", 0.6, "the business processes payment card data")
    if "california" in location or " ca" in f" {location}" or "consumer" in text:
        bump("CCPA", 0.5, "consumers resident in California")
    employees = profile.get("employee_count") or 0
    if employees >= 250:
        bump("ISO27001", 0.2, "an organisation of 250+ people benefits from a certified ISMS")
    if any(w in industry for w in ("software", "saas", "technology", "tech", "cloud")):
        bump("SOC2", 0.3, "software and cloud vendors are routinely asked for SOC 2")
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1][0], kv[0]))
    return [
        {
            "framework": code,
            "framework_id": fw.framework_id(code),
            "name": fw.BY_CODE[code]["name"],
            "relevance_score": round(score, 2),
            "reasons": reasons,
            "priority": "high" if score >= 0.75 else "medium" if score >= 0.5 else "low",
        }
        for code, (score, reasons) in ranked
    ]


@router.get("/frameworks/{framework_id}/controls", tags=["frameworks"])
def framework_controls(framework_id: str, request: Request, p: Caller) -> Any:
    db = state(request).db
    code = framework_id.upper()
    fid = fw.framework_id(code) if code in fw.BY_CODE else framework_id.lower()
    framework = next((f for f in _framework_rows(db) if f["id"] == fid), None)
    if framework is None:
        raise not_found("framework")
    controls = db.fetchall(
        "SELECT id, code, title, description, category FROM framework_controls WHERE"
        " framework_id = ? ORDER BY code",
        (fid,),
    )
    return json_response({"framework": framework, "controls": controls})


# -- compliance status and the user dashboard ----------------------------------------------------


def compliance_status(db: Database, org_id: str) -> dict[str, Any]:
    stats = evidence_stats(db, org_id)
    total = stats["total_evidence_items"]
    overall = (
        100 * sum(STATUS_WEIGHT.get(s, 0) * n for s, n in stats["by_status"].items()) / total
        if total
        else 0.0
    )
    per_framework: dict[str, dict[str, int]] = {}
    for r in db.fetchall(
        "SELECT framework, status, count(*) AS n FROM evidence_frameworks WHERE organization_id = ?"
        " GROUP BY framework, status",
        (org_id,),
    ):
        per_framework.setdefault(r["framework"], {})[r["status"]] = int(r["n"])
    framework_scores = {
        code: {
            "score": round(
                100 * sum(STATUS_WEIGHT.get(s, 0) * n for s, n in by.items()) / sum(by.values()), 1
            ),
            "evidence_count": sum(by.values()),
            "by_status": by,
        }
        for code, by in sorted(per_framework.items())
    }
    last = db.scalar("SELECT max(updated_at) FROM evidence WHERE organization_id = ?", (org_id,))
    if isinstance(last, dt.datetime):
        last = last.astimezone(dt.UTC).isoformat(timespec="microseconds")
    return {
        "overall_score": round(overall, 1),
        "status": "compliant"
        if overall >= 80
        else "partially_compliant"
        if overall >= 50
        else "non_compliant",
        "framework_scores": framework_scores,
        "evidence_summary": stats,
        "last_updated": last or now_iso(),
    }


def cached_compliance_status(st: Any, org_id: str) -> dict[str, Any]:
    return st.summaries.get("compliance", org_id, lambda: compliance_status(st.db, org_id))  # type: ignore[no-any-return]


@router.get("/compliance/status", tags=["compliance"])
def get_compliance_status(request: Request, p: Caller) -> Any:
    st = state(request)
    return json_response(cached_compliance_status(st, p.org_id))


@router.get("/users/dashboard", tags=["users"])
def dashboard(request: Request, p: Caller) -> Any:
    db = state(request).db
    profile = db.fetchone(
        f"SELECT {PROFILE_COLUMNS} FROM business_profiles WHERE organization_id = ? ORDER BY"
        " created_at DESC LIMIT 1",
        (p.org_id,),
    )
    counts = (
        db.fetchone(
            "SELECT"
            " (SELECT count(*) FROM assessments WHERE organization_id = ?) AS assessments,"
            " (SELECT count(*) FROM assessments WHERE organization_id = ? AND status ="
            " 'completed') AS completed,"
            " (SELECT count(*) FROM conversations WHERE organization_id = ?) AS conversations,"
            " (SELECT count(*) FROM reports WHERE organization_id = ?) AS reports",
            (p.org_id, p.org_id, p.org_id, p.org_id),
        )
        or {}
    )
    status = cached_compliance_status(state(request), p.org_id)
    activity = db.fetchall(
        "SELECT action, entity_type, entity_id, user_id, created_at FROM audit_log WHERE organization_id = ?"
        " ORDER BY created_at DESC LIMIT 10",
        (p.org_id,),
    )
    return json_response(
        {
            "business_profile": profile,
            "onboarding_completed": profile is not None and int(counts.get("completed") or 0) > 0,
            "compliance_status": {k: status[k] for k in ("overall_score", "status", "last_updated")},
            "recent_activity": activity,
            "quick_stats": {
                "evidence_items": status["evidence_summary"]["total_evidence_items"],
                "evidence_by_status": status["evidence_summary"]["by_status"],
                "assessments": int(counts.get("assessments") or 0),
                "assessments_completed": int(counts.get("completed") or 0),
                "conversations": int(counts.get("conversations") or 0),
                "reports": int(counts.get("reports") or 0),
            },
            "active_frameworks": [
                {"framework": code, "score": s["score"], "evidence_count": s["evidence_count"]}
                for code, s in status["framework_scores"].items()
            ],
        }
    )


# -- analytics -----------------------------------------------------------------------------------

TIME_RANGES = {"7d": 7, "30d": 30, "90d": 90, "1y": 365}
SERIES = {
    "evidence_created": ("evidence", "created_at", ""),
    "evidence_updated": ("evidence", "updated_at", ""),
    "evidence_approved": ("evidence", "updated_at", " AND status = 'approved'"),
    "assessments_completed": ("assessments", "completed_at", " AND status = 'completed'"),
    "chat_messages": ("messages", "created_at", ""),
    "reports_generated": ("reports", "created_at", ""),
    "activity": ("audit_log", "created_at", ""),
}


def _day(db: Database, column: str) -> str:
    if db.dialect == "sqlite":
        return f"substr({column}, 1, 10)"
    return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


def _since(days: int) -> tuple[str, list[str]]:
    start = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(
        days=days - 1
    )
    return start.isoformat(timespec="microseconds"), [
        (start + dt.timedelta(days=i)).date().isoformat() for i in range(days)
    ]


def _time_range(value: str) -> int:
    if value not in TIME_RANGES:
        raise validation_error(["time_range"], f"one of {sorted(TIME_RANGES)}", "query")
    return TIME_RANGES[value]


@router.get("/analytics/dashboard", tags=["analytics"])
def analytics_dashboard(
    request: Request,
    p: Caller,
    time_range: str = "30d",
    metrics: Annotated[list[str] | None, Query()] = None,
) -> Any:
    days = _time_range(time_range)
    wanted = split_list(metrics) or list(SERIES)
    if bad := [m for m in wanted if m not in SERIES]:
        raise validation_error(["metrics"], f"unknown metric {bad[0]!r}; one of {sorted(SERIES)}", "query")
    db = state(request).db
    since, day_list = _since(days)
    series: dict[str, Any] = {}
    for metric in wanted:
        table, column, extra = SERIES[metric]
        counts = {
            r["day"]: int(r["n"])
            for r in db.fetchall(
                f"SELECT {_day(db, column)} AS day, count(*) AS n FROM {table}"
                f" WHERE organization_id = ? AND {column} >= ?{extra} GROUP BY 1",
                (p.org_id, since),
            )
        }
        points = [{"date": d, "value": counts.get(d, 0)} for d in day_list]
        series[metric] = {"points": points, "total": sum(x["value"] for x in points)}
    return json_response({"time_range": time_range, "start": since, "metrics": series})


AGG_METRICS = {
    "count": "count(*)",
    "avg_quality_score": "avg(e.quality_score)",
    "min_quality_score": "min(e.quality_score)",
    "max_quality_score": "max(e.quality_score)",
    "distinct_owners": "count(DISTINCT e.owner_id)",
    "tag_chars": "avg(length(CAST(e.tags AS TEXT)))",
}


def _group_exprs(db: Database) -> dict[str, str]:
    month = (
        "substr(e.created_at, 1, 7)"
        if db.dialect == "sqlite"
        else "to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM')"
    )
    week = (
        "strftime('%Y-W%W', e.created_at)"
        if db.dialect == "sqlite"
        else "to_char(e.created_at AT TIME ZONE 'UTC', 'IYYY-\"W\"IW')"
    )
    return {
        "status": "e.status",
        "evidence_type": "e.evidence_type",
        "source": "e.source",
        "owner": "CAST(e.owner_id AS TEXT)",
        "framework": "f.framework",
        "day": _day(db, "e.created_at"),
        "week": week,
        "month": month,
    }


@router.get("/analytics/aggregate", tags=["analytics"])
def analytics_aggregate(
    request: Request,
    p: Caller,
    metrics: Annotated[list[str] | None, Query()] = None,
    group_by: Annotated[list[str] | None, Query()] = None,
    time_range: str = "90d",
) -> Any:
    days = _time_range(time_range)
    db = state(request).db
    groups_sql = _group_exprs(db)
    wanted = split_list(metrics) or ["count", "avg_quality_score"]
    groups = split_list(group_by) or ["status"]
    if bad := [m for m in wanted if m not in AGG_METRICS]:
        raise validation_error(
            ["metrics"], f"unknown metric {bad[0]!r}; one of {sorted(AGG_METRICS)}", "query"
        )
    if bad := [g for g in groups if g not in groups_sql]:
        raise validation_error(
            ["group_by"], f"unknown group {bad[0]!r}; one of {sorted(groups_sql)}", "query"
        )
    if len(groups) > 3:
        raise validation_error(["group_by"], "at most 3 groups")
    since, _ = _since(days)
    join = (
        " JOIN evidence_frameworks f ON f.evidence_id = e.id AND f.organization_id = e.organization_id"
        if "framework" in groups
        else ""
    )
    select = ", ".join(
        [
            *(f"{groups_sql[g]} AS g{i}" for i, g in enumerate(groups)),
            *(f"{AGG_METRICS[m]} AS m{i}" for i, m in enumerate(wanted)),
        ]
    )
    rows = db.fetchall(
        f"SELECT {select} FROM evidence e{join} WHERE e.organization_id = ? AND e.created_at >= ?"
        f" GROUP BY {', '.join(str(i + 1) for i in range(len(groups)))}"
        f" ORDER BY {', '.join(str(i + 1) for i in range(len(groups)))} LIMIT 5000",
        (p.org_id, since),
    )
    out = []
    for r in rows:
        item: dict[str, Any] = {g: r[f"g{i}"] for i, g in enumerate(groups)}
        for i, m in enumerate(wanted):
            v = r[f"m{i}"]
            item[m] = (
                None if v is None else (int(v) if m in ("count", "distinct_owners") else round(float(v), 4))
            )
        out.append(item)
    return json_response({"time_range": time_range, "group_by": groups, "metrics": wanted, "groups": out})


# -- export --------------------------------------------------------------------------------------


class DateRange(BaseModel):
    start: str | None = None
    end: str | None = None


class ExportIn(BaseModel):
    data_type: Literal["evidence", "assessments", "audit_trail"]
    format: Literal["csv", "json"] = "json"
    date_range: DateRange | None = None


MAX_EXPORT_ROWS = 10_000


@router.post("/export", tags=["export"])
def export(body: ExportIn, request: Request, p: Caller) -> Response:
    from reference_backend.core import parse_time

    db = state(request).db
    table, columns = {
        "evidence": ("evidence", EVIDENCE_COLUMNS),
        "assessments": ("assessments", ASSESSMENT_COLUMNS),
        "audit_trail": ("audit_log", "id, user_id, action, entity_type, entity_id, details, created_at"),
    }[body.data_type]
    where, params = ["organization_id = ?"], [p.org_id]
    rng = body.date_range or DateRange()
    if start := parse_time(rng.start, "date_range.start"):
        where.append("created_at >= ?")
        params.append(start)
    if end := parse_time(rng.end, "date_range.end"):
        where.append("created_at <= ?")
        params.append(end)
    rows = db.fetchall(
        f"SELECT {columns} FROM {table} WHERE {' AND '.join(where)} ORDER BY created_at DESC LIMIT ?",
        [*params, MAX_EXPORT_ROWS + 1],
    )
    truncated = len(rows) > MAX_EXPORT_ROWS
    rows = rows[:MAX_EXPORT_ROWS]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {
        "Content-Disposition": f'attachment; filename="{body.data_type}-{stamp}.{body.format}"',
        "X-Export-Rows": str(len(rows)),
        "X-Export-Truncated": "true" if truncated else "false",
    }
    if body.format == "json":
        payload = json.dumps(
            {"data_type": body.data_type, "count": len(rows), "truncated": truncated, "rows": rows}
        )
        return Response(payload, media_type="application/json", headers=headers)
    buf = io.StringIO()
    names = [c.strip() for c in columns.split(",")]
    writer = csv.writer(buf)
    writer.writerow(names)
    for r in rows:
        writer.writerow([json.dumps(r[n]) if isinstance(r[n], dict | list) else r[n] for n in names])
    return Response(buf.getvalue(), media_type="text/csv", headers=headers)
