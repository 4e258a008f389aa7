"""What the suite tells its user while it runs: a progress line read from the master's stats history,
and `say`, which prints one line prefixed with the command's name.

Nothing here imports Locust; the history is read as the CSV file Locust writes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from compliance_loadtest.profiles import Profile
from compliance_loadtest.suite.plan import PROG

__all__ = ["PROGRESS_EVERY_S", "Progress", "say"]

PROGRESS_EVERY_S = 5.0


def say(message: str) -> None:
    """One line for the suite's user, on stdout, at once (the suite's output is often a pipe)."""
    print(f"{PROG}: {message}", flush=True)


@dataclass
class Progress:
    """One line of progress from the master's `locust_stats_history.csv`.

    Locust appends an `Aggregated` row every second and flushes the file every five; the load's start
    is the timestamp of the first row with users, so stage and time left do not lag by a flush.
    """

    history: Path
    load_seconds: float | None
    profile: Profile | None = None
    load_started: float | None = None
    """Epoch seconds of the first history row with users or requests."""
    last_line_at: float = 0.0

    def rows(self) -> list[dict[str, str]]:
        try:
            text = self.history.read_text(encoding="utf-8")
        except OSError:
            return []
        complete = "".join(ln for ln in text.splitlines(keepends=True) if ln.endswith("\n"))
        try:
            return [r for r in csv.DictReader(io.StringIO(complete)) if r.get("Name") == "Aggregated"]
        except csv.Error:
            return []

    @staticmethod
    def _number(row: Mapping[str, str], column: str) -> float:
        try:
            return float(row.get(column) or 0)
        except ValueError:
            return 0.0

    def _running(self, row: Mapping[str, str]) -> bool:
        return self._number(row, "User Count") > 0 or self._number(row, "Total Request Count") > 0

    def load_ever_ran(self) -> bool:
        """Whether the history shows users or requests at any time (read once the master has ended)."""
        return any(self._running(r) for r in self.rows())

    def line(self, now: float) -> str | None:
        """A progress line for epoch time `now`, at most one every PROGRESS_EVERY_S seconds."""
        if now - self.last_line_at < PROGRESS_EVERY_S:
            return None
        self.last_line_at = now
        rows = self.rows()
        if self.load_started is None:
            first = next((r for r in rows if self._running(r)), None)
            if first is not None:
                self.load_started = self._number(first, "Timestamp") or now
        if not rows or self.load_started is None:
            return "[starting] waiting for the workers and the first statistics"
        row = rows[-1]
        users = int(self._number(row, "User Count"))
        total = int(self._number(row, "Total Request Count"))
        failed = int(self._number(row, "Total Failure Count"))
        elapsed = now - self.load_started
        stage = "load"
        if self.profile is not None and (at := self.profile.stage_at(elapsed)) is not None:
            stage = f"{self.profile.name} stage {at.stage.number}/{len(self.profile.stages)}"
        share = f"{100.0 * failed / total:.1f}%" if total else "0%"
        text = (
            f"[{stage}] users {users}, {self._number(row, 'Requests/s'):.1f} req/s, {total} requests, "
            f"{failed} failures ({share})"
        )
        if self.load_seconds is not None:
            text += f", ~{max(0, int(self.load_seconds - elapsed))}s left"
        return text
