"""With the rate limiter on, 429 answers are their own stat (`<name> [429]`), told apart from errors."""

from __future__ import annotations

import re
from pathlib import Path

from tests.backend_process import run_backend
from tests.scenarios.locust_run import run_users


def test_rate_limited_answers_are_counted_apart_with_retry_after(tmp_path: Path) -> None:
    with run_backend(tmp_path, settings={"CGPT_RATE_LIMIT": "20/s"}) as backend:
        result = run_users(backend.url, "stress_test:StressTestUser", users=2, seconds=3, wait=None)
    limited = {(m, n): c for (m, n), c in result.rows.items() if n.endswith(" [429]")}
    assert limited, f"no 429 during the run: {result.rows}"
    assert all(requests == failures > 0 for requests, failures in limited.values())
    for error in result.errors:
        if error["name"].endswith(" [429]"):
            assert re.fullmatch(r"rate limited \(429\), Retry-After=\d+", error["error"]), error
        else:
            raise AssertionError(f"a failure other than rate limiting: {error}")
    # The same endpoints also answered normally, under their own names.
    assert any(result.requests(m, n.removesuffix(" [429]")) > 0 for m, n in limited)
    assert result.exceptions == [] and not result.unhandled_greenlet_exception
