"""The optional rate limiter answers 429 with Retry-After, keyed on the user (not the shared client IP)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.backend.clients import new_user, raw_request
from tests.backend_process import Backend, run_backend


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    with run_backend(tmp_path_factory.mktemp("limited"), settings={"CGPT_RATE_LIMIT": "5/minute"}) as b:
        yield b


def test_each_user_has_their_own_budget_from_one_ip(limited: Backend) -> None:
    # Registration and login are unauthenticated, so they draw on the IP's budget: two users = 4 requests.
    alice, bob = new_user(limited), new_user(limited)
    statuses = [alice.call("GET", "/api/users/me")[0] for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    status, headers, body = raw_request(
        limited, "GET", "/api/users/me", headers={"Authorization": f"Bearer {alice.token}"}
    )
    assert status == 429 and 1 <= int(headers["retry-after"]) <= 60 and b"rate limit" in body
    # Bob, on the same IP, is unaffected by Alice's exhaustion.
    assert [bob.call("GET", "/api/users/me")[0] for _ in range(5)] == [200] * 5
    # Health and readiness probes are never limited.
    assert [limited.request("GET", "/health")[0] for _ in range(10)] == [200] * 10


def test_unauthenticated_requests_fall_back_to_the_client_ip(limited: Backend) -> None:
    # Six failed logins from one IP: at most five pass the limiter (401), then the IP is limited (429).
    statuses = [
        limited.request("POST", "/api/auth/login", {"email": "x@example.com", "password": "p"})[0]
        for _ in range(6)
    ]
    passed = statuses.count(401)
    assert passed <= 5 and statuses == [401] * passed + [429] * (6 - passed)
