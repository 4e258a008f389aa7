"""What every step shares: `StepFailed`, and `required` to turn a failed request into one.

A step makes its requests through `user.call(...)`, which records each request once (a failure with
its message) and returns the parsed answer, or None when the request failed. A step that cannot go
on raises `StepFailed`: Locust ends the task there (it is a `RescheduleTask`), the user waits and
runs its next task, and nothing is logged twice, since the failed request is already in the stats.
So a journey reads straight down, each step using what the one before returned:

    item = evidence.create(user)        # raises StepFailed if the upload failed
    search.must_find(user, item)        # so this runs only for an item that exists
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from locust.exception import RescheduleTask

T = TypeVar("T")
P = ParamSpec("P")


class StepFailed(RescheduleTask):
    """A step could not finish; its failed request is already recorded. Ends the current task.

    Benchmark users turn it into a failed round with the same message."""


def required(user: Any, result: T | None, what: str) -> T:
    """`result`, or raise `StepFailed` naming `what` and why the request failed."""
    if result is None:
        reason = getattr(user, "last_failure", "") or "the request failed"
        raise StepFailed(f"{what}: {reason}")
    return result


def attempt(step: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
    """Run `step`; None instead of `StepFailed`, for steps that do not depend on one another (a
    morning's pages: the dashboard failing does not keep a person from opening the evidence list)."""
    try:
        return step(*args, **kwargs)
    except StepFailed:
        return None
