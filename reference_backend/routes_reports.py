"""Report routes: queue a job (202 + task id), poll its status, download the file (409 until done)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field, field_validator
from starlette.responses import Response

from reference_backend import frameworks as fw
from reference_backend.core import Caller, Principal, audit, check_id, json_response, not_found, state
from reference_backend.db import Database, new_id, now_iso
from reference_backend.reports import CONTENT_TYPES

router = APIRouter(prefix="/api/reports", tags=["reports"])

ReportType = Literal["gap_analysis", "readiness_assessment", "evidence_summary", "compliance_overview"]


class ReportIn(BaseModel):
    report_type: ReportType
    frameworks: Annotated[list[str], Field(max_length=20)] = []
    format: Literal["pdf", "html", "json", "csv"] = "pdf"
    include_sections: Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=50)] = []
    filters: dict[str, Any] = {}
    priority: Literal["low", "normal", "medium", "high", "urgent"] = "normal"

    @field_validator("frameworks")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        codes = [c.upper() for c in v]
        unknown = [c for c in codes if c not in fw.BY_CODE]
        if unknown:
            raise ValueError(f"unknown framework {unknown[0]!r}; known: {', '.join(fw.CODES)}")
        return codes


STATUS_COLUMNS = (
    "id, report_type, format, status, progress, error, created_at, started_at, completed_at, parameters"
)


@router.post("/generate", status_code=202)
def generate(body: ReportIn, request: Request, p: Caller) -> Any:
    st = state(request)
    task_id, now = new_id(), now_iso()
    params = body.model_dump()
    with st.db.transaction():
        st.db.execute(
            "INSERT INTO reports (id, organization_id, user_id, report_type, format,"
            " parameters, status, progress,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                task_id,
                p.org_id,
                p.user_id,
                body.report_type,
                body.format,
                json.dumps(params),
                "pending",
                0,
                now,
            ),
        )
        audit(st.db, p, "report.generate", "report", task_id, {"report_type": body.report_type})
    st.reports.loop.call_soon_threadsafe(st.reports.submit, task_id, p.org_id, params)
    return json_response(
        {
            "task_id": task_id,
            "status": "pending",
            "status_url": f"/api/reports/status/{task_id}",
            "download_url": f"/api/reports/{task_id}/download",
            "created_at": now,
        },
        202,
    )


def _report(db: Database, p: Principal, task_id: str, columns: str) -> dict[str, Any]:
    row = db.fetchone(
        f"SELECT {columns} FROM reports WHERE id = ? AND organization_id = ?",
        (check_id(task_id, "report"), p.org_id),
    )
    if row is None:
        raise not_found("report")
    return row


@router.get("")
def list_reports(request: Request, p: Caller) -> Any:
    rows = state(request).db.fetchall(
        f"SELECT {STATUS_COLUMNS} FROM reports WHERE organization_id = ? ORDER BY created_at DESC LIMIT 100",
        (p.org_id,),
    )
    return json_response([{"task_id": r["id"], **r} for r in rows])


@router.get("/status/{task_id}")
def report_status(task_id: str, request: Request, p: Caller) -> Any:
    row = _report(state(request).db, p, task_id, STATUS_COLUMNS)
    return json_response({"task_id": row["id"], **row})


@router.get("/{task_id}/download")
def download(task_id: str, request: Request, p: Caller) -> Response:
    row = _report(state(request).db, p, task_id, "id, status, format, report_type, content, content_type")
    if row["status"] != "completed":
        raise HTTPException(409, f"report is {row['status']}, not completed")
    filename = f"{row['report_type']}-{row['id'][:8]}.{row['format']}"
    return Response(
        row["content"] or "",
        media_type=row["content_type"] or CONTENT_TYPES[row["format"]],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
