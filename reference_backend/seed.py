"""Placeholder."""

from typing import Any


class SeedError(Exception):
    pass


def seed_demo(db: Any, settings: Any) -> None:
    return None


def run_seed(*a: Any, **k: Any) -> dict[str, Any]:
    raise SeedError("not yet")
