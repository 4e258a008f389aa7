"""The safety guard: load goes only to the host under test.

Two checks. Before a run sends anything, the target must be a loopback address unless
`--allow-remote-host` is given (`check_target`). During the run, every connection an HTTP client
opens, redirects included, must go to the target's scheme, host and port: anything else is refused
before a byte is sent and becomes a failed request (`install_guard`).

Not only the library's users: `guard_every_session` (called when the plugin is installed) guards every
HTTP session Locust makes in the process, so a plain `HttpUser` or `FastHttpUser` loaded next to ours
is held to its own host (and to loopback, unless `--allow-remote-host`) as ours are, and
`guard_websockets` does the same for every websocket-client connection, against the run's host.
Clients Locust does not make (urllib, a `requests.Session` of your own, raw sockets) are not guarded.

This module must not import Locust at module level (the test process imports it, and Locust's import
patches a process with gevent), and must never log a URL's query string (tokens travel there for
WebSocket).
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any
from urllib.parse import urlsplit

import requests

from compliance_loadtest.errors import UsageError
from compliance_loadtest.redact import redact_url

__all__ = [
    "OffTargetRequestRefused",
    "RemoteHostNotAllowed",
    "check_target",
    "check_url",
    "guard_every_session",
    "guard_websockets",
    "install_guard",
    "is_loopback",
    "origin",
]

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class RemoteHostNotAllowed(UsageError):
    """The target is not a loopback address and `--allow-remote-host` was not given."""


class OffTargetRequestRefused(ConnectionError):
    """A request (or a redirect) would have gone to a host other than the one under test.

    A `ConnectionError`, so Locust's clients record it as a failed request like any network error.
    """


class _RefusedByRequestsSession(requests.exceptions.ConnectionError, OffTargetRequestRefused):
    """The same, raised inside requests: Locust's `HttpSession` records requests' own errors (and reads
    their `request`), where its `FastHttpSession` takes any error with a `response` for an HTTP answer."""


def is_loopback(hostname: str) -> bool:
    """True for `localhost`, 127.0.0.0/8 and ::1 (brackets allowed)."""
    name = hostname.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an absolute URL, with the scheme's default port filled in.

    `ws`/`wss` count as `http`/`https`: a WebSocket to the target's own port is on target.
    """
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme.lower(), parts.scheme.lower())
    host = (parts.hostname or "").lower()
    port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 0)
    return scheme, host, port


def _printable(url: str) -> str:
    """The URL without credentials, query or fragment, fit for a failure message."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def check_target(host: str | None, *, allow_remote: bool) -> None:
    """Refuse a non-loopback target unless remote hosts are explicitly allowed."""
    if not host:
        return
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RemoteHostNotAllowed(
            f"--host {_printable(host)!r} is not an http(s) URL; give one like http://127.0.0.1:8000"
        )
    if not allow_remote and not is_loopback(parts.hostname):
        raise RemoteHostNotAllowed(
            f"--host {_printable(host)} is not a loopback address; load goes only to 127.0.0.1, ::1 or "
            "localhost unless you pass --allow-remote-host (and are allowed to load that host)"
        )


def check_url(url: str, target: str) -> None:
    """Raise `OffTargetRequestRefused` unless `url` is relative or on the target's origin."""
    if "://" not in url:
        return
    if origin(url) != origin(target):
        raise OffTargetRequestRefused(
            f"refused request to {_printable(url)}: only {_printable(target)} is under test"
        )


def _remote_allowed(environment: Any) -> bool:
    options = getattr(environment, "parsed_options", None)
    return bool(getattr(options, "allow_remote_host", False))


def _refusal(target: str, allow_remote: bool) -> str | None:
    """Why every request to `target` is refused, or None when its own origin may be loaded."""
    host = urlsplit(target).hostname if "://" in target else None
    if not host:
        return (
            f"{redact_url(target)!r} is not the URL of a host under test"
            if target
            else "no host is under test"
        )
    if not allow_remote and not is_loopback(host):
        return f"{_printable(target)} is not a loopback address (pass --allow-remote-host to load it)"
    return None


def install_guard(session: Any, target: str, *, allow_remote: bool | None = None) -> None:
    """Make a Locust HTTP session refuse every connection off the target, redirects included.

    A `FastHttpSession`: wraps its user agent's `_urlopen`, which every request and every followed
    redirect goes through. An `HttpSession` (requests): wraps its `send`, which requests calls for the
    request and again for each redirect. Either way nothing leaves for another host whatever URL or
    redirect a response carries. A target that is not a loopback address is refused outright unless
    `allow_remote` (default: the `--allow-remote-host` of the session's user's run). Guarding a session
    again replaces its target.
    """
    if allow_remote is None:
        allow_remote = _remote_allowed(getattr(getattr(session, "user", None), "environment", None))
    refusal = _refusal(target, allow_remote)
    agent = getattr(session, "client", None)
    if agent is not None and hasattr(agent, "_urlopen"):
        _guard_user_agent(agent, target, refusal)
    elif hasattr(session, "send") and hasattr(session, "get_adapter"):
        _guard_requests_session(session, target, refusal)
    else:
        raise TypeError(f"install_guard: {type(session).__name__} is not a Locust HTTP session")


def _guard_user_agent(agent: Any, target: str, refusal: str | None) -> None:
    send = agent.__dict__.get("_unguarded_urlopen") or agent._urlopen
    agent._unguarded_urlopen = send
    allowed = origin(target)
    parts = urlsplit(target)
    # The common case in one cheap comparison: the very scheme and host:port the target was given with.
    same = (parts.scheme, parts.netloc.rpartition("@")[2])

    def guarded_urlopen(request: Any) -> Any:
        split = request.url_split
        if refusal is not None or (split.scheme, split.netloc) != same:
            # Spelled differently (default port written out, upper case) or truly elsewhere.
            scheme = split.scheme
            port = split.port or DEFAULT_PORTS.get(scheme, 0)
            if refusal is not None or (scheme, (split.host or "").lower(), port) != allowed:
                raise OffTargetRequestRefused(
                    f"refused request to {scheme}://{split.host}:{port}{split.path}: "
                    f"{refusal or f'only {_printable(target)} is under test'}"
                )
        return send(request)

    agent._urlopen = guarded_urlopen


def _guard_requests_session(session: Any, target: str, refusal: str | None) -> None:
    send = session.__dict__.get("_unguarded_send") or session.send
    session._unguarded_send = send

    def guarded_send(request: Any, **kwargs: Any) -> Any:
        url = str(request.url)
        try:
            if refusal is not None:
                raise OffTargetRequestRefused(f"refused request to {_printable(url)}: {refusal}")
            check_url(url, target)
        except OffTargetRequestRefused as exc:
            raise _RefusedByRequestsSession(str(exc)) from None
        return send(request, **kwargs)

    session.send = guarded_send


def guard_every_session() -> None:
    """Guard every HTTP session Locust makes in this process from now on (`install_guard` with the
    session's own host), whoever's user it belongs to; calling it again does nothing."""
    from locust.clients import HttpSession
    from locust.contrib.fasthttp import FastHttpSession

    for cls in (FastHttpSession, HttpSession):
        if not getattr(cls.__init__, "_guards_sessions", False):
            cls.__init__ = _guarding_init(cls.__init__)  # type: ignore[method-assign]


def _guarding_init(init: Any) -> Any:
    @functools.wraps(init)
    def guarded_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        install_guard(self, self.base_url or "")

    guarded_init._guards_sessions = True  # type: ignore[attr-defined]
    return guarded_init


def on_init(environment: Any, **_kwargs: Any) -> None:
    """The run's WebSocket connections keep to its host (`guard_websockets`)."""
    guard_websockets(environment)


def guard_websockets(environment: Any) -> None:
    """Refuse every websocket-client connection of this process (`WebSocket.connect`, which
    `create_connection` and `WebSocketApp` go through) to anything but the run's host, and to a host
    that is not a loopback address unless `--allow-remote-host`. The host is read at each connection,
    so one changed in the web UI counts."""
    import websocket

    cls: Any = websocket.WebSocket
    connect = cls.__dict__.get("_unguarded_connect") or cls.connect
    cls._unguarded_connect = connect

    def guarded_connect(self: Any, url: str, **options: Any) -> Any:
        target = environment.host or ""
        if target:
            check_url(url, target)
        refusal = _refusal(url, _remote_allowed(environment))
        if refusal is not None:
            raise OffTargetRequestRefused(f"refused connection to {_printable(url)}: {refusal}")
        return connect(self, url, **options)

    cls.connect = guarded_connect
