"""PostgreSQL without psycopg 3 (the `postgres` extra, which `pip install .` leaves out): every way of
asking for it stops with exit 2 and one line that names the option and the extra, before any load and
without a traceback. psycopg is hidden from the child processes by a `sitecustomize` on their path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.scenarios.locust_run import REPO, clean_env, locust

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
EXTRA = "PostgreSQL needs psycopg 3, which is not installed: pip install 'compliance-loadtest[postgres]'"

HIDE_PSYCOPG = """
import sys


class _HidePsycopg:
    def find_spec(self, name, path=None, target=None):
        if name == "psycopg" or name.startswith("psycopg."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _HidePsycopg())
"""


@pytest.fixture
def without_psycopg(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HIDE_PSYCOPG)
    return {"PYTHONPATH": f"{site}:{REPO}"}


@pytest.mark.parametrize(
    ("option", "said"),
    [
        ("--backend-database-url", f"compliance scenarios: --backend-database-url: {EXTRA}"),
        ("--db-url", f"--db-url: {EXTRA}"),
    ],
)
def test_a_locust_run_on_postgresql_without_psycopg_stops_before_any_load(
    without_psycopg: dict[str, str], option: str, said: str
) -> None:
    run = locust(
        ["-f", "locust_scenarios", "--headless", "-u", "1", "-t", "5s", option, PG_URL, "DatabaseStressUser"],
        env=without_psycopg,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert said in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and "All users spawned" not in run.stderr


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["seed", "--no-progress"]])
def test_the_reference_backend_on_postgresql_without_psycopg_says_so(
    without_psycopg: dict[str, str], command: list[str]
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "reference_backend", *command, "--database-url", PG_URL],
        cwd=REPO, env=clean_env(without_psycopg), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"error: --database-url / DATABASE_URL: {EXTRA}" in proc.stderr
    assert "Traceback" not in proc.stderr
