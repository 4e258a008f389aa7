"""The one redactor: secrets never reach a log, a stat name, a run-folder file or a report, and every one
of them reads `<redacted>` wherever it was.

    redact_text(text)       passwords in URLs and DSNs (`scheme://user:pw@host`); the values of
                            secret-looking query parameters, `key=value` pairs and `"key": "value"`
                            fields (password, token, access_token, api_key, key, secret, signature, sig,
                            session, auth, ...); the values of the headers Authorization,
                            Proxy-Authorization, Cookie and Set-Cookie (an auth scheme such as `Basic` is
                            kept); `Bearer xyz` anywhere
    redact_url(url)         a URL or DSN that still says where it points, without its password
    redact(value, key)      a JSON-like value: values under secret-looking keys, and all of the above
                            in every string
    redact_exception(exc)   an exception whose text (and repr) holds none of the above: a failure
                            Locust's statistics and the exact record show
    is_secret_key(key)      whether a key (a JSON field, a query parameter, a header, an option) names
                            a secret (`tokens`, a count, and `token_type` do not)

Pure (the standard library only): the Locust plugin, the database helpers and the analysis all use it.
Redacting twice changes nothing more than redacting once.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "REDACTED",
    "RedactedError",
    "is_secret_key",
    "redact",
    "redact_exception",
    "redact_text",
    "redact_url",
]

REDACTED = "<redacted>"

# Keys whose values are secrets, matched anywhere in a key ("login_password", "X-Api-Key", "Set-Cookie").
# "tokens" (an LLM token count), "token_type", "author" and "keyword" are not.
_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)|^pwd$|secret|credential|private[_-]?key|api[_-]?key|cookie|authori[sz]ation"
    r"|signature|(^|[_-])(sig|key|auth)$|^auth[_-]?(key|code|token)$|sess(ion)?[_-]?id$|^session$"
    r"|token$|dsn|database[_-]?url|db[_-]?url",
    re.IGNORECASE,
)
# ... except these, which end like one but name a count or a kind.
_NOT_SECRET_KEY = re.compile(
    r"(^|[_-])tokens?[_-]?(type|count)$|^(max|num|total|completion|prompt)[_-]tokens?$"
)
# Secret keys whose value says where something is (a database URL): kept, with the password removed.
_LOCATION_KEY = re.compile(r"(dsn|url)$", re.IGNORECASE)

# scheme://user:password@host -> scheme://user:<redacted>@host (the password may hold '@': up to the last
# '@' before the path).
_URL_PASSWORD = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):([^\s/?#]+)@")
# An opening or closing quote, also escaped as JSON inside a JSON string holds it (`\"`).
_Q = r"""(?:\\*["'])"""
# Where a key starts: not inside a word, or right after an escaped line break or tab (`\nCookie:` in a
# JSON string that holds a request's headers).
_START = r"(?:(?<![a-z0-9])|(?<=\\[nrt]))"
# Authorization: [scheme] credentials, as a header line or a field of a mapping; the scheme is kept.
_AUTHORIZATION = re.compile(
    rf"""(?ix)
    (?P<key>{_START}(?:proxy-)?authori[sz]ation)
    (?P<sep>{_Q}?\s*[:=]\s*{_Q}?)
    (?P<scheme>(?:basic|bearer|digest|token|negotiate|ntlm|hoba|mutual|aws4-hmac-sha256)\s+)?
    (?P<value>[^"'\\\r\n,}}]*[^\s"'\\,}}])
    """
)
# Cookie: and Set-Cookie: carry session secrets under names of the site's choosing: the whole value goes.
_COOKIE = re.compile(
    rf"""(?ix)
    (?P<key>{_START}(?:set-)?cookies?)
    (?P<sep>{_Q}?\s*[:=]\s*{_Q}?)
    (?P<value>[^"'\\\r\n]*[^\s"'\\])
    """
)
# key=value (query strings, forms, libpq DSNs) and key: value / "key": "value" (JSON, headers, messages);
# the key is the secret word itself, at a word's start or after `_` / `-` ("login_password", "x-api-key").
_KV_SECRET = re.compile(
    rf"""(?ix)
    (?P<key>{_START}
        (?:pass(?:word|wd|phrase)|pwd|secret|credentials?|signature|sig|[a-z]*token|api[_-]?key|apikey
          |key|auth(?:[_-]?(?:key|code|token))?|[a-z]*sess(?:ion)?[_-]?id|session)
        (?![a-z0-9]))
    (?P<sep>{_Q}?\s*[:=]\s*)
    (?:(?P<quote>{_Q})(?P<quoted>[^"'\\]*)(?P=quote)|(?P<bare>[^\s&;,'"\\}}]+))
    """
)
_BEARER = re.compile(rf"{_START}(bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
# Every pattern above needs one of these (lower case) in the text. Most text holds none, and looking for
# them costs far less than running the patterns: stat names and URLs pass through here per request.
_TRIGGERS: tuple[str, ...] = (
    "@",
    "auth",
    "cookie",
    "key",
    "token",
    "pass",
    "pwd",
    "secret",
    "credential",
    "sig",
    "sess",
)
_TRIGGERS += ("bearer",)


def is_secret_key(key: str) -> bool:
    """Whether the value under `key` is a secret: password, secret, token, key, api_key, signature, sig,
    session id, auth, authorization, cookie, credential, private_key, dsn / database_url / db_url."""
    return bool(_SECRET_KEY.search(key)) and not _NOT_SECRET_KEY.search(key)


def _kv(match: re.Match[str]) -> str:
    quote = match.group("quote") or ""
    return f"{match.group('key')}{match.group('sep')}{quote}{REDACTED}{quote}"


def _header(match: re.Match[str]) -> str:
    scheme = match.groupdict().get("scheme") or ""
    return f"{match.group('key')}{match.group('sep')}{scheme}{REDACTED}"


def _may_hold_secret(text: str) -> bool:
    low = text.lower()
    for trigger in _TRIGGERS:  # noqa: SIM110  (a plain loop: twice as fast as any() over a generator)
        if trigger in low:
            return True
    return False


def redact_text(text: str) -> str:
    """`text` with every credential-shaped part replaced by `<redacted>`; the rest is kept."""
    if not text or not _may_hold_secret(text):
        return text
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{REDACTED}@", text)
    text = _AUTHORIZATION.sub(_header, text)
    text = _COOKIE.sub(_header, text)
    text = _KV_SECRET.sub(_kv, text)
    return _BEARER.sub(lambda m: f"{m.group(1)}{REDACTED}", text)


def redact_url(url: str) -> str:
    """A URL (`postgresql://app:pw@db/x`) or libpq DSN (`host=db password=pw`) without its password or
    secret parameters, so a message still says which server was meant."""
    return redact_text(url)


def redact(value: Any, key: str = "") -> Any:
    """A copy of a JSON-like value (dicts, lists, tuples, scalars) with secrets replaced by `<redacted>`.

    A string under a secret key is replaced whole, except under a DSN-like key (`dsn`, `database_url`,
    `db_url`), which keeps the URL with its password removed, so a report still says which database was
    used. Other strings lose only their credential-shaped parts. A number under a key such as `pass` is
    a count, not a password, and is kept.
    """
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, key) for v in value]
    if not isinstance(value, str):
        return value
    if key and value and is_secret_key(key):
        return redact_url(value) if _LOCATION_KEY.search(key) else REDACTED
    return redact_text(value)


def redact_exception(exception: Any) -> Any:
    """`exception` itself when neither its text nor its repr (which Locust's failure table shows) holds a
    secret; otherwise an exception of the same class (a subclass, named alike) whose text is the
    original's, redacted, and which keeps no reference to the original. A string is redacted."""
    if isinstance(exception, str):
        return redact_text(exception)
    if not isinstance(exception, BaseException):
        return exception
    text, shown = str(exception), repr(exception)
    clean_text, clean_shown = redact_text(text), redact_text(shown)
    if clean_text == text and clean_shown == shown:
        return exception
    original: type = type(exception)
    for cls in (_stand_in_class(original), _plain_stand_in_class(original)):
        try:
            stand_in: Any = cls.__new__(cls, clean_text)  # no __init__: its arguments are the class's own
        except Exception:
            continue
        stand_in.args = (clean_text,)
        stand_in._redacted_text, stand_in._redacted_repr = clean_text, clean_shown
        return stand_in
    return RuntimeError(clean_text)  # pragma: no cover  (the plain stand-in always builds)


class RedactedError(Exception):
    """Stands in for an exception whose class cannot be subclassed; named like it."""


def _text(self: Any) -> str:
    return str(self.__dict__.get("_redacted_text", ""))


def _repr(self: Any) -> str:
    return str(self.__dict__.get("_redacted_repr", ""))


def _namespace(cls: type) -> dict[str, Any]:
    return {
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__str__": _text,
        "__repr__": _repr,
    }


@functools.cache
def _stand_in_class(cls: type) -> Any:
    try:
        return type(cls.__name__, (cls,), _namespace(cls))
    except TypeError:  # a class that refuses subclasses
        return _plain_stand_in_class(cls)


@functools.cache
def _plain_stand_in_class(cls: type) -> Any:
    return type(cls.__name__, (RedactedError,), _namespace(cls))
