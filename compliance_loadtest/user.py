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

import contextlib
import functools
import itertools
import json
import logging
import os
import random
import re
import secrets
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from gevent import GreenletExit
from locust import FastHttpUser, TaskSet
from locust.contrib.fasthttp import LocustBadStatusCode
from locust.exception import CatchResponseError, StopTest, StopUser
from locust.user.task import DefaultTaskSet
from locust.user.users import LOCUST_STATE_RUNNING  # type: ignore[attr-defined]

from compliance_loadtest.answers import glance_at_answer, parse_answer
from compliance_loadtest.api import Api, api_for, quoted_keys
from compliance_loadtest.plugin.guard import RemoteHostNotAllowed, check_target, install_guard
from compliance_loadtest.redact import REDACTED, redact_text
from compliance_loadtest.session import ApiSession
from compliance_loadtest.steps.base import StepFailed
from compliance_loadtest.workspace import Workspace

if TYPE_CHECKING:
    from faker import Faker

__all__ = ["ApiUser"]

logger = logging.getLogger(__name__)

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

# Process-wide, and no data shared between users: a counter that numbers users for their seeds, and a
# tag on this process's registrations so two runs against one backend never collide on an email.
_user_numbers = itertools.count()
_RUN_TAG = secrets.token_hex(4)


@functools.cache
def _shared_faker() -> tuple[Faker, Any]:
    """One Faker per process, made on first use (each weighs about 36 KB, and importing Faker about
    5 MB), and its generator, whose `random` `ApiUser.fake` points at the asking user's own seeded rng."""
    from faker import Faker

    faker = Faker()
    return faker, faker._factories[0]


def _option(environment: Any, name: str, default: Any) -> Any:
    value = getattr(environment.parsed_options, name, None)
    return default if value is None else value


def tags_text(task: Any) -> str:
    """A task's `@tag`s as the record's `tags` column holds them: sorted, comma-separated."""
    text = getattr(task, "_cgpt_tags", None)
    if text is None:
        text = ",".join(sorted(getattr(task, "locust_tag_set", ())))
        with contextlib.suppress(AttributeError, TypeError):  # a builtin or a bound method: no cache
            task._cgpt_tags = text
    return str(text)


def _execute_tagged(taskset: TaskSet, task: Any) -> None:
    """`TaskSet.execute_task`, first noting the task's tags in the user's request context.

    Installed on every nested TaskSet class of an `ApiUser` (the root's is `_TaggingRoot`), so each
    request carries the tags of the task that made it without a wrapper around each task call."""
    user = taskset.user
    request_context = getattr(user, "request_context", None)
    if request_context is not None:
        request_context["tags"] = tags_text(task)
    if hasattr(task, "__self__") and task.__self__ == taskset:
        task()
    elif hasattr(task, "tasks") and issubclass(task, TaskSet):
        task(taskset).run()
    else:
        task(taskset)


class _TaggingRoot(DefaultTaskSet):
    """Locust's root task set of a user, noting each task's tags before running it."""

    def execute_task(self, task: Any) -> None:
        user: Any = self.user
        user.request_context["tags"] = tags_text(task)
        if hasattr(task, "tasks") and issubclass(task, TaskSet):
            task(user).run()
        else:
            task(user)


def _tag_nested(tasks: Iterable[Any], seen: set[type]) -> None:
    """Give every TaskSet class below `tasks` the tagging `execute_task`; work out every task's tags."""
    for task in tasks:
        tags_text(task)
        if isinstance(task, type) and issubclass(task, TaskSet) and task not in seen:
            seen.add(task)
            if task.execute_task in (TaskSet.execute_task, _execute_tagged):
                task.execute_task = _execute_tagged  # type: ignore[method-assign]
            _tag_nested(task.tasks, seen)


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

    remembered_evidence: ClassVar[int] = 50
    """How many of its organisation's evidence ids a user keeps at hand (`workspace.evidence_ids`)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _tag_nested(cls.tasks, set())

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        if self.client.base_url:
            # `--host http://h:8000/` and `--host http://h:8000` must send the same paths.
            self.client.base_url = self.client.base_url.rstrip("/")
        self.client.__class__ = ApiSession  # Locust's session, plus `send` (see compliance_loadtest.session)
        install_guard(self.client, self.host or "")
        self.api: Api = api_for(environment, self.api_class)
        number = next(_user_numbers)
        seed = _option(environment, "scenario_seed", "") or "0"
        worker = getattr(environment.runner, "worker_index", 0) if environment.runner else 0
        self._rng_seed = f"{seed}|{type(self).__name__}|{worker}|{number}"
        self.workspace = Workspace(evidence_limit=self.remembered_evidence)
        """What this person has at hand: their organisation's recent evidence, conversations, ..."""
        self.request_context: dict[str, Any] = {"user_class": type(self).__name__, "tags": ""}
        """Merged into every request event of this user (the record's `user_class` and `tags`)."""
        self.access_token: str = ""
        self._refresh_token = ""
        self._email = ""
        self._password = ""
        self._headers: dict[str, str] = {}
        self._user_number = number
        self._next_auth_at = 0.0
        self.last_failure = ""
        """The message of this user's last failed request (what `steps.base.required` reports)."""

    def run(self) -> None:  # type: ignore[misc]  # Locust marks it final; the same, with a tagging root
        """Locust's `User.run`, with a root task set that notes each task's tags before running it."""
        self._state = LOCUST_STATE_RUNNING
        root: TaskSet = _TaggingRoot(self)
        self._taskset_instance = root
        try:
            try:
                self.on_start()
            except StepFailed:
                pass  # its failed request is recorded; the user goes on with its tasks
            except Exception as e:
                logger.error("%s\n%s", e, traceback.format_exc())
                if not isinstance(e, StopUser | StopTest):
                    self.environment.events.user_error.fire(
                        user_instance=self, exception=e, tb=e.__traceback__
                    )
                raise
            root.run()
        except (GreenletExit, StopUser, StopTest):
            self.on_stop()

    # --- identity -----------------------------------------------------------------------------

    @functools.cached_property
    def rng(self) -> random.Random:
        """This user's random numbers, seeded from `--scenario-seed`: every choice a step makes. Made on
        first use, from the seed the user was given when it started (a generator's state is 2.5 KB, which
        a user that never draws does not hold)."""
        return random.Random(self._rng_seed)

    @property
    def fake(self) -> Faker:
        """Faker, drawing from this user's `rng` (one Faker per process: it weighs about 36 KB)."""
        faker, generator = _shared_faker()
        generator.random = self.rng
        return faker

    def context(self) -> dict[str, Any]:
        return self.request_context

    @property
    def request_event(self) -> Any:
        """Where this user's measures go: its HTTP client's request event. Steps fire their non-HTTP
        measures (SQL, WebSocket, LLM, report jobs) here too, so a quiet client silences them all."""
        return self.client.request_event

    def log_in_again(self) -> bool:
        """Log in once more with this user's own account (the login benchmark)."""
        return self.login(self._email, self._password)

    def set_tags(self, *tags: str) -> None:
        """Tag the requests that follow (until the next task starts), e.g. in `on_start`."""
        self.request_context["tags"] = ",".join(sorted(tags))

    def auth_headers(self) -> dict[str, str]:
        """The `Authorization` header for the current access token (empty before login)."""
        return self._headers

    def on_start(self) -> None:
        self.set_tags("auth")
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
        return self.sign_up()

    def sign_up(self) -> bool:
        """Register a fresh account (and organisation) and log in as it, from now on."""
        return self.register() and self.login(self._email, self._password)

    @contextlib.contextmanager
    def as_new_account(self) -> Iterator[bool]:
        """Act as a freshly registered account inside the block, as this user's own account after it.

        Yields whether registering and logging in worked (the failed request is in the stats)."""
        saved = (self.access_token, self._refresh_token, self._headers, self._email, self._password)
        saved_workspace = self.workspace
        self.workspace = Workspace(evidence_limit=self.remembered_evidence)
        try:
            yield self.sign_up()
        finally:
            self.workspace.close()
            self.workspace = saved_workspace
            self.access_token, self._refresh_token, self._headers, self._email, self._password = saved

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

    def on_stop(self) -> None:
        """Close what the workspace holds open (a chat socket, a database connection)."""
        self.workspace.close()

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
        read: bool = True,
    ) -> Any | None:
        """Send one request of operation `key` and check it; the parsed JSON, or None on failure.

        `expect` defaults to the key's success status(es) in `Api.EXPECTED_STATUS` (200 otherwise);
        `fields` adds to the key's `Api.REQUIRED_FIELDS`; `check`, given the parsed body, returns a
        failure message for an answer that is well-formed but wrong. A success without a body returns
        `{}`, a non-JSON body its bytes. A 401 refreshes the token once and retries: the refused attempt
        is recorded as `<name> [401]`. A 429 is recorded as `<name> [429]`, a failure of its own kind.
        Each request is reported once, after its checks, with the failure message when one failed.

        `read=False` is for a step that checks an answer without reading it: the body is not parsed
        (parsing is most of what checking costs the load generator), each required field must appear
        in it as a key, and the call returns True instead of the body; a `check` needs `read=True`.
        """
        route = self.api.routes[key]
        path = route.template if route.fixed else route.template.format(**(ids or {}))
        stat = name or route.name
        wanted = route.expected if expect is None else tuple(expect)
        required, required_set, keys = route.required, route.required_set, route.required_keys
        if fields:
            required = (*required, *fields)
            required_set, keys = frozenset(required), quoted_keys(required)
        if not route.open and not self.access_token:
            self.authenticate()
        for attempt in (1, 2):
            client: Any = self.client
            if type(client) is not ApiSession:
                client.__class__ = ApiSession  # a session set by hand (a quiet one, say): same state
            base = self.context()  # a class may wrap it (arrival-rate runs add intended_start)
            resp, meta = client.send(
                method,
                path,
                stat,
                json=json,
                params=params,
                headers=None if route.open else self._headers,
                context={**base, **context} if context else base,
            )
            status = resp.status_code
            result: Any = None
            broken = meta["exception"]
            if status in wanted and (broken is None or isinstance(broken, LocustBadStatusCode)):
                if read or check is not None:
                    result, problem = parse_answer(resp, required, required_set)
                else:
                    result, problem = True, glance_at_answer(resp, required, required_set, keys)
                if problem is None and check is not None:
                    try:
                        problem = check(result)
                    except (KeyError, TypeError, ValueError, IndexError) as exc:
                        problem = f"unexpected answer shape ({type(exc).__name__}: {exc})"
            elif status in wanted:  # the status was what we wanted, but the body broke off
                problem = f"answer broken off ({type(broken).__name__}: {self._scrub(str(broken))})"
            elif status == 401 and not route.open and attempt == 1:
                meta["name"] = f"{stat} [401]"
                if self.refresh_access_token():
                    meta["exception"] = None
                    client.request_event.fire(**meta)
                    continue  # the refused attempt is recorded, and the request sent again
                problem = "401 Unauthorized, and the token could not be refreshed"
            elif status == 429:
                meta["name"] = f"{stat} [429]"
                retry_after = resp.headers.get("retry-after", "?") if resp.headers is not None else "?"
                problem = f"rate limited (429), Retry-After={retry_after}"
            else:
                problem = self._unexpected(resp, wanted, attempt)
            if problem:
                self.last_failure = problem
                meta["exception"] = CatchResponseError(problem)
                client.request_event.fire(**meta)
                return None
            meta["exception"] = None
            client.request_event.fire(**meta)
            return result
        return None

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
                text = text.replace(secret, REDACTED)
        return _UUID.sub("[id]", redact_text(text))
