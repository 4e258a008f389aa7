"""Run `locust` headless as a subprocess for the benchmark tests, and read what the run left behind.

A real command line, so what is tested is what a user runs: class selection, the run ending by itself,
the exit code, `benchmark_results.json` and Locust's own CSV stats.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import compliance_loadtest

SCENARIOS = Path(compliance_loadtest.locustfile_path())
LOCUST = str(Path(sys.executable).with_name("locust"))

# A safety bound only: every run here ends by itself long before it.
RUN_TIME_LIMIT = "100s"


@dataclass
class LocustRun:
    returncode: int
    output: str
    run_dir: Path

    @property
    def ended_by_itself(self) -> bool:
        return (
            "benchmark users finished their rounds" in self.output
            and "--run-time limit reached" not in self.output
        )

    def results(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.run_dir / "benchmark_results.json").read_text())
        return data

    def stats(self) -> dict[tuple[str, str], dict[str, str]]:
        """Locust's CSV stats (written into the run folder with their final state), keyed by (type, name)."""
        with (self.run_dir / "locust_stats.csv").open(newline="") as f:
            return {(row["Type"], row["Name"]): row for row in csv.DictReader(f)}


def write_config(path: Path, **values: Any) -> Path:
    path.write_text(json.dumps(values))
    return path


def run_locust(
    run_dir: Path,
    *args: str,
    locustfiles: str | None = None,
    env: dict[str, str] | None = None,
    run_time: str = RUN_TIME_LIMIT,
    timeout: float = 150,
    web_ui_port: int | None = None,
) -> LocustRun:
    """`locust -f <files> --headless -t <bound> --run-dir run_dir <args>`; the run folder gets the CSV.
    With `web_ui_port`, the web UI on that port instead of `--headless`, the test started by itself and
    Locust quitting a second after it ends (`--autostart --autoquit 1`), as a CI job may run it."""
    files = locustfiles or str(SCENARIOS)
    mode = ["--headless"]
    if web_ui_port is not None:
        mode = ["--autostart", "--autoquit", "1", "--web-host", "127.0.0.1", "--web-port", str(web_ui_port)]
    cmd = [
        LOCUST,
        "-f",
        files,
        *mode,
        "-t",
        run_time,
        "--run-dir",
        str(run_dir),
        "--only-summary",
        *args,
    ]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**clean_environ(), **(env or {})},
        cwd=run_dir,
    )
    return LocustRun(proc.returncode, proc.stdout + proc.stderr, run_dir)


def clean_environ() -> dict[str, str]:
    """This process's environment without the library's and Locust's own settings (`CGPT_*`, `LOCUST_*`),
    so a setting left in the shell cannot change what a test runs."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("CGPT_", "LOCUST_"))}
