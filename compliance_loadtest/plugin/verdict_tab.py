"""The web UI's "Verdict" and "Verdict timeline" tabs, through Locust's own extension points.

Locust's web UI shows a plugin's tables in tabs of their own: `extended_tabs` and `extended_tables` in
the page's template arguments name them, and each `/stats/requests` answer (polled every two seconds)
carries their rows in `extended_stats`. The rows are the live verdict's latest evaluation (`live`).
A small script colours the status cells (FAIL red, PASS green), since Locust's tables show plain text.
`/verdict` answers the same evaluation as JSON, with the values unformatted.
"""

from __future__ import annotations

import json
import time
from typing import Any

from flask import Response, jsonify, request

from compliance_loadtest.plugin.live import Judged, LiveVerdict

TAB = "verdict"
TIMELINE_TAB = "verdict-timeline"

# Single-word keys: Locust's UI camel-cases the keys of what it fetches.
COLUMNS = (
    ("rule", "Rule"),
    ("entry", "Entry"),
    ("limit", "Limit"),
    ("sofar", "Run so far"),
    ("sofarn", "Samples"),
    ("sofarstatus", "Status (run so far)"),
    ("window", "Window"),
    ("windown", "Samples (window)"),
    ("windowstatus", "Status (window)"),
    ("abort", "Stops the run"),
)
TIMELINE_COLUMNS = (
    ("time", "Time (UTC)"),
    ("rule", "Rule"),
    ("entry", "Entry"),
    ("event", "Event"),
    ("value", "Value"),
)

COLOUR_SCRIPT = """<script>
(() => {
  const colours = { FAIL: "#d32f2f", WARN: "#ed6c02", PASS: "#2e7d32" };
  const paint = () => document.querySelectorAll("td").forEach((td) => {
    const colour = colours[td.textContent.trim()];
    td.style.color = colour || "";
    td.style.fontWeight = colour ? "bold" : "";
  });
  new MutationObserver(paint).observe(document.body, { childList: true, subtree: true, characterData: true });
})();
</script>"""


def status_text(status: str) -> str:
    return status.upper() if status in ("pass", "fail", "warn") else status


def verdict_rows(verdict: LiveVerdict) -> list[dict[str, Any]]:
    """The Verdict tab's rows: each rule and entry, over the run so far and over the window."""
    if not verdict.has_rows_source:
        return [
            {"rule": "-", "entry": "a distributed run needs --run-dir: the verdict reads the exact record"}
        ]
    snap = verdict.snapshot
    if snap is None:
        return [{"rule": "-", "entry": "waiting for the first requests"}]
    windows: dict[tuple[str, str], Judged] = {(j.rule, j.entry): j for j in snap.window}
    aborts = {r.id: r.abort.text() for r in verdict.rules if r.abort is not None}
    rows = []
    for j in snap.so_far:
        w = windows.get((j.rule, j.entry))
        rows.append(
            {
                "rule": j.rule,
                "entry": j.entry,
                "limit": j.limit,
                "sofar": j.shown,
                "sofarn": j.samples,
                "sofarstatus": status_text(j.status),
                "window": w.shown if w else "n/a",
                "windown": w.samples if w else 0,
                "windowstatus": status_text(w.status) if w else "no requests",
                "abort": aborts.get(j.rule, ""),
            }
        )
    return rows


def timeline_rows(verdict: LiveVerdict) -> list[dict[str, Any]]:
    return [
        {
            "time": time.strftime("%H:%M:%S", time.gmtime(e.at)),
            "rule": e.rule,
            "entry": e.entry,
            "event": e.what,
            "value": e.shown,
        }
        for e in verdict.timeline
    ]


def snapshot_json(verdict: LiveVerdict) -> dict[str, Any]:
    snap = verdict.snapshot

    def judged(items: tuple[Judged, ...]) -> list[dict[str, Any]]:
        return [
            {"rule": j.rule, "entry": j.entry, "value": j.value, "samples": j.samples, "status": j.status}
            for j in items
        ]

    return {
        "at": snap.at if snap else None,
        "rows": snap.rows if snap else 0,
        "window_s": verdict.window_s,
        "so_far": judged(snap.so_far) if snap else [],
        "window": judged(snap.window) if snap else [],
        "stopped_by": verdict.stopped_by.to_json() if verdict.stopped_by else None,
        "timeline": timeline_rows(verdict),
    }


def add_verdict_tab(web_ui: Any, verdict: LiveVerdict) -> None:
    """Add the tabs to Locust's web UI and feed them from `verdict`."""
    web_ui.template_args["extended_tabs"] = [
        {"title": "Verdict", "key": TAB},
        {"title": "Verdict timeline", "key": TIMELINE_TAB},
    ]
    web_ui.template_args["extended_tables"] = [
        {"key": TAB, "structure": [{"key": k, "title": t} for k, t in COLUMNS]},
        {"key": TIMELINE_TAB, "structure": [{"key": k, "title": t} for k, t in TIMELINE_COLUMNS]},
    ]
    app = web_ui.app

    def extend(response: Response) -> Response:
        if request.path == "/stats/requests" and response.is_json:
            data = response.get_json()
            data["extended_stats"] = [
                {"key": TAB, "data": verdict_rows(verdict)},
                {"key": TIMELINE_TAB, "data": timeline_rows(verdict)},
            ]
            response.set_data(json.dumps(data))
        elif request.path == "/" and response.mimetype == "text/html" and response.status_code == 200:
            html = response.get_data(as_text=True)
            response.set_data(html.replace("</body>", COLOUR_SCRIPT + "</body>", 1))
        return response

    app.after_request(extend)

    def verdict_json() -> Response:
        return jsonify(snapshot_json(verdict))

    app.add_url_rule("/verdict", "compliance_verdict", web_ui.auth_required_if_enabled(verdict_json))
