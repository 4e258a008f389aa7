"""Registration, login (JSON and OAuth2 form), token refresh, and the caller's own user record.

Tenancy rule: every registration creates a new organisation (named `organization_name`, or after the
user). Nobody joins an existing organisation by naming it, since that would let anyone read a
stranger's data; several users per organisation come from `python -m reference_backend seed`.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field, field_validator

from reference_backend.core import Caller, Principal, json_response, not_found, state, validation_error
from reference_backend.db import new_id, now_iso
from reference_backend.security import TokenError, decode_token, hash_password, issue_tokens, verify_password

router = APIRouter(prefix="/api", tags=["auth"])

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class RegisterIn(BaseModel):
    email: Annotated[str, Field(max_length=254)]
    password: Annotated[str, Field(min_length=8, max_length=256)]
    full_name: Annotated[str, Field(min_length=1, max_length=200)]
    organization_name: Annotated[str | None, Field(max_length=200)] = None

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        if not _EMAIL.match(v):
            raise ValueError("not an email address")
        return v.strip().lower()


class LoginIn(BaseModel):
    email: Annotated[str | None, Field(max_length=254)] = None
    username: Annotated[str | None, Field(max_length=254)] = None
    password: Annotated[str, Field(max_length=256)]


class RefreshIn(BaseModel):
    refresh_token: Annotated[str, Field(max_length=4096)]


def _is_unique_violation(exc: Exception) -> bool:
    if isinstance(exc, sqlite3.IntegrityError):
        return True
    return type(exc).__name__ == "UniqueViolation"


@router.post("/auth/register", status_code=201)
def register(body: RegisterIn, request: Request) -> Any:
    st = state(request)
    db = st.db
    password_hash = hash_password(body.password, st.settings.kdf_cost)
    org_id, user_id, now = new_id(), new_id(), now_iso()
    org_name = body.organization_name or f"{body.full_name}'s organisation"
    try:
        with db.transaction():
            db.execute(
                "INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)", (org_id, org_name, now)
            )
            db.execute(
                "INSERT INTO users (id, organization_id, email, full_name, password_hash, is_active,"
                " created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (user_id, org_id, body.email, body.full_name, password_hash, True, now),
            )
    except Exception as exc:
        if _is_unique_violation(exc):
            raise HTTPException(409, "email already registered") from None
        raise
    return json_response(
        {
            "user_id": user_id,
            "id": user_id,
            "email": body.email,
            "full_name": body.full_name,
            "organization_id": org_id,
            "organization_name": org_name,
            "created_at": now,
        },
        201,
    )


def _login(request: Request, email: str | None, password: str) -> Any:
    st = state(request)
    if not email:
        raise validation_error(["email"], "field required")
    row = st.db.fetchone(
        "SELECT id, organization_id, password_hash, is_active FROM users WHERE email = ?",
        (email.strip().lower(),),
    )
    if row is None or not row["is_active"] or not verify_password(password, row["password_hash"]):
        raise HTTPException(401, "incorrect email or password", headers={"WWW-Authenticate": "Bearer"})
    s = st.settings
    return json_response(
        issue_tokens(
            s.jwt_secret, row["id"], row["organization_id"], s.token_ttl_seconds, s.refresh_ttl_seconds
        )
    )


@router.post("/auth/login")
def login(body: LoginIn, request: Request) -> Any:
    return _login(request, body.email or body.username, body.password)


@router.post("/auth/token")
async def token(request: Request) -> Any:
    """OAuth2 password flow (form fields `username`, `password`), for Swagger's Authorize button."""
    from starlette.concurrency import run_in_threadpool

    form = parse_qs((await request.body()).decode(errors="replace"))
    username = (form.get("username") or [""])[0]
    if "password" not in form:
        raise validation_error(["password"], "field required")
    password = form["password"][0]
    return await run_in_threadpool(_login, request, username, password)


@router.post("/auth/refresh")
def refresh(body: RefreshIn, request: Request) -> Any:
    st = state(request)
    try:
        claims = decode_token(st.settings.jwt_secret, body.refresh_token, "refresh")
    except TokenError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc
    row = st.db.fetchone("SELECT id, organization_id, is_active FROM users WHERE id = ?", (claims["sub"],))
    if row is None or not row["is_active"]:
        raise HTTPException(401, "user no longer exists", headers={"WWW-Authenticate": "Bearer"})
    s = st.settings
    return json_response(
        issue_tokens(
            s.jwt_secret, row["id"], row["organization_id"], s.token_ttl_seconds, s.refresh_ttl_seconds
        )
    )


def _me(request: Request, p: Principal) -> Any:
    row = state(request).db.fetchone(
        "SELECT u.id, u.email, u.full_name, u.organization_id, o.name AS organization_name, u.is_active,"
        " u.created_at FROM users u JOIN organizations o ON o.id = u.organization_id"
        " WHERE u.id = ? AND u.organization_id = ?",
        (p.user_id, p.org_id),
    )
    if row is None:
        raise not_found("user")
    row["is_active"] = bool(row["is_active"])
    return json_response(row)


@router.get("/users/me", tags=["users"])
def me(request: Request, p: Caller) -> Any:
    return _me(request, p)


@router.get("/users/profile", tags=["users"])
def profile(request: Request, p: Caller) -> Any:
    return _me(request, p)
