"""Placeholder."""

from typing import Any


class ReportRunner:
    def __init__(self, st: Any) -> None:
        self.st = st

    async def shutdown(self) -> None:
        return None
