"""Authentication: missing, malformed, forged and expired tokens answer 401; refresh issues working ones."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.backend.clients import new_user
from tests.backend_process import Backend, run_backend

PROTECTED = [
    ("GET", "/api/users/me"),
    ("GET", "/api/evidence"),
    ("POST", "/api/evidence"),
    ("GET", "/api/evidence/stats"),
    ("GET", "/api/users/dashboard"),
    ("GET", "/api/compliance/status"),
    ("POST", "/api/chat/send"),
    ("POST", "/api/reports/generate"),
    ("GET", "/api/analytics/dashboard"),
]


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """A backend whose access tokens live one second."""
    with run_backend(tmp_path_factory.mktemp("ttl"), settings={"CGPT_TOKEN_TTL_SECONDS": "1"}) as b:
        yield b


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_protected_routes_need_a_valid_access_token(backend: Backend, method: str, path: str) -> None:
    user = new_user(backend)
    head, payload, sig = user.token.split(".")
    forged = f"{head}.{payload}.{sig[:-4]}AAAA"
    for token, why in (
        (None, "Not authenticated"),
        ("garbage", "malformed token"),
        (forged, "bad token signature"),
    ):
        status, body = backend.request(method, path, {}, token=token)
        assert status == 401 and body["detail"] == why, (token, body)


def test_expired_access_token_is_refused_and_refresh_restores_access(short_lived: Backend) -> None:
    user = new_user(short_lived)
    assert user.ok("GET", "/api/users/me")["id"] == user.user_id
    time.sleep(1.2)
    status, body = short_lived.request("GET", "/api/users/me", token=user.token)
    assert (status, body["detail"]) == (401, "token expired")
    status, fresh = short_lived.request("POST", "/api/auth/refresh", {"refresh_token": user.refresh_token})
    assert status == 200
    status, me = short_lived.request("GET", "/api/users/me", token=fresh["access_token"])
    assert status == 200 and me["id"] == user.user_id
