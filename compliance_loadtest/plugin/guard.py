"""The safety guard: load goes only to the host under test.

Two checks. Before a run sends anything, the target must be a loopback address unless
`--allow-remote-host` is given (`check_target`). During the run, every connection a user's HTTP
client opens, redirects included, must go to the target's scheme, host and port: anything else is
refused before a byte is sent and becomes a failed request (`install_guard`). Other transports
(WebSocket) ask `check_url` before they connect.

This module must not import Locust at module level beyond what the client types need, and must never
log a URL's query string (tokens travel there for WebSocket).
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from compliance_loadtest.errors import UsageError

__all__ = [
    "OffTargetRequestRefused",
    "RemoteHostNotAllowed",
    "check_target",
    "check_url",
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


def install_guard(session: Any, target: str) -> None:
    """Make a `FastHttpSession` refuse every connection off the target, redirects included.

    Wraps the user agent's `_urlopen`, which every request and every followed redirect goes
    through, so nothing leaves for another host whatever URL or redirect a response carries.
    """
    agent = session.client
    send = agent._urlopen
    allowed = origin(target)
    parts = urlsplit(target)
    # The common case in one cheap comparison: the very scheme and host:port the target was given with.
    same = (parts.scheme, parts.netloc)

    def guarded_urlopen(request: Any) -> Any:
        split = request.url_split
        if (split.scheme, split.netloc) != same:
            # Spelled differently (default port written out, upper case) or truly elsewhere.
            scheme = split.scheme
            port = split.port or DEFAULT_PORTS.get(scheme, 0)
            if (scheme, (split.host or "").lower(), port) != allowed:
                raise OffTargetRequestRefused(
                    f"refused request to {scheme}://{split.host}:{port}{split.path}: "
                    f"only {_printable(target)} is under test"
                )
        return send(request)

    agent._urlopen = guarded_urlopen
