"""`ApiSession`: Locust's FastHttpSession with one more way to send, for requests checked before they count.

`FastHttpSession.request` reports each request (the `request` event) as soon as the answer is in, or,
with `catch_response=True`, through a context manager that first copies the whole response. `ApiUser.call`
judges an answer before it counts (status, JSON, required fields, the step's own check), so it needs the
report held back until then: `send` does what `request` does for a plain (non-streamed) request and
returns the response with the report it would have fired, unfired. The caller fires it once, with its
verdict. No response copy, no second event, and nothing else of the request path changes: the same
URL, headers, body, timings and fields of the report, and the same client (connection pool, cookies,
redirects, the safety guard that wraps it).

This module mirrors the plain path of `FastHttpSession.request` in Locust 2.47; a test compares what
both report for the same request.
"""

from __future__ import annotations

import json as json_module
import time
from collections.abc import Mapping
from typing import Any

from locust.contrib.fasthttp import FAILURE_EXCEPTIONS, FastHttpSession

__all__ = ["ApiSession"]

ACCEPT_ENCODING = "gzip, deflate, br"
"""What Locust's FastHttpSession asks for when a request names no encoding."""


class ApiSession(FastHttpSession):
    """A FastHttpSession whose `send` returns the response and its unfired report."""

    def send(
        self,
        method: str,
        path: str,
        name: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        context: dict[str, Any],
    ) -> tuple[Any, dict[str, Any]]:
        """Send one request to the base URL + `path`; (the response, the report to fire for it).

        The report holds what `FastHttpSession.request` would fire: request_type, name, context,
        response, exception (a connection error, or the bad status Locust would raise), start_time,
        url, response_length and response_time (to the last byte of the body). `context` is the whole
        context of the report; nothing is merged into it."""
        url = f"{self.base_url}{path}"
        start_time = time.time()
        sent = dict(headers) if headers else {}
        if "Accept-Encoding" not in sent:
            sent["Accept-Encoding"] = ACCEPT_ENCODING
        if self.auth_header and "Authorization" not in sent:
            sent["Authorization"] = self.auth_header  # credentials in the host URL (user:password@host)
        payload = None
        if json is not None:
            payload = json_module.dumps(json)
            sent.setdefault("Content-Type", "application/json")
            sent.setdefault("Accept", "application/json")
        started = time.perf_counter()
        if params is None:  # an explicit params=None still costs the HTTP client a query parse
            response = self._send_request_safe_mode(method, url, payload=payload, headers=sent)
        else:
            response = self._send_request_safe_mode(method, url, payload=payload, headers=sent, params=params)
        report: dict[str, Any] = {
            "request_type": method,
            "name": name,
            "context": context,
            "response": response,
            "exception": None,
            "start_time": start_time,
            "url": url,
            "response_length": 0,
        }
        try:
            content = response.content
        except FAILURE_EXCEPTIONS as exc:  # the body broke off while it was read
            report["exception"] = exc
        else:
            report["response_length"] = len(content) if content else 0
            report["exception"] = getattr(response, "error", None)  # what raise_for_status would raise
        report["response_time"] = (time.perf_counter() - started) * 1000
        return response, report
