"""The schema module's docstring is the contract others query by: its tables and columns are exactly
what the database holds, on SQLite and PostgreSQL, and the status copy follows direct SQL updates."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reference_backend import schema
from tests.backend.clients import new_user
from tests.backend_process import Backend, postgres_schema, run_backend


def documented_tables() -> dict[str, list[str]]:
    """`- `table`: `col`, `col` ...` bullets of the docstring, parenthesised remarks removed."""
    doc = schema.__doc__ or ""
    bullets = re.findall(r"^- (`\w+`.*?)(?=^- |^\n|\Z)", doc, flags=re.M | re.S)
    tables: dict[str, list[str]] = {}
    for bullet in bullets:
        flat = re.sub(r"\([^()]*\)", "", " ".join(bullet.split())).split(";")[0]
        name, _, cols = flat.partition(":")
        tables[name.strip(" `")] = re.findall(r"`(\w+)`", cols)
    return tables


def sqlite_columns(path: Path) -> dict[str, list[str]]:
    with sqlite3.connect(path) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: [c[1] for c in conn.execute(f"PRAGMA table_info({n})")] for n in names}


def postgres_columns(url: str) -> dict[str, list[str]]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        ).fetchall()
    out: dict[str, list[str]] = {}
    for table, column in rows:
        out.setdefault(table, []).append(column)
    return out


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Backend, str]]:
    """A backend whose database the test can open: (backend, 'sqlite' path or PostgreSQL URL)."""
    if request.param == "sqlite":
        path = tmp_path / "schema.sqlite3"
        with run_backend(tmp_path, database_url=str(path)) as b:
            yield b, str(path)
    else:
        with postgres_schema() as url, run_backend(tmp_path, database_url=url) as b:
            yield b, url


def test_documented_tables_and_columns_are_the_real_ones(db_backend: tuple[Backend, str]) -> None:
    _, where = db_backend
    actual = postgres_columns(where) if where.startswith("postgresql") else sqlite_columns(Path(where))
    documented = documented_tables()
    assert len(documented) == 13
    for table, columns in documented.items():
        real = [c for c in actual[table] if c != "search_vector"]  # PostgreSQL's documented FTS column
        assert real == columns, f"{table}: documented {columns}, database has {real}"


def test_status_copy_follows_direct_sql_updates(db_backend: tuple[Backend, str]) -> None:
    backend, where = db_backend
    user = new_user(backend)
    item = user.ok(
        "POST",
        "/api/evidence",
        {"title": "t", "framework_mappings": ["SOC2.CC6.1", "GDPR.ART.32"]},
        status=201,
    )
    assert user.ok("GET", "/api/evidence/stats")["by_status"] == {"collected": 1}  # now cached
    update = "UPDATE evidence SET status = 'rejected' WHERE id = ?"
    select = "SELECT status FROM evidence_frameworks WHERE evidence_id = ? ORDER BY framework"
    if where.startswith("postgresql"):
        import psycopg

        with psycopg.connect(where, autocommit=True) as conn:
            conn.execute(update.replace("?", "%s"), (item["id"],))
            statuses = [r[0] for r in conn.execute(select.replace("?", "%s"), (item["id"],))]
    else:
        with sqlite3.connect(where) as conn:
            conn.execute(update, (item["id"],))
            conn.commit()
            statuses = [r[0] for r in conn.execute(select, (item["id"],))]
    assert statuses == ["rejected", "rejected"]
    # Summaries cached by the service pick up the direct write too (within their one-second lifetime).
    deadline = time.monotonic() + 10
    while user.ok("GET", "/api/evidence/stats")["by_status"] != {"rejected": 1}:
        assert time.monotonic() < deadline, "stats never showed the direct update"
        time.sleep(0.1)
    user.ok("PATCH", f"/api/evidence/{item['id']}", {"status": "approved"})
    assert user.ok("GET", "/api/compliance/status")["framework_scores"]["GDPR"]["by_status"] == {
        "approved": 1
    }
