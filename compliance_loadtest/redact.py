"""The one redactor: secrets never reach a log, a run-folder file or a report, and every one of them
reads `<redacted>` wherever it was.

    redact_text(text)       passwords in URLs and DSNs (`scheme://user:pw@host`), `key=value` and
                            `"key": "value"` secrets (password, token, access_token, api_key, secret, ...),
                            `Bearer xyz`
    redact_url(url)         a URL or DSN that still says where it points, without its password
    redact(value, key)      a JSON-like value: values under secret-looking keys, and all of the above
                            in every string
    is_secret_key(key)      whether a key names a secret (`tokens`, a count, and `token_type` do not)

Pure (the standard library only): the Locust plugin, the database helpers and the analysis all use it.
Redacting twice changes nothing more than redacting once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "is_secret_key", "redact", "redact_text", "redact_url"]

REDACTED = "<redacted>"

# Keys whose values are secrets. "tokens" (an LLM token count) and "token_type" are not.
_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)|^pwd$|secret|(^|[_-])(access|refresh|id|api|auth|bearer|session)?[_-]?token$"
    r"|^token$|api[_-]?key|credential|authorization|cookie|private[_-]?key|dsn|database[_-]?url|db[_-]?url",
    re.IGNORECASE,
)
# Secret keys whose value says where something is (a database URL): kept, with the password removed.
_LOCATION_KEY = re.compile(r"(dsn|url)$", re.IGNORECASE)

# scheme://user:password@host -> scheme://user:<redacted>@host (the password may hold '@': up to the last
# '@' before the path).
_URL_PASSWORD = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):([^\s/?#]+)@")
# key=value (query strings, libpq DSNs) and key: value / "key": "value" (JSON, headers, messages).
_KV_SECRET = re.compile(
    r"""(?ix)
    (?P<key>\b(?:[a-z0-9]+[_-])*(?:password|passwd|pwd|passphrase|secret|token|api[_-]?key|apikey))
    (?P<sep>["']?\s*[:=]\s*)
    (?:(?P<quote>["'])(?P<quoted>[^"']*)(?P=quote)|(?P<bare>[^\s&;,'"}]+))
    """
)
_BEARER = re.compile(r"\b(bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    """Whether the value under `key` is a secret: password, secret, token, api_key, authorization,
    cookie, credential, private_key, dsn / database_url / db_url."""
    return bool(_SECRET_KEY.search(key))


def _kv(match: re.Match[str]) -> str:
    quote = match.group("quote") or ""
    return f"{match.group('key')}{match.group('sep')}{quote}{REDACTED}{quote}"


def redact_text(text: str) -> str:
    """`text` with every credential-shaped part replaced by `<redacted>`; the rest is kept."""
    if not text:
        return text
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{REDACTED}@", text)
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
