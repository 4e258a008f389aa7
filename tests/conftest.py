from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backend_process import Backend, postgres_schema, run_backend


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """The reference backend on SQLite in a temporary directory, for the whole test session."""
    with run_backend(tmp_path_factory.mktemp("backend")) as b:
        yield b


@pytest.fixture(scope="session")
def pg_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """The reference backend on the machine's PostgreSQL, in a schema of its own."""
    with postgres_schema() as url, run_backend(tmp_path_factory.mktemp("pg-backend"), database_url=url) as b:
        yield b


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "run"
    d.mkdir()
    return d
