"""Keep secrets out of reports: values under secret-looking keys, and passwords inside URLs and DSNs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***"

# Keys whose values are secrets. "tokens" (an LLM token count) and "token_type" are not.
_SECRET_KEY = re.compile(
    r"(pass(word|wd|phrase)|^pwd$|secret|(^|[_-])(access|refresh|api|auth|bearer)?[_-]?token$|^token$|api[_-]?key|"
    r"credential|authorization|cookie|private[_-]?key|dsn|database[_-]?url|db[_-]?url)",
    re.IGNORECASE,
)
# scheme://user:password@host -> scheme://user:***@host
_URL_CREDENTIALS = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):([^@\s/]+)@")
# libpq key=value DSNs and query strings: password=..., token=...
_KV_SECRET = re.compile(r"\b(password|passwd|pwd|secret|token|api_key|apikey)=([^\s&;]+)", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def redact_text(text: str) -> str:
    text = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}:{REDACTED}@", text)
    text = _KV_SECRET.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    return _BEARER.sub(lambda m: f"{m.group(1)}{REDACTED}", text)


def redact(value: Any, key: str = "") -> Any:
    """A copy of a JSON-like value with secrets replaced by `***`.

    A DSN-like key (db_url, database_url, dsn) keeps its value with the password removed when it has
    one, so a report still says which database was used; other secret keys lose the value entirely.
    """
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, key) for v in value]
    # Secrets are strings; a number under a key such as "pass" is a count, not a password.
    if key and isinstance(value, str) and value and is_secret_key(key):
        if isinstance(value, str) and re.search(r"(dsn|url)$", key, re.IGNORECASE):
            return redact_text(value)
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    return value
