"""Helpers for the fault tests: a locustfile whose requests all succeed, a small tmpfs to fill, and a
check that every file of a run folder is complete or absent."""

from __future__ import annotations

import contextlib
import errno
import json
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

LOCUSTFILE = """
import locust_scenarios  # noqa: F401  (installs the library's options and listeners)
from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser


class HealthUser(FastHttpUser):
    wait_time = constant(0.02)

    @task
    def health(self):
        self.client.get("/health")
"""


def write_locustfile(directory: Path) -> Path:
    path = directory / "health_probe.py"
    path.write_text(LOCUSTFILE)
    return path


@contextlib.contextmanager
def small_tmpfs(size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted for the test; skips where mounting is not permitted (not root)."""
    mount_point = Path(tempfile.mkdtemp(prefix="full-disk-"))
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        mount_point.rmdir()
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
        mount_point.rmdir()


def fill(path: Path) -> int:
    """Write `path` until its filesystem is full; returns the bytes written."""
    chunk = b"\0" * 4096
    written = 0
    with path.open("wb", buffering=0) as f:
        while True:
            try:
                written += f.write(chunk) or 0
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                return written


def assert_every_file_complete_or_absent(run_dir: Path) -> None:
    """Each file a reader sees is whole: JSON parses, parquet parts read, CSV rows end, HTML closes."""
    for path in run_dir.rglob("*"):
        if not path.is_file() or path.name.startswith("."):
            continue
        name = path.name
        if name.endswith(".json"):
            json.loads(path.read_text())
        elif name.endswith(".parquet"):
            pq.read_table(path)
        elif name.endswith(".csv"):
            text = path.read_text()
            assert text and text.endswith("\n"), f"{path} is cut: {text[-80:]!r}"
        elif name.endswith(".html"):
            assert path.read_text().rstrip().endswith("</html>"), f"{path} is cut"
