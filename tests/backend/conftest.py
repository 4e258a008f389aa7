"""Fixtures of the backend tests: the session backends of tests/conftest.py, one per database."""

from __future__ import annotations

import pytest

from tests.backend_process import Backend


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_backend(request: pytest.FixtureRequest) -> Backend:
    """The session backend on SQLite, then on PostgreSQL: a test using it runs once on each."""
    name = "backend" if request.param == "sqlite" else "pg_backend"
    b: Backend = request.getfixturevalue(name)
    return b
