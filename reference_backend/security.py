"""Password hashing (scrypt, stdlib) and HS256 JSON Web Tokens (RFC 7519, the subset the service uses).

A hand-written HS256 is 40 lines of stdlib (hmac + base64 + json) and keeps the backend free of a JWT
dependency; it accepts only `alg: HS256` tokens it signed itself and checks `exp` and `typ`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from typing import Any


class TokenError(ValueError):
    """A token is malformed, badly signed, expired or of the wrong type (message safe to return)."""


def hash_password(password: str, cost: int) -> str:
    salt = os.urandom(16)
    n, r, p = 1 << cost, 8, 1
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32)
    return f"scrypt${cost}${r}${p}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        algo, cost, r, p, salt, digest = stored.split("$")
        if algo != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(),
            salt=bytes.fromhex(salt),
            n=1 << int(cost),
            r=int(r),
            p=int(p),
            maxmem=256 * 1024 * 1024,
            dklen=len(digest) // 2,
        )
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_HEADER = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())


def encode_token(secret: str, claims: dict[str, Any]) -> str:
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{_HEADER}.{payload}".encode()
    sig = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{_HEADER}.{payload}.{_b64(sig)}"


def decode_token(secret: str, token: str, expected_type: str) -> dict[str, Any]:
    """The claims of a valid, unexpired token of `expected_type` ("access" or "refresh")."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("malformed token")
    header, payload, sig = parts
    try:
        if json.loads(_unb64(header)).get("alg") != "HS256":
            raise TokenError("unsupported token algorithm")
        expected = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(sig)):
            raise TokenError("bad token signature")
        claims: dict[str, Any] = json.loads(_unb64(payload))
    except (ValueError, AttributeError) as exc:
        if isinstance(exc, TokenError):
            raise
        raise TokenError("malformed token") from exc
    if claims.get("typ") != expected_type:
        raise TokenError(
            f"not an {expected_type} token" if expected_type == "access" else "not a refresh token"
        )
    if float(claims.get("exp", 0)) < time.time():
        raise TokenError("token expired")
    return claims


def issue_tokens(
    secret: str, user_id: str, org_id: str, access_ttl: float, refresh_ttl: float
) -> dict[str, Any]:
    """The login / refresh answer: an access and a refresh token for the user."""
    now = time.time()
    base = {"sub": user_id, "org": org_id, "iat": int(now)}
    access = encode_token(secret, {**base, "typ": "access", "exp": now + access_ttl, "jti": uuid.uuid4().hex})
    refresh = encode_token(
        secret, {**base, "typ": "refresh", "exp": now + refresh_ttl, "jti": uuid.uuid4().hex}
    )
    return {
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "bearer",
        "expires_in": int(access_ttl) if access_ttl >= 1 else access_ttl,
    }
