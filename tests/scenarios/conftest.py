from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.backend_process import Backend, run_backend


@pytest.fixture(scope="session")
def scenario_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """The reference backend (SQLite), quick report jobs, admin endpoints; shared by these tests."""
    settings = {"CGPT_REPORT_SECONDS": "0.3"}
    with run_backend(tmp_path_factory.mktemp("scenario-backend"), settings=settings) as b:
        yield b


@contextmanager
def faults(backend: Backend, *rules: dict[str, Any]) -> Iterator[None]:
    """Fault rules on the backend for the duration of the block."""
    status, body = backend.request("PUT", "/admin/faults", {"faults": list(rules)})
    assert status == 200, body
    try:
        yield
    finally:
        backend.request("DELETE", "/admin/faults")
