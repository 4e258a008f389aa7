"""Report jobs: queued by `POST /api/reports/generate`, run in the background on the event loop.

A job goes pending -> running -> completed (or failed, with the error: a job cut off by a database
outage is recorded as failed once the database answers again), writing its progress to the
`reports` table as it goes, so status polling reads the database like a real worker-backed service.
Its duration is `Settings.report_seconds`; at most `MAX_RUNNING` jobs run at once, the rest wait as
pending. Generation reads the organisation's evidence and renders pdf, html, json or csv.
"""

from __future__ import annotations

import asyncio
import csv
import html
import io
import json
import logging
from typing import Any

from starlette.concurrency import run_in_threadpool

from reference_backend.db import now_iso

log = logging.getLogger("reference_backend.reports")

MAX_RUNNING = 4
STEPS = 10
RECORD_FAILURE_FOR_S = 60.0
CONTENT_TYPES = {"pdf": "application/pdf", "html": "text/html", "json": "application/json", "csv": "text/csv"}


class ReportRunner:
    def __init__(self, st: Any) -> None:
        self.st = st
        self.loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_RUNNING)

    def submit(self, task_id: str, org_id: str, request: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._run(task_id, org_id, request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _set(self, task_id: str, **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        await run_in_threadpool(
            self.st.db.execute, f"UPDATE reports SET {sets} WHERE id = ?", [*fields.values(), task_id]
        )

    async def _run(self, task_id: str, org_id: str, request: dict[str, Any]) -> None:
        async with self._slots:
            try:
                await self._set(task_id, status="running", started_at=now_iso(), progress=0)
                step = self.st.settings.report_seconds / STEPS
                for i in range(1, STEPS):
                    await asyncio.sleep(step)
                    await self._set(task_id, progress=i * 100 // STEPS)
                await asyncio.sleep(step)
                content = await run_in_threadpool(render, self.st.db, org_id, request)
                await self._set(
                    task_id,
                    status="completed",
                    progress=100,
                    content=content,
                    content_type=CONTENT_TYPES[request["format"]],
                    completed_at=now_iso(),
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("report %s failed: %s", task_id, type(exc).__name__)
                await self._record_failure(task_id, f"{type(exc).__name__}: {exc}"[:500])

    async def _record_failure(self, task_id: str, error: str) -> None:
        """Mark the job failed, retrying while the database itself is what failed, so a job cut off
        by an outage ends `failed` once the database is back instead of `running` forever."""
        deadline = asyncio.get_running_loop().time() + RECORD_FAILURE_FOR_S
        while True:
            try:
                await self._set(task_id, status="failed", error=error, completed_at=now_iso())
                return
            except Exception:
                if asyncio.get_running_loop().time() > deadline:
                    log.warning("report %s: could not record its failure", task_id)
                    return
                await asyncio.sleep(0.5)


def render(db: Any, org_id: str, request: dict[str, Any]) -> str:
    """The report file as text (a minimal PDF is ASCII too)."""
    from reference_backend.routes_compliance import compliance_status

    status = compliance_status(db, org_id)
    frameworks = request.get("frameworks") or sorted(status["framework_scores"])
    recent = db.fetchall(
        "SELECT id, title, evidence_type, status, quality_score, created_at FROM evidence"
        " WHERE organization_id = ? ORDER BY created_at DESC LIMIT 50",
        (org_id,),
    )
    title = request["report_type"].replace("_", " ").title()
    summary = {
        "report_type": request["report_type"],
        "generated_at": now_iso(),
        "frameworks": frameworks,
        "overall_score": status["overall_score"],
        "status": status["status"],
        "framework_scores": {k: v for k, v in status["framework_scores"].items() if k in frameworks},
        "evidence_summary": status["evidence_summary"],
        "recent_evidence": recent,
    }
    fmt = request["format"]
    if fmt == "json":
        return json.dumps(summary)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["id", "title", "evidence_type", "status", "quality_score", "created_at"])
        for r in recent:
            w.writerow(
                [r["id"], r["title"], r["evidence_type"], r["status"], r["quality_score"], r["created_at"]]
            )
        return buf.getvalue()
    lines = [
        f"{title}",
        f"Overall score: {status['overall_score']} ({status['status']})",
        *(
            f"{code}: {s['score']} over {s['evidence_count']} items"
            for code, s in summary["framework_scores"].items()
        ),
        f"Evidence items: {status['evidence_summary']['total_evidence_items']}",
    ]
    if fmt == "html":
        items = "".join(f"<li>{html.escape(line)}</li>" for line in lines[1:])
        rows = "".join(f"<tr><td>{html.escape(r['title'])}</td><td>{r['status']}</td></tr>" for r in recent)
        return (
            f"<!doctype html><html><head><title>{html.escape(title)}</title></head><body>"
            f"<h1>{html.escape(title)}</h1><ul>{items}</ul><table>{rows}</table></body></html>"
        )
    return _pdf(lines)


def _pdf(lines: list[str]) -> str:
    """A one-page PDF with the lines as text: small, valid, and ASCII."""

    def esc(s: str) -> str:
        return (
            s.encode("ascii", "replace")
            .decode()
            .replace("\\", "\\\\")
            .replace("(", "\\(")
            .replace(")", "\\)")
        )

    text = "BT /F1 12 Tf 50 780 Td 16 TL " + " ".join(f"({esc(line)}) '" for line in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R"
        " /Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(text)} >>\nstream\n{text}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = "%PDF-1.4\n"
    offsets = []
    for i, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{obj}\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n"
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    return out
