"""Fault injection: rules that add latency, answer a share of requests with 500, stall, or drop streams.

A rule is JSON:

    {"path": "/api/evidence*", "method": "GET", "latency_ms": 200, "error_rate": 0.25,
     "error_status": 500, "stall_ms": 0, "stall_after_tokens": 0, "drop_after_tokens": null}

- `path`: glob on the request path (`fnmatch`; `*` also crosses `/`), required.
- `method`: an HTTP method, `WS` for WebSocket messages, or `*` (default).
- `latency_ms`: sleep this long before handling every matching request.
- `error_rate`: share of matching requests answered `error_status` (default 500) without handling them.
  The share is exact, not random: the n-th matching request fails when floor(n * rate) grows, so 0.25
  fails exactly every 4th request and tests can count.
- `stall_ms`: a long sleep. On plain requests it happens before handling; on chat streams (SSE and
  WebSocket) after `stall_after_tokens` tokens, mid-stream.
- `drop_after_tokens`: chat streams only: after that many tokens the server drops the connection (SSE:
  the response ends without a `done` event; WebSocket: closed with code 1011).

Rules come from the `CGPT_FAULTS` setting and `PUT /admin/faults`; `GET` shows them with counts of the
requests each matched and failed. This module holds no HTTP code: the middleware and the stream
handlers ask it what to do.
"""

from __future__ import annotations

import fnmatch
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


class FaultRuleError(ValueError):
    """A fault rule is invalid; the message names the rule index and the key."""


_KEYS = {
    "path",
    "method",
    "latency_ms",
    "error_rate",
    "error_status",
    "stall_ms",
    "stall_after_tokens",
    "drop_after_tokens",
}


@dataclass
class FaultRule:
    path: str
    method: str = "*"
    latency_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    stall_ms: float = 0.0
    stall_after_tokens: int = 0
    drop_after_tokens: int | None = None
    matched: int = field(default=0, compare=False)
    errors: int = field(default=0, compare=False)

    @classmethod
    def parse(cls, raw: object, index: int) -> FaultRule:
        where = f"faults[{index}]"
        if not isinstance(raw, Mapping):
            raise FaultRuleError(f"{where}: a rule is a JSON object, got {type(raw).__name__}")
        unknown = set(raw) - _KEYS - {"matched", "errors"}
        if unknown:
            raise FaultRuleError(f"{where}: unknown key {sorted(unknown)[0]!r}; known keys: {sorted(_KEYS)}")
        path = raw.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise FaultRuleError(f"{where}.path: required, a glob starting with '/' (e.g. '/api/evidence*')")
        method = raw.get("method", "*")
        if not isinstance(method, str):
            raise FaultRuleError(f"{where}.method: a string like 'GET', 'WS' or '*'")

        def number(key: str, lo: float, hi: float, default: float) -> float:
            value = raw.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
                raise FaultRuleError(f"{where}.{key}: a number between {lo} and {hi}, got {value!r}")
            return float(value)

        drop = raw.get("drop_after_tokens")
        if drop is not None and (isinstance(drop, bool) or not isinstance(drop, int) or drop < 0):
            raise FaultRuleError(f"{where}.drop_after_tokens: a whole number >= 0 or null, got {drop!r}")
        status = raw.get("error_status", 500)
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise FaultRuleError(f"{where}.error_status: an HTTP error status 400-599, got {status!r}")
        return cls(
            path=path,
            method=method.upper(),
            latency_ms=number("latency_ms", 0, 600_000, 0),
            error_rate=number("error_rate", 0, 1, 0),
            error_status=status,
            stall_ms=number("stall_ms", 0, 3_600_000, 0),
            stall_after_tokens=int(number("stall_after_tokens", 0, 1_000_000, 0)),
            drop_after_tokens=drop,
        )

    def applies(self, method: str, path: str) -> bool:
        return (self.method in ("*", method)) and fnmatch.fnmatchcase(path, self.path)

    def public(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Decision:
    """What the matching rules ask of one request (summed over rules)."""

    latency_s: float = 0.0
    error_status: int | None = None
    stall_s: float = 0.0
    stall_after_tokens: int = 0
    drop_after_tokens: int | None = None


class FaultSet:
    """The active rules. Thread-safe: replaced by admin calls while requests read them."""

    def __init__(self, rules: Iterable[object] = ()) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self.replace(list(rules))

    def __bool__(self) -> bool:
        return bool(self._rules)

    def replace(self, raw_rules: list[object]) -> list[FaultRule]:
        parsed = [FaultRule.parse(r, i) for i, r in enumerate(raw_rules)]
        with self._lock:
            self._rules = parsed
        return parsed

    def clear(self) -> None:
        with self._lock:
            self._rules = []

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.public() for r in self._rules]

    def decide(self, method: str, path: str) -> Decision | None:
        """Count the request against every matching rule and say what to do; None when none match."""
        if not self._rules:
            return None
        decision: Decision | None = None
        with self._lock:
            for rule in self._rules:
                if not rule.applies(method, path):
                    continue
                decision = decision or Decision()
                rule.matched += 1
                decision.latency_s += rule.latency_ms / 1000
                if rule.error_rate and math.floor(rule.matched * rule.error_rate) > math.floor(
                    (rule.matched - 1) * rule.error_rate
                ):
                    rule.errors += 1
                    decision.error_status = decision.error_status or rule.error_status
                if rule.stall_ms:
                    decision.stall_s += rule.stall_ms / 1000
                    decision.stall_after_tokens = max(decision.stall_after_tokens, rule.stall_after_tokens)
                if rule.drop_after_tokens is not None:
                    current = decision.drop_after_tokens
                    decision.drop_after_tokens = (
                        rule.drop_after_tokens if current is None else min(current, rule.drop_after_tokens)
                    )
        return decision
