"""`_db` reads the database URLs the backend accepts, refuses others with a message naming the problem,
opens SQLite files read-write without ever creating one, and keeps passwords out of its messages."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from compliance_loadtest.db import DatabaseUrlError, connect, redact, sqlite_path


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("/srv/data/backend.sqlite3", "/srv/data/backend.sqlite3"),
        ("relative.sqlite3", "relative.sqlite3"),
        ("sqlite:///relative.sqlite3", "relative.sqlite3"),
        ("sqlite:////srv/data/backend.sqlite3", "/srv/data/backend.sqlite3"),
        ("sqlite:////srv/my%20data/backend.sqlite3", "/srv/my data/backend.sqlite3"),
    ],
)
def test_sqlite_urls_name_the_file_as_the_backend_reads_them(url: str, path: str) -> None:
    assert sqlite_path(url) == Path(path)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root@127.0.0.1/db", "unsupported database URL scheme 'mysql'"),
        ("sqlite://", "SQLite URL 'sqlite://' names no file"),
        ("sqlite:///", "SQLite URL 'sqlite:///' names no file"),
    ],
)
def test_unusable_urls_are_refused_with_a_message(url: str, message: str) -> None:
    with pytest.raises(DatabaseUrlError, match=message):
        sqlite_path(url)


def test_a_missing_sqlite_file_is_an_error_not_a_new_empty_database(tmp_path: Path) -> None:
    missing = tmp_path / "backend.sqlite3"
    with pytest.raises(DatabaseUrlError, match="does not exist"):
        connect(str(missing))
    assert not missing.exists()


def test_a_sqlite_file_opens_read_write_in_autocommit_mode(tmp_path: Path) -> None:
    path = tmp_path / "odd name #1.sqlite3"
    sqlite3.connect(path).execute("CREATE TABLE t (x INTEGER)").connection.close()
    db = connect(f"sqlite:///{path}")
    db.execute("INSERT INTO t VALUES (1)")
    assert not db.in_transaction
    assert sqlite3.connect(path).execute("SELECT count(*) FROM t").fetchone() == (1,)


def test_passwords_are_redacted_from_urls() -> None:
    assert redact("postgresql://app:s3cret@db:5432/x") == "postgresql://app:<redacted>@db:5432/x"
    assert redact("postgresql://app@db/x") == "postgresql://app@db/x"
