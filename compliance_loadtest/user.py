"""`ApiUser`: the abstract base every HTTP scenario builds on.

It authenticates (a shared account from `--login-email`/`--login-password`, or a fresh registration per
simulated user), keeps the tokens to itself, sends every request through the API layer with
`self.call(...)`, checks status and required fields, refreshes the token once on a 401, and turns
every deviation into a failed request whose message says what was expected. It also seeds Faker and
`random.Random` per user from `--scenario-seed`, and tags each request's context with the user class
and the tags of the task that made it (the exact record's `user_class` and `tags` columns).

Passwords and tokens live only in instance attributes: never in a stat name, a failure message, a log
line or a context dict.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import random
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from faker import Faker
from locust import FastHttpUser
from locust.exception import StopUser

from compliance_loadtest.api import Api
from compliance_loadtest.plugin.guard import RemoteHostNotAllowed, check_target, install_guard

__all__ = ["ApiUser"]

logger = logging.getLogger(__name__)

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

# Keys whose requests carry no bearer token, and never trigger a token refresh.
OPEN_KEYS = frozenset(
    {"auth.register", "auth.login", "auth.token", "auth.refresh", "ops.health", "ops.ready"}
)

# Process-wide, and no data shared between users: a counter that numbers users for their seeds, and a
# tag on this process's registrations so two runs against one backend never collide on an email.
_user_numbers = itertools.count()
_NO_CONTEXT: Mapping[str, Any] = MappingProxyType({})
_JSON_STARTS = (b"{", b"[")
_RUN_TAG = secrets.token_hex(4)


def api_for(environment: Any, api_class: type[Api]) -> Api:
    """The `Api` for a run: `--api-paths` applied, built once per environment and class."""
    cache: dict[type[Api], Api] = environment.__dict__.setdefault("_cgpt_apis", {})
    api = cache.get(api_class)
    if api is None:
        paths_file = _option(environment, "api_paths", "")
        api = api_class.from_file(paths_file) if paths_file else api_class()
        cache[api_class] = api
    return api


def _option(environment: Any, name: str, default: Any) -> Any:
    value = getattr(environment.parsed_options, name, None)
    return default if value is None else value


def _with_tags(task: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a task so the requests it makes carry its tags in their context."""
    if getattr(task, "_cgpt_tagged", False) or not callable(task) or isinstance(task, type):
        return task
    tags = ",".join(sorted(getattr(task, "locust_tag_set", ())))

    @functools.wraps(task)
    def run(user: Any, *args: Any, **kwargs: Any) -> Any:
        user._task_tags = tags
        return task(user, *args, **kwargs)

    run._cgpt_tagged = True  # type: ignore[attr-defined]
    return run


class ApiUser(FastHttpUser):
    """A simulated user of the compliance SaaS, logged in, talking to the backend through `Api`.

    Subclasses add `@task`s that call `self.call(method, key, ...)`. Everything below can be
    overridden in a subclass (or, where an option exists, from the command line or `locust.conf`).
    """

    abstract = True

    api_class: ClassVar[type[Api]] = Api
    """The API layer. Override with a subclass of `Api` for a backend with other routes."""

    register_users: ClassVar[bool] = True
    """Without `--login-email`, register a fresh account (and organisation) per simulated user."""

    reauth_pause_s: ClassVar[float] = 5.0
    """Pause before authenticating again after a failed login or registration."""

    max_redirects = 5
    """Redirects followed; each one is checked by the safety guard like any other request."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Locust's metaclass has already collected `tasks`; wrap them once, keeping their tags and
        # names so `-T`/`-E` and the class picker see them unchanged.
        wrapped: dict[int, Callable[..., Any]] = {}  # a weight repeats a task: wrap it once
        cls.tasks = [wrapped.setdefault(id(t), _with_tags(t)) for t in cls.tasks]

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        if self.client.base_url:
            # `--host http://h:8000/` and `--host http://h:8000` must send the same paths.
            self.client.base_url = self.client.base_url.rstrip("/")
        install_guard(self.client, self.host or "")
        self.api: Api = api_for(environment, self.api_class)
        number = next(_user_numbers)
        seed = _option(environment, "scenario_seed", "") or "0"
        worker = getattr(environment.runner, "worker_index", 0) if environment.runner else 0
        self.rng: random.Random = random.Random(f"{seed}|{type(self).__name__}|{worker}|{number}")
        self.fake: Faker = Faker()
        self.fake.seed_instance(self.rng.getrandbits(64))
        self.access_token: str = ""
        self._refresh_token = ""
        self._email = ""
        self._password = ""
        self._headers: dict[str, str] = {}
        self._task_tags = ""
        self._user_number = number
        self._next_auth_at = 0.0

    # --- identity -----------------------------------------------------------------------------

    def context(self) -> dict[str, Any]:
        return {"user_class": type(self).__name__, "tags": self._task_tags}

    def auth_headers(self) -> dict[str, str]:
        """The `Authorization` header for the current access token (empty before login)."""
        return self._headers

    def on_start(self) -> None:
        self._task_tags = "auth"
        if not self._target_allowed():
            raise StopUser()
        self.authenticate()

    def _target_allowed(self) -> bool:
        try:
            check_target(self.host, allow_remote=bool(_option(self.environment, "allow_remote_host", False)))
        except RemoteHostNotAllowed as exc:
            logger.error("%s: %s", type(self).__name__, exc)
            return False
        return True

    def authenticate(self) -> bool:
        """Log in with the configured account, or register a fresh one and log in as it.

        After a failure, further attempts wait `reauth_pause_s`, so a wrong password or a backend that
        is down shows as one failed login per pause rather than one per request.
        """
        if time.monotonic() < self._next_auth_at:
            return False
        if self._authenticate():
            return True
        self._next_auth_at = time.monotonic() + self.reauth_pause_s
        return False

    def shared_account(self) -> str:
        """The `--login-email` every user logs in as, or "" when each user registers its own."""
        return str(_option(self.environment, "login_email", "") or os.environ.get("CGPT_LOGIN_EMAIL", ""))

    def _authenticate(self) -> bool:
        email = self.shared_account()
        if email:
            password = _option(self.environment, "login_password", "") or os.environ.get(
                "CGPT_LOGIN_PASSWORD", ""
            )
            return self.login(email, password)
        if not self.register_users:
            return False
        return self.register() and self.login(self._email, self._password)

    def register(self) -> bool:
        """Register a new account and organisation; remember its credentials for `login`."""
        local = f"{self.fake.user_name()}.{_RUN_TAG}.{self._user_number}"
        self._email = f"{local}@loadtest.example.com"
        self._password = secrets.token_urlsafe(18)
        body = self.call(
            "POST", "auth.register", json=self.api.register_payload(self.fake, self._email, self._password)
        )
        return body is not None

    def login(self, email: str, password: str) -> bool:
        self._email, self._password = email, password
        body = self.call("POST", "auth.login", json=self.api.login_payload(email, password))
        if body is None:
            return False
        self._set_tokens(body)
        return True

    def refresh_access_token(self) -> bool:
        """Trade the refresh token for a new access token; log in again if there is none."""
        if not self._refresh_token:
            return self.authenticate()
        body = self.call("POST", "auth.refresh", json={"refresh_token": self._refresh_token})
        if body is None:
            # Forget the tokens: the next request authenticates afresh.
            self.access_token = self._refresh_token = ""
            self._headers = {}
            return False
        self._set_tokens(body)
        return True

    def _set_tokens(self, body: Mapping[str, Any]) -> None:
        self.access_token = str(body["access_token"])
        self._refresh_token = str(body.get("refresh_token") or self._refresh_token)
        self._headers = {"Authorization": f"Bearer {self.access_token}"}

    # --- requests -----------------------------------------------------------------------------

    def call(
        self,
        method: str,
        key: str,
        *,
        ids: Mapping[str, Any] | None = None,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        expect: Iterable[int] | None = None,
        fields: Iterable[str] = (),
        name: str | None = None,
        context: Mapping[str, Any] | None = None,
        check: Callable[[Any], str | None] | None = None,
    ) -> Any | None:
        """Send one request of operation `key` and check it; the parsed JSON, or None on failure.

        `expect` defaults to the key's success status(es) in `Api.EXPECTED_STATUS` (200 otherwise);
        `fields` adds to the key's `Api.REQUIRED_FIELDS`; `check`, given the parsed body, returns a
        failure message for an answer that is well-formed but wrong. A success without a body returns `{}`, a
        non-JSON body its bytes. A 401 refreshes the token once and retries: the refused attempt is
        recorded as `<name> [401]`. A 429 is recorded as `<name> [429]`, a failure of its own kind.
        """
        route = self.api.routes[key]
        path = route.template if route.fixed else route.template.format(**(ids or {}))
        stat = name or route.name
        wanted = route.expected if expect is None else tuple(expect)
        if fields:
            required = (*route.required, *fields)
            required_set = frozenset(required)
        else:
            required, required_set = route.required, route.required_set
        open_key = key in OPEN_KEYS
        if not open_key and not self.access_token:
            self.authenticate()
        ctx = dict(context) if context else _NO_CONTEXT
        for attempt in (1, 2):
            retry = False
            with self.client.request(
                method,
                path,
                name=stat,
                json=json,
                params=params,
                headers=None if open_key else self._headers,
                catch_response=True,
                context=ctx,
            ) as resp:
                status = resp.status_code
                if status in wanted:
                    result = self._parse(resp, required, required_set)
                    if result is None:
                        return None
                    try:
                        problem = check(result) if check is not None else None
                    except (KeyError, TypeError, ValueError, IndexError) as exc:
                        problem = f"unexpected answer shape ({type(exc).__name__}: {exc})"
                    if problem:
                        resp.failure(problem)
                        return None
                    resp.success()
                    return result
                if status == 401 and not open_key and attempt == 1:
                    if self.refresh_access_token():
                        resp.request_meta["name"] = f"{stat} [401]"
                        resp.success()
                        retry = True
                    else:
                        resp.failure("401 Unauthorized, and the token could not be refreshed")
                        return None
                elif status == 429:
                    resp.request_meta["name"] = f"{stat} [429]"
                    retry_after = resp.headers.get("retry-after", "?") if resp.headers is not None else "?"
                    resp.failure(f"rate limited (429), Retry-After={retry_after}")
                    return None
                else:
                    resp.failure(self._unexpected(resp, wanted, attempt))
                    return None
            if not retry:
                return None
        return None

    def _parse(self, resp: Any, required: tuple[str, ...], required_set: frozenset[str]) -> Any | None:
        content = resp.content
        if not content:
            if required:
                resp.failure(f"empty body, expected fields {', '.join(required)}")
                return None
            return {}
        # A JSON API answers an object or a list: its first byte says so without reading headers.
        if content[:1] not in _JSON_STARTS:
            headers = resp.headers
            content_type = headers.get("content-type", "") if headers is not None else ""
            if "json" not in content_type:
                if required:
                    got = content_type or "no content type"
                    resp.failure(f"expected JSON with {', '.join(required)}, got {got}")
                    return None
                return content
        try:
            body = json.loads(content.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError included
            resp.failure("body is not valid JSON")
            return None
        if required and not (type(body) is dict and body.keys() >= required_set):
            missing = Api.missing_fields(body, required)
            if missing:
                resp.failure(f"response lacks {', '.join(missing)}")
                return None
        return body

    def _unexpected(self, resp: Any, wanted: tuple[int, ...], attempt: int) -> str:
        status = resp.status_code
        expected = " or ".join(str(s) for s in wanted)
        if status == 0:
            error = getattr(resp, "error", None)
            return f"no response ({type(error).__name__}: {self._scrub(str(error))})"
        again = " again after refreshing the token" if status == 401 and attempt == 2 else ""
        return f"expected {expected}, got {status}{again}{self._detail(resp)}"

    def _detail(self, resp: Any) -> str:
        """A short, secret-free account of an error body (FastAPI `detail`, without echoed input)."""
        try:
            body = json.loads(resp.content) if resp.content else None
        except ValueError:
            return ""
        detail = body.get("detail") if isinstance(body, dict) else None
        if isinstance(detail, list):
            parts = []
            for item in detail[:3]:
                if isinstance(item, dict):
                    loc = ".".join(str(x) for x in item.get("loc", ()))
                    parts.append(f"{loc}: {item.get('msg', '')}")
            detail = "; ".join(parts)
        if not detail:
            return ""
        return f" ({self._scrub(str(detail))[:200]})"

    def _scrub(self, text: str) -> str:
        """Secrets out, and ids grouped as in stat names, so failure rows stay few and say nothing secret."""
        for secret in (self._password, self.access_token, self._refresh_token):
            if secret:
                text = text.replace(secret, "***")
        return _UUID.sub("[id]", text)
