"""The self-contained HTML report: one file, inline CSS and inline SVG charts, no script, no external
asset."""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from html import escape

import numpy as np

from analysis._analyse import Analysis
from analysis._reports import VERDICT_TEXT, report_document, top_failures
from analysis._stats import SOURCE_LABELS, Distribution, entry_label
from analysis._svg import PALETTE, Series, bar_chart, empty_chart, line_chart
from analysis._thresholds import ThresholdResult, format_value
from compliance_loadtest.redact import redact_text
from compliance_loadtest.run_folder import CAPACITY_SVG

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#0f172a;
background:#f1f5f9}
h1{margin:0 0 4px} h2{margin-top:32px;border-bottom:1px solid #cbd5e1;padding-bottom:4px}
.verdict{display:inline-block;padding:4px 12px;border-radius:6px;color:#fff;font-weight:bold}
.pass{background:#16a34a}.fail{background:#dc2626}.invalid{background:#d97706}
table{border-collapse:collapse;background:#fff;margin:8px 0;font-size:13px}
th,td{border:1px solid #e2e8f0;padding:4px 8px;text-align:left} td.n{text-align:right}
tr.s-fail td{background:#fee2e2} tr.s-warn td{background:#fef3c7}
.charts{display:flex;flex-wrap:wrap;gap:12px} .chart{border:1px solid #e2e8f0;border-radius:4px}
.muted{color:#64748b;font-size:13px}
"""


def _cell(v: object, numeric: bool = False) -> str:
    cls = ' class="n"' if numeric else ""
    return f"<td{cls}>{escape(redact_text(str(v)))}</td>"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], row_classes: Sequence[str] = ()) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        f'<tr class="{row_classes[i] if i < len(row_classes) else ""}">{"".join(r)}</tr>'
        for i, r in enumerate(rows)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _entry_name(key: tuple[str, str], width: int) -> str:
    """An entry's label for a chart (its title, `aria-label` and axis), through the one redactor before
    it is cut to `width`: a run written before names were redacted at the source may hold a secret."""
    return redact_text(entry_label(key))[:width]


def _fmt(v: float | None) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:,.1f}"


def distribution_bars(d: Distribution, bins: int = 24) -> tuple[list[str], list[float]]:
    """Counts per log-spaced response-time bin (exact samples or Locust's histogram buckets)."""
    if d.sorted_values is not None and d.count:
        values, weights = d.sorted_values, np.ones(len(d.sorted_values))
    elif d.bucket_values is not None and d.bucket_counts is not None and d.count:
        values, weights = d.bucket_values, d.bucket_counts.astype(np.float64)
    else:
        qs = sorted(d.percentiles.items())
        return [f"p{q * 100:g}" for q, _ in qs], [v for _, v in qs]
    lo, hi = max(float(values.min()), 0.01), max(float(values.max()), 0.02)
    if hi <= lo * 1.0001:
        return [f"{lo:.3g}"], [float(weights.sum())]
    edges = np.geomspace(lo, hi, bins + 1)
    counts, _ = np.histogram(np.clip(values, lo, hi), bins=edges, weights=weights)
    return [f"{e:.3g}" for e in edges[:-1]], counts.tolist()


def charts(a: Analysis, max_entries: int = 12) -> dict[str, list[str]]:
    """The report's charts, by section."""
    out: dict[str, list[str]] = {
        "load": [],
        "latency": [],
        "distribution": [],
        "resources": [],
        "streaming": [],
    }
    tl = a.stats.timeline
    if len(tl):
        xs = tl["timestamp"].tolist()
        load = [
            Series("requests/s", xs, tl["rps"].tolist()),
            Series("failures/s", xs, tl["fail_rps"].tolist()),
        ]
        out["load"].append(line_chart("Requests per second", load, "per second"))
        if "users" in tl and tl["users"].notna().any():
            out["load"].append(line_chart("Users", [Series("users", xs, tl["users"].tolist())], "users"))
        out["latency"].append(
            line_chart(
                "Response time p50 / p95 over time",
                [Series("p50", xs, tl["p50"].tolist()), Series("p95", xs, tl["p95"].tolist())],
                "ms",
            )
        )
    else:
        out["load"].append(empty_chart("Requests per second"))
        out["latency"].append(empty_chart("Response time p50 / p95 over time"))
    e = a.stats.entries
    if len(e):
        top = e[e["measure"] != "tokens_per_s"].sort_values("count", ascending=False).head(max_entries)
        for i, (rt, name) in enumerate(zip(top["request_type"], top["name"], strict=True)):
            key = (str(rt), str(name))
            d = a.stats.response.get(key)
            if d is None:
                continue
            labels, counts = distribution_bars(d)
            ylabel = "requests" if d.kind != "csv" and d.kind != "benchmark" else "ms"
            out["distribution"].append(
                bar_chart(
                    f"{_entry_name(key, 60)} (ms)",
                    labels,
                    counts,
                    ylabel,
                    width=420,
                    height=200,
                    color=PALETTE[i % len(PALETTE)],
                )
            )
    res = a.run.resources
    if res is not None and len(res):
        for column, title, unit in (("rss_mb", "Memory (RSS)", "MB"), ("cpu_percent", "CPU", "%")):
            series = []
            for role in ("target", "load-generator"):
                part = res[res["role"] == role]
                if len(part):
                    sec = np.floor(part["timestamp"].to_numpy(dtype=np.float64))
                    summed = part.assign(_s=sec).groupby("_s")[column].sum()
                    series.append(Series(role, summed.index.tolist(), summed.tolist()))
            out["resources"].append(line_chart(f"{title} per role", series, unit))
    else:
        out["resources"].append(empty_chart("Resource use (no resources.csv)"))
    for table, title in ((a.stats.ttft, "Time to first token"), (a.stats.itl, "Inter-token latency")):
        keys = sorted(table)
        if keys:
            labels = [_entry_name(k, 24) for k in keys]
            out["streaming"].append(
                bar_chart(
                    f"{title}: p50 per entry (ms)",
                    labels,
                    [table[k].quantile(0.5) or 0.0 for k in keys],
                    "ms",
                )
            )
            out["streaming"].append(
                bar_chart(
                    f"{title}: p95 per entry (ms)",
                    labels,
                    [table[k].quantile(0.95) or 0.0 for k in keys],
                    "ms",
                )
            )
    tps = a.stats.tokens_per_s
    if tps:
        keys = sorted(tps)
        vals = [
            float(np.mean(v)) if (v := tps[k].sorted_values) is not None else (tps[k].quantile(0.5) or 0.0)
            for k in keys
        ]
        out["streaming"].append(
            bar_chart("Tokens per second (mean)", [_entry_name(k, 24) for k in keys], vals, "tokens/s")
        )
    if not out["streaming"]:
        out["streaming"].append(empty_chart("AI streaming measures"))
    return out


def _threshold_table(results: Sequence[ThresholdResult]) -> str:
    return _table(
        ["status", "rule", "entry", "value", "limit", "message"],
        [
            [
                _cell(r.status),
                _cell(r.rule.id),
                _cell(r.entry),
                _cell(format_value(r.rule.metric, r.value), True),
                _cell(f"{r.rule.op} {format_value(r.rule.metric, r.rule.value)}"),
                _cell(r.message),
            ]
            for r in results
        ],
        [f"s-{r.status}" for r in results],
    )


def to_html(a: Analysis) -> str:
    doc = report_document(a)
    s = doc["summary"]
    verdict = a.verdict.value
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Load test report: {escape(VERDICT_TEXT[a.verdict])}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Load test report <span class='verdict {verdict}'>{escape(VERDICT_TEXT[a.verdict])}</span></h1>",
        f"<p class='muted'>Run {escape(redact_text(a.run.label))} · "
        f"generated {escape(doc['generated_at'])} · "
        f"percentiles from {escape(SOURCE_LABELS.get(a.stats.percentile_source or '', 'none'))}</p>",
    ]
    summary_rows = [
        [_cell("start"), _cell(s["test_start_time"] or "n/a")],
        [_cell("duration (s)"), _cell(_fmt(s["total_duration"]), True)],
        [_cell("requests"), _cell(f"{s['total_requests']:,}", True)],
        [_cell("failures"), _cell(f"{s['total_failures']:,}", True)],
        [_cell("suites"), _cell(", ".join(s["suites_run"]) or "n/a")],
        [_cell("missing files"), _cell(", ".join(a.run.missing) or "none")],
    ]
    parts.append(_table(["", ""], summary_rows))
    if a.invalid_reasons:
        parts.append("<h2>Invalid run</h2><ul>")
        parts += [f"<li>{escape(redact_text(r))}</li>" for r in a.invalid_reasons]
        parts.append("</ul>")
    ch = charts(a)
    for section, title in (
        ("load", "Load"),
        ("latency", "Response times over time"),
        ("distribution", "Response-time distribution per entry"),
        ("resources", "Resource use"),
        ("streaming", "AI streaming"),
    ):
        parts.append(
            f"<h2>{title}</h2><div class='charts' id='charts-{section}'>{''.join(ch[section])}</div>"
        )
    capacity_chart = a.run.path / CAPACITY_SVG
    if a.run.capacity is not None and capacity_chart.is_file():
        # As an image, not inline: an SVG from a run folder then cannot run script in the report.
        data = base64.b64encode(capacity_chart.read_bytes()).decode("ascii")
        parts.append(
            "<h2>Capacity search</h2><div class='charts' id='charts-capacity'>"
            f"<img alt='capacity search: rates, goodput and corrected latency against the target rate' "
            f"src='data:image/svg+xml;base64,{data}'></div>"
        )
    parts.append("<h2>Thresholds</h2>")
    order = {"fail": 0, "warn": 1, "no-data": 2, "pass": 3}
    idle = [r for r in a.results if r.value is None and r.status != "fail"]
    judged = sorted((r for r in a.results if r not in idle), key=lambda r: order[r.status])
    parts.append(_threshold_table(judged))
    if idle:
        parts.append(f"<details><summary>{len(idle)} rule(s) had nothing to check in this run</summary>")
        parts.append(_threshold_table(idle))
        parts.append("</details>")
    if a.baselines:
        parts.append(
            f"<h2>Baseline comparison</h2><p class='muted'>pooled: {escape(', '.join(a.baselines))}</p>"
        )
        parts.append(
            _table(
                ["status", "entry", "method", "baseline median", "current median", "change", "p", "message"],
                [
                    [
                        _cell(g.status),
                        _cell(g.entry),
                        _cell(g.method),
                        _cell(_fmt(g.baseline_median), True),
                        _cell(_fmt(g.current_median), True),
                        _cell("n/a" if g.relative_change is None else f"{g.relative_change:+.1%}", True),
                        _cell("" if g.p_value is None else f"{g.p_value:.2g}", True),
                        _cell(g.message),
                    ]
                    for g in a.regressions
                ],
                [f"s-{g.status}" for g in a.regressions],
            )
        )
    parts.append("<h2>Detected issues</h2>")
    if a.issues:
        parts.append(
            _table(
                ["severity", "kind", "entry", "message"],
                [
                    [_cell(i.severity), _cell(i.kind), _cell(i.entry or ""), _cell(i.message)]
                    for i in a.issues
                ],
            )
        )
    else:
        parts.append("<p>None.</p>")
    failures = top_failures(a)
    if failures:
        parts.append("<h2>Most frequent failures</h2>")
        parts.append(
            _table(
                ["occurrences", "request", "error"],
                [[_cell(f"{n:,}", True), _cell(entry), _cell(error)] for n, entry, error in failures],
            )
        )
    parts.append("<h2>Entries</h2>")
    rows = []
    for r in doc["results"]["entries"]:
        rows.append(
            [
                _cell(r["request_type"]),
                _cell(r["name"]),
                _cell(r["group"]),
                _cell(f"{r['count']:,}", True),
                _cell(f"{(r['failure_ratio'] or 0):.1%}", True),
                *(_cell(_fmt(r[k]), True) for k in ("mean", "median", "p95", "p99", "max", "rps")),
            ]
        )
    parts.append(
        _table(["type", "name", "group", "count", "fail", "mean", "p50", "p95", "p99", "max", "req/s"], rows)
    )
    parts.append("<h2>Recommendations</h2><ul>")
    parts += [f"<li>{escape(r)}</li>" for r in doc["recommendations"]]
    parts.append("</ul></body></html>")
    return "\n".join(parts) + "\n"
