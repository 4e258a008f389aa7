"""Evidence: create, read, update, delete, filtered pages, ranked full-text search, stats and bulk.

Every statement filters on the caller's organisation, so another organisation's id is simply not
found (404), and a bulk update counts it as failed. `quality_score` is a fraction in [0, 1].
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field, ValidationError
from starlette.responses import Response

from reference_backend import schema
from reference_backend.core import (
    Caller,
    Principal,
    audit,
    check_id,
    json_response,
    not_found,
    page_count,
    parse_time,
    split_list,
    state,
    validation_error,
)
from reference_backend.db import Database, new_id, now_iso

router = APIRouter(prefix="/api/evidence", tags=["evidence"])

EVIDENCE_STATUSES = ("collected", "pending", "reviewed", "approved", "rejected", "expired")
EVIDENCE_TYPES = (
    "document",
    "screenshot",
    "configuration",
    "audit_log",
    "policy",
    "log_file",
    "certificate",
    "report",
    "other",
)
SORTABLE = ("created_at", "updated_at", "title", "quality_score", "status", "evidence_type")

COLUMNS = (
    "id, organization_id, owner_id, title, description, evidence_type, source, status, quality_score,"
    " framework_mappings, tags, metadata, notes, created_at, updated_at"
)
FW_INSERT = (
    "INSERT INTO evidence_frameworks (evidence_id, organization_id, framework, status) VALUES (?, ?, ?, ?)"
)
E_COLUMNS = ", ".join("e." + c.strip() for c in COLUMNS.split(","))

Status = Literal["collected", "pending", "reviewed", "approved", "rejected", "expired"]
EvidenceType = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")]
Text = Annotated[str, Field(max_length=20000)]
Tag = Annotated[str, Field(min_length=1, max_length=100)]
Mapping_ = Annotated[str, Field(min_length=1, max_length=100)]


class EvidenceIn(BaseModel):
    """A new evidence item. Ids, organisation, owner and timestamps are set by the service, never read."""

    title: Annotated[str, Field(min_length=1, max_length=500)]
    description: Text = ""
    evidence_type: EvidenceType = "document"
    source: Annotated[str, Field(max_length=200)] = "manual"
    framework_mappings: Annotated[list[Mapping_], Field(max_length=100)] = []
    tags: Annotated[list[Tag], Field(max_length=100)] = []
    metadata: dict[str, Any] = {}
    status: Status = "collected"
    quality_score: Annotated[float | None, Field(ge=0, le=1)] = None
    notes: Annotated[str | None, Field(max_length=20000)] = None


class EvidencePatch(BaseModel):
    title: Annotated[str | None, Field(min_length=1, max_length=500)] = None
    description: Text | None = None
    evidence_type: EvidenceType | None = None
    source: Annotated[str | None, Field(max_length=200)] = None
    framework_mappings: Annotated[list[Mapping_] | None, Field(max_length=100)] = None
    tags: Annotated[list[Tag] | None, Field(max_length=100)] = None
    metadata: dict[str, Any] | None = None
    status: Status | None = None
    quality_score: Annotated[float | None, Field(ge=0, le=1)] = None
    notes: Annotated[str | None, Field(max_length=20000)] = None


class BulkIn(BaseModel):
    items: list[dict[str, Any]]


class BulkUpdateIn(BaseModel):
    evidence_ids: list[str]
    status: Status
    reason: Annotated[str | None, Field(max_length=2000)] = None


def frameworks_of(mappings: list[str]) -> list[str]:
    """`ISO27001.A.9.2.3` -> `ISO27001`; each framework once, in first-seen order."""
    return list(dict.fromkeys(m.split(".", 1)[0].upper() for m in mappings if m.strip()))


def insert_rows(db: Database, p: Principal, items: list[EvidenceIn]) -> list[dict[str, Any]]:
    """Insert evidence (inside the caller's transaction) and return the stored rows as dicts."""
    now = now_iso()
    rows: list[tuple[Any, ...]] = []
    fw_rows: list[tuple[str, str, str, str]] = []
    out: list[dict[str, Any]] = []
    for item in items:
        eid = new_id()
        rows.append(
            (
                eid,
                p.org_id,
                p.user_id,
                item.title,
                item.description,
                item.evidence_type,
                item.source,
                item.status,
                item.quality_score,
                json.dumps(item.framework_mappings),
                json.dumps(item.tags),
                json.dumps(item.metadata),
                item.notes,
                now,
                now,
            )
        )
        fw_rows.extend((eid, p.org_id, fw, item.status) for fw in frameworks_of(item.framework_mappings))
        out.append(
            {
                "id": eid,
                "organization_id": p.org_id,
                "owner_id": p.user_id,
                **item.model_dump(),
                "created_at": now,
                "updated_at": now,
            }
        )
    db.executemany(
        f"INSERT INTO evidence ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
    )
    if fw_rows:
        db.executemany(FW_INSERT, fw_rows)
    return out


@router.post("", status_code=201)
def create_evidence(body: EvidenceIn, request: Request, p: Caller) -> Any:
    db = state(request).db
    with db.transaction():
        row = insert_rows(db, p, [body])[0]
        audit(db, p, "evidence.create", "evidence", row["id"])
    state(request).summaries.bump(p.org_id)
    return json_response(row, 201)


def _filters(
    p: Principal,
    statuses: list[str],
    types: list[str],
    frameworks: list[str],
    created_from: str | None,
    created_to: str | None,
    alias: str = "e",
) -> tuple[str, list[Any]]:
    where = [f"{alias}.organization_id = ?"]
    params: list[Any] = [p.org_id]
    for name, values, column in (("status", statuses, "status"), ("evidence_type", types, "evidence_type")):
        if values:
            if name == "status" and (bad := [v for v in values if v not in EVIDENCE_STATUSES]):
                raise validation_error(
                    ["status"], f"unknown status {bad[0]!r}; one of {EVIDENCE_STATUSES}", "query"
                )
            where.append(f"{alias}.{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
    if frameworks:
        where.append(
            f"EXISTS (SELECT 1 FROM evidence_frameworks f WHERE f.evidence_id = {alias}.id"
            f" AND f.organization_id = ? AND f.framework IN ({', '.join('?' * len(frameworks))}))"
        )
        params.append(p.org_id)
        params.extend(frameworks_of(frameworks))
    if created_from:
        where.append(f"{alias}.created_at >= ?")
        params.append(created_from)
    if created_to:
        where.append(f"{alias}.created_at <= ?")
        params.append(created_to)
    return " AND ".join(where), params


def _page_args(request: Request, page: int, page_size: int) -> None:
    limit = state(request).settings.max_page_size
    if page_size > limit:
        raise validation_error(["page_size"], f"page_size must be at most {limit}", "query")


ListParam = Annotated[list[str] | None, Query()]


@router.get("")
def list_evidence(
    request: Request,
    p: Caller,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    page_size: Annotated[int, Query(ge=1)] = 20,
    framework: ListParam = None,
    status: ListParam = None,
    evidence_type: ListParam = None,
    created_from: str | None = None,
    created_to: str | None = None,
    sort_by: str = "created_at",
    sort_order: Literal["asc", "desc"] = "desc",
) -> Any:
    _page_args(request, page, page_size)
    if sort_by not in SORTABLE:
        raise validation_error(["sort_by"], f"must be one of {SORTABLE}", "query")
    where, params = _filters(
        p,
        split_list(status),
        split_list(evidence_type),
        split_list(framework),
        parse_time(created_from, "created_from"),
        parse_time(created_to, "created_to"),
    )
    db = state(request).db
    total = int(db.scalar(f"SELECT count(*) FROM evidence e WHERE {where}", params))
    rows = db.fetchall(
        f"SELECT {E_COLUMNS} FROM evidence e WHERE {where}"
        f" ORDER BY e.{sort_by} {sort_order}, e.row_id {sort_order} LIMIT ? OFFSET ?",
        [*params, page_size, (page - 1) * page_size],
    )
    return json_response(
        {
            "results": rows,
            "total_count": total,
            "page": page,
            "page_size": page_size,
            "total_pages": page_count(total, page_size),
        }
    )


_WORD = re.compile(r"\w+", re.UNICODE)


def fts_terms(q: str) -> list[str]:
    return _WORD.findall(q)[:32]


def _search_sqlite(
    db: Database,
    p: Principal,
    terms: list[str],
    where: str,
    params: list[Any],
    order: str,
    limit: int,
    offset: int,
    any_term: bool,
    count: bool,
) -> tuple[int, list[dict[str, Any]]]:
    """FTS5: rank inside the organisation's posting list, page by rowid, then fetch and highlight the page.

    Highlights are computed for the page's rows only: in one query with ORDER BY ... LIMIT, SQLite
    would compute them for every match before sorting."""
    if any_term:  # chat citations: any word, in titles only (short posting lists, the best citations)
        match = (
            f"org : {schema.org_token(p.org_id)} AND title : (" + " OR ".join(f'"{t}"' for t in terms) + ")"
        )
    else:
        match = f"org : {schema.org_token(p.org_id)} AND (" + " AND ".join(f'"{t}"' for t in terms) + ")"
    rank = "bm25(evidence_fts, 10.0, 4.0, 2.0, 0.0)"
    if len(params) == 1 and order == "relevance":
        # No filter but the organisation, which the match already applies: the index alone answers.
        base, args = "FROM evidence_fts WHERE evidence_fts MATCH ?", [match]
        row_id = "evidence_fts.rowid"
    else:
        # CROSS JOIN keeps the full-text match as the outer loop; left to itself, SQLite's planner
        # walks the organisation's rows and re-runs the match for each one (seconds on 100k rows).
        base = (
            "FROM evidence_fts CROSS JOIN evidence e ON e.row_id = evidence_fts.rowid"
            f" WHERE evidence_fts MATCH ? AND {where}"
        )
        args, row_id = [match, *params], "e.row_id"
    total = int(db.scalar(f"SELECT count(*) {base}", args)) if count else -1
    order_sql = "rank" if order == "relevance" else order
    page = db.fetchall(
        f"SELECT {row_id} AS row_id, -{rank} AS rank_score, {rank} AS rank {base}"
        f" ORDER BY {order_sql} LIMIT ? OFFSET ?",
        [*args, limit, offset],
    )
    if not page:
        return total, []
    row_ids = [r["row_id"] for r in page]
    marks = ", ".join("?" * len(row_ids))
    rows = {
        r["row_id"]: r
        for r in db.fetchall(f"SELECT row_id, {COLUMNS} FROM evidence WHERE row_id IN ({marks})", row_ids)
    }
    marks_hl = {
        r["rowid"]: r
        for r in db.fetchall(
            "SELECT rowid, highlight(evidence_fts, 0, '<mark>', '</mark>') AS hl_title,"
            " snippet(evidence_fts, 1, '<mark>', '</mark>', '...', 24) AS hl_description"
            f" FROM evidence_fts WHERE evidence_fts MATCH ? AND rowid IN ({marks})",
            [match, *row_ids],
        )
    }
    out = []
    for r in page:
        row = rows[r["row_id"]]
        row.pop("row_id")
        hl = marks_hl.get(r["row_id"], {})
        row["relevance_score"] = r["rank_score"]
        row["hl_title"] = hl.get("hl_title", row["title"])
        row["hl_description"] = hl.get("hl_description", row["description"])
        out.append(row)
    return total, out


def search_rows(
    db: Database,
    p: Principal,
    q: str,
    where: str,
    params: list[Any],
    order: str,
    limit: int,
    offset: int,
    any_term: bool = False,
    count: bool = True,
) -> tuple[int, list[dict[str, Any]]]:
    """Ranked full-text matches of `q` in the organisation's evidence: (total, rows of the page).

    `any_term` matches any word of the titles (chat citations) instead of all words anywhere (the
    search route)."""
    terms = fts_terms(q)
    if not terms:
        return 0, []
    if db.dialect == "sqlite":
        total, rows = _search_sqlite(db, p, terms, where, params, order, limit, offset, any_term, count)
    else:
        if any_term:
            words = [w for t in terms for w in re.findall(r"[a-z0-9]+", t.lower())]
            text, tsq = " | ".join(f"{w}:A" for w in words), "to_tsquery('english', ?)"
        else:
            text, tsq = " ".join(terms), "websearch_to_tsquery('english', ?)"
        base = f"FROM evidence e WHERE e.search_vector @@ {tsq} AND {where}"
        total = int(db.scalar(f"SELECT count(*) {base}", [text, *params])) if count else -1
        order_sql = "relevance_score DESC" if order == "relevance" else order
        outer_order = "relevance_score DESC" if order == "relevance" else order.replace("e.", "page.")
        rows = db.fetchall(
            "WITH page AS ("
            f" SELECT {E_COLUMNS},"
            f" ts_rank(e.search_vector, {tsq}) AS relevance_score"
            f" {base} ORDER BY {order_sql} LIMIT ? OFFSET ?)"
            " SELECT page.*,"
            f" ts_headline('english', page.title, {tsq},"
            "   'StartSel=<mark>, StopSel=</mark>, HighlightAll=true') AS hl_title,"
            f" ts_headline('english', coalesce(page.description, ''), {tsq},"
            "   'StartSel=<mark>, StopSel=</mark>, MaxWords=24, MinWords=8') AS hl_description"
            f" FROM page ORDER BY {outer_order}",
            [text, text, *params, limit, offset, text, text],
        )
    for row in rows:
        row["relevance_score"] = float(row["relevance_score"])
        row["highlight"] = {"title": row.pop("hl_title"), "description": row.pop("hl_description")}
    return total, rows


@router.get("/search")
def search_evidence(
    request: Request,
    p: Caller,
    q: Annotated[str, Query(min_length=1, max_length=500)],
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    page_size: Annotated[int, Query(ge=1)] = 20,
    framework: ListParam = None,
    status: ListParam = None,
    evidence_type: ListParam = None,
    created_from: str | None = None,
    created_to: str | None = None,
    sort_by: str = "relevance",
    sort_order: Literal["asc", "desc"] = "desc",
) -> Any:
    _page_args(request, page, page_size)
    if sort_by != "relevance" and sort_by not in SORTABLE:
        raise validation_error(["sort_by"], f"must be 'relevance' or one of {SORTABLE}", "query")
    if not fts_terms(q):
        raise validation_error(["q"], "must contain at least one word", "query")
    where, params = _filters(
        p,
        split_list(status),
        split_list(evidence_type),
        split_list(framework),
        parse_time(created_from, "created_from"),
        parse_time(created_to, "created_to"),
    )
    order = "relevance" if sort_by == "relevance" else f"e.{sort_by} {sort_order}, e.row_id {sort_order}"
    total, rows = search_rows(
        state(request).db, p, q, where, params, order, page_size, (page - 1) * page_size
    )
    return json_response(
        {
            "results": rows,
            "total_count": total,
            "page": page,
            "page_size": page_size,
            "total_pages": page_count(total, page_size),
            "query": q,
        }
    )


def evidence_stats(db: Database, org_id: str) -> dict[str, Any]:
    by_status = {
        r["status"]: int(r["n"])
        for r in db.fetchall(
            "SELECT status, count(*) AS n FROM evidence WHERE organization_id = ? GROUP BY status", (org_id,)
        )
    }
    by_type = {
        r["evidence_type"]: int(r["n"])
        for r in db.fetchall(
            "SELECT evidence_type, count(*) AS n FROM evidence WHERE organization_id = ?"
            " GROUP BY evidence_type",
            (org_id,),
        )
    }
    by_framework = {
        r["framework"]: int(r["n"])
        for r in db.fetchall(
            "SELECT framework, count(*) AS n FROM evidence_frameworks WHERE organization_id = ?"
            " GROUP BY framework",
            (org_id,),
        )
    }
    avg = db.scalar("SELECT avg(quality_score) FROM evidence WHERE organization_id = ?", (org_id,))
    return {
        "total_evidence_items": sum(by_status.values()),
        "by_status": by_status,
        "by_type": by_type,
        "by_framework": by_framework,
        "average_quality_score": None if avg is None else round(float(avg), 4),
    }


@router.get("/stats")
def stats(request: Request, p: Caller) -> Any:
    st = state(request)
    return json_response(st.summaries.get("stats", p.org_id, lambda: evidence_stats(st.db, p.org_id)))


@router.post("/bulk", status_code=201)
def bulk_create(body: BulkIn, request: Request, p: Caller) -> Any:
    st = state(request)
    limit = st.settings.max_bulk_items
    if not body.items:
        raise validation_error(["items"], "must contain at least one item")
    if len(body.items) > limit:
        raise validation_error(["items"], f"at most {limit} items per request, got {len(body.items)}")
    items: list[EvidenceIn] = []
    for i, raw in enumerate(body.items):
        try:
            items.append(EvidenceIn.model_validate(raw))
        except ValidationError as exc:
            err = exc.errors()[0]
            raise validation_error(["items", i, *err["loc"]], err["msg"]) from None
    with st.db.transaction():
        rows = insert_rows(st.db, p, items)
        audit(st.db, p, "evidence.bulk_create", "evidence", "", {"count": len(rows)})
    st.summaries.bump(p.org_id)
    return json_response({"created_count": len(rows), "ids": [r["id"] for r in rows]}, 201)


@router.post("/bulk-update")
def bulk_update(body: BulkUpdateIn, request: Request, p: Caller) -> Any:
    st = state(request)
    limit = st.settings.max_bulk_items
    if len(body.evidence_ids) > limit:
        raise validation_error(
            ["evidence_ids"], f"at most {limit} ids per request, got {len(body.evidence_ids)}"
        )
    valid: dict[str, str] = {}
    for raw in body.evidence_ids:
        with contextlib.suppress(HTTPException):
            valid[check_id(raw, "evidence")] = raw
    found: set[str] = set()
    ids = list(valid)
    with st.db.transaction():
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            found.update(
                r["id"]
                for r in st.db.fetchall(
                    f"SELECT id FROM evidence WHERE organization_id = ? AND id IN ({marks})",
                    [p.org_id, *chunk],
                )
            )
            st.db.execute(
                f"UPDATE evidence SET status = ?, updated_at = ?"
                f" WHERE organization_id = ? AND id IN ({marks})",
                [body.status, now_iso(), p.org_id, *chunk],
            )
        if found:
            audit(
                st.db,
                p,
                "evidence.bulk_update",
                "evidence",
                "",
                {"count": len(found), "status": body.status, "reason": body.reason},
            )
    st.summaries.bump(p.org_id)
    failed = [raw for raw in body.evidence_ids if check_id_or_none(raw) not in found]
    return json_response({"updated_count": len(found), "failed_count": len(failed), "failed_ids": failed})


def check_id_or_none(raw: str) -> str | None:
    try:
        return check_id(raw, "evidence")
    except HTTPException:
        return None


def _get(db: Database, p: Principal, evidence_id: str) -> dict[str, Any]:
    row = db.fetchone(
        f"SELECT {COLUMNS} FROM evidence WHERE id = ? AND organization_id = ?", (evidence_id, p.org_id)
    )
    if row is None:
        raise not_found("evidence")
    return row


@router.get("/{evidence_id}")
def get_evidence(evidence_id: str, request: Request, p: Caller) -> Any:
    return json_response(_get(state(request).db, p, check_id(evidence_id, "evidence")))


def _update(request: Request, p: Caller, evidence_id: str, changes: dict[str, Any]) -> Any:
    db = state(request).db
    eid = check_id(evidence_id, "evidence")
    with db.transaction():
        current = _get(db, p, eid)
        if changes:
            sets, params = [], []
            for key, value in changes.items():
                sets.append(f"{key} = ?")
                params.append(
                    json.dumps(value) if key in ("framework_mappings", "tags", "metadata") else value
                )
            now = now_iso()
            db.execute(
                f"UPDATE evidence SET {', '.join(sets)}, updated_at = ? WHERE id = ? AND organization_id = ?",
                [*params, now, eid, p.org_id],
            )
            status = changes.get("status", current["status"])
            if "framework_mappings" in changes:
                db.execute("DELETE FROM evidence_frameworks WHERE evidence_id = ?", (eid,))
                fws = frameworks_of(changes["framework_mappings"])
                if fws:
                    db.executemany(FW_INSERT, [(eid, p.org_id, fw, status) for fw in fws])
            current.update(changes, updated_at=now)
            audit(db, p, "evidence.update", "evidence", eid, {"fields": sorted(changes)})
    state(request).summaries.bump(p.org_id)
    return json_response(current)


@router.patch("/{evidence_id}")
def patch_evidence(evidence_id: str, body: EvidencePatch, request: Request, p: Caller) -> Any:
    changes = body.model_dump(exclude_unset=True)
    for key in ("title", "evidence_type", "status", "framework_mappings", "tags", "metadata", "source"):
        if key in changes and changes[key] is None:
            raise validation_error([key], "may not be null")
    return _update(request, p, evidence_id, changes)


@router.put("/{evidence_id}")
def put_evidence(evidence_id: str, body: EvidenceIn, request: Request, p: Caller) -> Any:
    return _update(request, p, evidence_id, body.model_dump())


@router.delete("/{evidence_id}", status_code=204, response_class=Response)
def delete_evidence(evidence_id: str, request: Request, p: Caller) -> Response:
    db = state(request).db
    eid = check_id(evidence_id, "evidence")
    with db.transaction():
        db.execute(
            "DELETE FROM evidence_frameworks WHERE evidence_id = ? AND organization_id = ?", (eid, p.org_id)
        )
        if db.execute("DELETE FROM evidence WHERE id = ? AND organization_id = ?", (eid, p.org_id)) == 0:
            raise not_found("evidence")
        audit(db, p, "evidence.delete", "evidence", eid)
    state(request).summaries.bump(p.org_id)
    return Response(status_code=204)
