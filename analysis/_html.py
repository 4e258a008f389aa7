"""The self-contained HTML report: one file, inline CSS and inline SVG charts, no script, no external
asset.

Its first screen answers what a reader opens it for: the verdict, the rules that decided it (entry,
figure, limit, how many requests it stands on) and the shape of the run (load and response times over
time). Everything below is the detail: per-entry percentiles over time, response time against load,
errors by kind, distributions, resources, AI streaming, the baseline comparison and every table.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

import numpy as np

from analysis._analyse import Analysis
from analysis._reports import (
    VERDICT_TEXT,
    attention,
    baseline_percentiles,
    change_text,
    counts_text,
    entries_in_report_order,
    figure,
    is_idle,
    limit_text,
    report_document,
    sample_count,
    top_failures,
)
from analysis._stats import SOURCE_LABELS, Distribution, EntryKey, entry_label
from analysis._svg import PALETTE, Series, bar_chart, empty_chart, line_chart, scatter_chart
from analysis._thresholds import ThresholdResult
from analysis._timeseries import Timeline, entry_percentiles, stream_percentiles, timeline
from compliance_loadtest.redact import redact_text
from compliance_loadtest.run_folder import CAPACITY_SVG

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:14px 24px;color:#0f172a;
background:#f1f5f9;font-size:14px}
h1{margin:0;font-size:22px;display:flex;align-items:center;gap:12px}
h2{margin-top:28px;border-bottom:1px solid #cbd5e1;padding-bottom:4px;font-size:19px}
.verdict{display:inline-block;padding:2px 12px;border-radius:6px;color:#fff;font-weight:bold}
.pass{background:#16a34a}.fail{background:#dc2626}.invalid{background:#d97706}
.headline{margin:6px 0 8px;font-size:15px}
#why{background:#fff;border:1px solid #e2e8f0;border-left:6px solid #64748b;border-radius:4px;
padding:6px 12px;margin-bottom:10px}
#why.fail{border-left-color:#dc2626}#why.pass{border-left-color:#16a34a}#why.invalid{border-left-color:#d97706}
#why h2{margin:2px 0 4px;border:0;font-size:15px;padding:0}
#why table{margin:4px 0}#why ul{margin:4px 0;padding-left:20px}
table{border-collapse:collapse;background:#fff;margin:8px 0;font-size:13px}
th,td{border:1px solid #e2e8f0;padding:3px 8px;text-align:left} td.n{text-align:right}
tr.s-fail td{background:#fee2e2} tr.s-warn td{background:#fef3c7}
.charts{display:flex;flex-wrap:wrap;gap:12px} .chart{border:1px solid #e2e8f0;border-radius:4px}
.muted{color:#64748b;font-size:13px}
"""

SECTIONS: tuple[str, ...] = ("overview", "load", "latency", "entries", "vsload", "errors")
SECTIONS += ("distribution", "resources", "streaming")
WHY_ROWS = 8
OVERVIEW_WIDTH = 640
SMALL_WIDTH = 420
ENTRY_CHARTS = 9


def _cell(v: object, numeric: bool = False) -> str:
    cls = ' class="n"' if numeric else ""
    return f"<td{cls}>{escape(redact_text(str(v)))}</td>"


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], row_classes: Sequence[str] = (), table_id: str = ""
) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        f'<tr class="{row_classes[i] if i < len(row_classes) else ""}">{"".join(r)}</tr>'
        for i, r in enumerate(rows)
    )
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


CAPACITY_HEADERS = ("step", "target /s", "achieved /s", "verdict", "goodput", "goodput per journey step")


def _capacity_steps(steps: Sequence[Mapping[str, Any]]) -> str:
    """The capacity search's steps: rates, verdict, and which journey step lost the iterations."""

    def rate(v: object) -> str:
        return f"{v:,.2f}" if isinstance(v, int | float) else "n/a"

    def share(v: object) -> str:
        return f"{v:.1%}" if isinstance(v, int | float) else "n/a"

    rows = []
    for step in steps:
        per_step = step.get("step_goodput")
        journey = (
            ", ".join(f"{name} {share(v)}" for name, v in per_step.items())
            if isinstance(per_step, dict)
            else ""
        )
        rows.append(
            [
                _cell(step.get("step", ""), numeric=True),
                _cell(rate(step.get("target_rate")), numeric=True),
                _cell(rate(step.get("achieved_rate")), numeric=True),
                _cell(step.get("verdict", "")),
                _cell(share(step.get("goodput")), numeric=True),
                _cell(journey or "n/a"),
            ]
        )
    return _table(CAPACITY_HEADERS, rows, table_id="capacity-steps")


def _entry_name(key: EntryKey, width: int) -> str:
    """An entry's label for a chart (its title, `aria-label` and axis), through the one redactor before
    it is cut to `width`: a run written before names were redacted at the source may hold a secret."""
    return redact_text(entry_label(key))[:width]


def _fmt(v: float | None) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:,.1f}"


def distribution_bars(d: Distribution, bins: int = 24) -> tuple[list[str], list[float]]:
    """Counts per log-spaced bin (exact samples or Locust's histogram buckets)."""
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


def _percentile_series(
    xs: Sequence[float], pct: Mapping[str, np.ndarray], names: Sequence[str]
) -> list[Series]:
    colors = {"p50": PALETTE[0], "p95": PALETTE[3], "p99": PALETTE[1], "max": PALETTE[7]}
    return [
        Series(name, xs, pct[name].tolist(), colors.get(name), dashed=name == "max")
        for name in names
        if name in pct
    ]


def _load_chart(tl: Timeline, title: str, width: int, height: int, css_class: str = "chart") -> str:
    xs = tl.seconds.tolist()
    right = [Series("users", xs, tl.users.tolist(), PALETTE[7], dashed=True)] if tl.users is not None else []
    return line_chart(
        title,
        [
            Series("requests/s", xs, tl.rps.tolist(), PALETTE[0]),
            Series("failed requests/s", xs, tl.fail_rps.tolist(), PALETTE[1]),
        ],
        "requests per second",
        width=width,
        height=height,
        right=right,
        right_label="users",
        css_class=css_class,
        x_range=_span(tl),
        x_label=_x_label(tl),
    )


def _span(tl: Timeline | None) -> tuple[float, float] | None:
    """The x range of every chart over time: the run's whole span, so all end where the run ended."""
    return None if tl is None or not len(tl) else (0.0, float(tl.seconds[-1] + tl.width))


def _history_note(tl: Timeline) -> str:
    """Without the exact record the percentiles over time are Locust's history CSV's: cumulative since
    the start unless the run used --csv-full-history, so the title says so."""
    return ", cumulative (Locust's history)" if tl.source == "history" else ""


def _x_label(tl: Timeline) -> str:
    return "seconds since the run's start" + (f" ({tl.width:g} s bins)" if tl.width > 1 else "")


def overview(tl: Timeline | None) -> list[str]:
    """The two charts of the first screen: load and response times over the whole run."""
    if tl is None or not len(tl):
        return [empty_chart("Load over time", OVERVIEW_WIDTH), empty_chart("Response times over time")]
    xs = tl.seconds.tolist()
    return [
        _load_chart(tl, "Load: requests/s, failures/s and users", OVERVIEW_WIDTH, 230),
        line_chart(
            "Response time of all requests: p50 / p95 / p99 (ms)" + _history_note(tl),
            _percentile_series(xs, tl.percentiles, ("p50", "p95", "p99")),
            "ms",
            width=OVERVIEW_WIDTH,
            height=230,
            x_label=_x_label(tl),
            x_range=_span(tl),
        ),
    ]


def _entry_charts(a: Analysis, tl: Timeline | None) -> list[str]:
    """p50/p95/p99/max over time of the entries the rules name, then the busiest others."""
    first, rest = entries_in_report_order(a)
    measures = dict(zip(a.stats.key_list(), a.stats.entries["measure"], strict=True))
    named = [k for k in first if measures.get(k) != "tokens_per_s"]
    others = [k for k in rest if measures.get(k) != "tokens_per_s"]
    out = []
    for key in [*named, *others][:ENTRY_CHARTS]:
        pct = entry_percentiles(a.stats, tl, key) if tl is not None else None
        if pct is None:
            continue
        n = len(next(iter(pct.values())))
        xs = (np.arange(n, dtype=np.float64) * (tl.width if tl is not None else 1.0)).tolist()
        mark = "• " if key in named else ""
        out.append(
            line_chart(
                f"{mark}{_entry_name(key, 48)} (ms)",
                _percentile_series(xs, pct, ("p50", "p95", "p99", "max")),
                "ms",
                width=SMALL_WIDTH,
                height=210,
                x_range=_span(tl),
            )
        )
    return out


def charts(a: Analysis, max_entries: int = 12) -> dict[str, list[str]]:
    """The report's charts, by section."""
    out: dict[str, list[str]] = {k: [] for k in SECTIONS}
    tl = timeline(a.run, a.stats)
    out["overview"] = overview(tl)
    if tl is not None and len(tl):
        xs = tl.seconds.tolist()
        out["load"].append(_load_chart(tl, "Requests/s, failed requests/s and users", 1000, 260))
        out["latency"].append(
            line_chart(
                "Response time of all requests: p50 / p95 / p99 / max (ms)" + _history_note(tl),
                _percentile_series(xs, tl.percentiles, ("p50", "p95", "p99", "max")),
                "ms",
                width=1000,
                height=260,
                x_label=_x_label(tl),
                x_range=_span(tl),
            )
        )
        busy = tl.rps > 0
        p95 = tl.percentiles.get("p95")
        p50 = tl.percentiles.get("p50")
        if p95 is not None and p50 is not None:
            if tl.users is not None:
                out["vsload"].append(
                    scatter_chart(
                        "Response time against users",
                        [
                            Series("p50 ms", tl.users[busy].tolist(), p50[busy].tolist(), PALETTE[0]),
                            Series("p95 ms", tl.users[busy].tolist(), p95[busy].tolist(), PALETTE[3]),
                        ],
                        "users (one point per second of the run)",
                        "ms",
                        width=520,
                    )
                )
            out["vsload"].append(
                scatter_chart(
                    "Response time against achieved requests/s",
                    [
                        Series("p50 ms", tl.rps[busy].tolist(), p50[busy].tolist(), PALETTE[0]),
                        Series("p95 ms", tl.rps[busy].tolist(), p95[busy].tolist(), PALETTE[3]),
                    ],
                    "requests per second (one point per second of the run)",
                    "ms",
                    width=520,
                )
            )
        if tl.errors:
            out["errors"].append(
                line_chart(
                    "Failed requests per second, by kind of error",
                    [Series(kind, xs, v.tolist()) for kind, v in tl.errors.items()],
                    "failed requests per second",
                    width=1000,
                    height=260,
                    x_range=_span(tl),
                    x_label=_x_label(tl),
                )
            )
    else:
        out["load"].append(empty_chart("Requests per second"))
        out["latency"].append(empty_chart("Response times over time"))
    out["entries"] = _entry_charts(a, tl)
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
                    f"{_entry_name(key, 60)}",
                    labels,
                    counts,
                    ylabel,
                    width=SMALL_WIDTH,
                    height=200,
                    color=PALETTE[i % len(PALETTE)],
                    x_label="response time, ms (log-spaced bins)" if ylabel == "requests" else "",
                )
            )
    res = a.run.resources
    if res is not None and len(res):
        start = float(res["timestamp"].min())
        for column, title, unit in (
            ("rss_mb", "Memory (RSS, MB) per role", "MB"),
            ("cpu_percent", "CPU (% of one core) per role", "% of one core"),
        ):
            series = []
            for role in ("target", "load-generator"):
                part = res[res["role"] == role]
                if len(part):
                    sec = np.floor(part["timestamp"].to_numpy(dtype=np.float64) - start)
                    summed = part.assign(_s=sec).groupby("_s")[column].sum()
                    series.append(Series(role, summed.index.tolist(), summed.tolist()))
            out["resources"].append(line_chart(title, series, unit))
    else:
        out["resources"].append(empty_chart("Resource use (no resources.csv)"))
    out["streaming"] = _streaming_charts(a, tl)
    return out


def _streaming_charts(a: Analysis, tl: Timeline | None) -> list[str]:
    out = []
    over_time = stream_percentiles(a.stats, tl) if tl is not None else {}
    for quantity, table, title in (
        ("ttft", a.stats.ttft, "Time to first token"),
        ("itl", a.stats.itl, "Inter-token latency"),
    ):
        for i, key in enumerate(sorted(table)[:3]):
            labels, counts = distribution_bars(table[key])
            out.append(
                bar_chart(
                    f"{title}: {_entry_name(key, 40)}",
                    labels,
                    counts,
                    "replies",
                    width=SMALL_WIDTH,
                    height=200,
                    color=PALETTE[(i + 4) % len(PALETTE)],
                    x_label=f"{title.lower()}, ms (log-spaced bins)",
                )
            )
        pct = over_time.get(quantity)
        if pct is None and table and tl is not None:
            # Streams recorded as LLM entries of their own: their percentiles over time.
            pct = entry_percentiles(a.stats, tl, sorted(table)[0])
        if pct is not None:
            n = len(next(iter(pct.values())))
            width = tl.width if tl is not None else 1.0
            xs = (np.arange(n, dtype=np.float64) * width).tolist()
            out.append(
                line_chart(
                    f"{title} over time: p50 / p95 (ms)",
                    _percentile_series(xs, pct, ("p50", "p95")),
                    "ms",
                    width=SMALL_WIDTH,
                    height=200,
                    x_range=_span(tl),
                )
            )
    tps = a.stats.tokens_per_s
    if tps:
        keys = sorted(tps)
        vals = [
            float(np.mean(v)) if (v := tps[k].sorted_values) is not None else (tps[k].quantile(0.5) or 0.0)
            for k in keys
        ]
        out.append(
            bar_chart(
                "Tokens per second (mean per reply)",
                [_entry_name(k, 24) for k in keys],
                vals,
                "tokens/s",
                width=SMALL_WIDTH,
                height=200,
            )
        )
    if not out:
        out.append(empty_chart("AI streaming measures"))
    return out


def _threshold_rows(a: Analysis, results: Sequence[ThresholdResult], note: bool = True) -> list[list[str]]:
    return [
        [
            _cell(r.status),
            _cell(r.rule.id),
            _cell(r.entry),
            _cell(figure(r.rule.metric, r.value, r.entry), True),
            _cell(limit_text(r)),
            _cell(sample_count(a, r), True),
            _cell(r.rule.description or r.message if note else r.message),
        ]
        for r in results
    ]


THRESHOLD_HEADERS = ["status", "rule", "entry", "value", "limit", "measured on", "what it checks"]


def why(a: Analysis) -> str:
    """The verdict's reasons: invalid-run causes, failed and warning rules, regressions, issues."""
    verdict = a.verdict.value
    parts = [f"<section id='why' class='{verdict}'>"]
    if a.invalid_reasons:
        parts.append("<h2>Why the run is invalid</h2><ul>")
        parts += [f"<li>{escape(redact_text(r))}</li>" for r in a.invalid_reasons]
        parts.append("</ul>")
    bad = attention(a)
    regressed = [g for g in a.regressions if g.status == "fail"]
    if bad:
        failed = sum(1 for r in bad if r.status == "fail")
        warned = len(bad) - failed
        title = (
            f"Why: {failed} rule result{'s' if failed != 1 else ''} failed"
            if failed
            else f"Why: no rule failed; {warned} warning{'s' if warned != 1 else ''} to look at"
        )
        parts.append(f"<h2>{escape(title)}</h2>")
        shown = bad[:WHY_ROWS]
        parts.append(
            _table(
                THRESHOLD_HEADERS,
                _threshold_rows(a, shown),
                [f"s-{r.status}" for r in shown],
                table_id="why-rules",
            )
        )
        if len(bad) > WHY_ROWS:
            parts.append(f"<p class='muted'>… and {len(bad) - WHY_ROWS} more under Thresholds below.</p>")
    elif not a.invalid_reasons:
        held = sum(1 for r in a.results if r.status == "pass")
        parts.append(f"<h2>Why: all {held} rules with something to check held</h2>")
    if regressed:
        parts.append("<ul>")
        parts += [
            f"<li><b>slower than the baseline</b>: {escape(redact_text(g.entry))}: "
            f"{escape(redact_text(g.message))}</li>"
            for g in regressed[:4]
        ]
        parts.append("</ul>")
    serious = [i for i in a.issues if i.kind != "invalid-run" and i.kind != "regression"]
    if serious:
        shown_issues = serious[:3]
        more = f" (and {len(serious) - 3} more under Detected issues)" if len(serious) > 3 else ""
        text = "; ".join(f"{(i.entry + ': ') if i.entry else ''}{i.message}" for i in shown_issues)
        parts.append(f"<p class='muted'>Issues{escape(more)}: {escape(redact_text(text))}.</p>")
    parts.append("</section>")
    return "".join(parts)


def headline(a: Analysis, duration: float | None) -> str:
    s = a.stats
    doc_duration = duration or a.stats.duration_s
    failed = (
        f"{s.total_failures:,} requests failed ({s.total_failures / s.total_count:.2%} of all requests)"
        if s.total_count
        else "no requests"
    )
    users = ""
    h = a.run.history
    if h is not None and len(h) and "users" in h:
        users = f" · peak {int(h['users'].max()):,} users"
    dur = f" in {doc_duration:,.1f} s" if doc_duration else ""
    return (
        f"<p class='headline'><b>{escape(VERDICT_TEXT[a.verdict])}</b> · thresholds: "
        f"{escape(counts_text(a))} · {s.total_count:,} requests{dur}{users} · {failed}</p>"
    )


def _baseline_table(a: Analysis) -> str:
    """Per entry: p50/p95/p99 of the pooled baselines and of this run, the change of each, and the
    regression test's lower bound of the median shift (95% confidence), p-value and verdict."""
    rows, classes = [], []
    for g in sorted(a.regressions, key=lambda g: (g.status != "fail", g.status != "warn", g.entry)):
        cells = [_cell(g.status), _cell(g.entry), _cell(f"{g.baseline_count:,} / {g.current_count:,}", True)]
        cells += [_cell(change_text(b, c), True) for b, c in baseline_percentiles(a, g.entry)]
        bound = "n/a" if g.effect_lower_bound is None else f"≥ {g.effect_lower_bound:+.1%}"
        cells += [
            _cell(bound, True),
            _cell("" if g.p_value is None else f"{g.p_value:.2g}", True),
            _cell(g.method),
            _cell(g.message),
        ]
        rows.append(cells)
        classes.append(f"s-{g.status}")
    headers = [
        "verdict",
        "entry",
        "requests (baseline / now)",
        "p50: baseline → now",
        "p95: baseline → now",
        "p99: baseline → now",
        "median shift, 95% lower bound",
        "p-value",
        "method",
        "message",
    ]
    return _table(headers, rows, classes)


ENTRY_HEADERS = ["type", "name", "group", "requests", "failed (% of its requests)", "mean ms", "p50 ms"]
ENTRY_HEADERS += ["p95 ms", "p99 ms", "max ms", "requests/s"]


def to_html(a: Analysis) -> str:
    doc = report_document(a)
    s = doc["summary"]
    verdict = a.verdict.value
    ch = charts(a)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Load test report: {escape(VERDICT_TEXT[a.verdict])}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Load test report <span class='verdict {verdict}'>{escape(VERDICT_TEXT[a.verdict])}</span>"
        f"<span class='muted'>run {escape(redact_text(a.run.label))}</span></h1>",
        headline(a, s["total_duration"]),
        why(a),
        f"<div class='charts' id='charts-overview'>{''.join(ch['overview'])}</div>",
        f"<p class='muted'>Generated {escape(doc['generated_at'])} · percentiles from "
        f"{escape(SOURCE_LABELS.get(a.stats.percentile_source or '', 'none'))} · "
        f"started {escape(s['test_start_time'] or 'n/a')} · "
        f"suites: {escape(', '.join(s['suites_run']) or 'n/a')}"
        f" · files missing: {escape(', '.join(a.run.missing) or 'none')}</p>",
    ]
    no_failures = "<p>No request failed in this run.</p>"
    for section, title in (
        ("load", "Load over time"),
        ("latency", "Response times over time"),
        ("entries", "Response times over time per entry (• named by a rule or issue; then the busiest)"),
        ("vsload", "Response time against load"),
        ("errors", "Errors by kind over time"),
        ("distribution", "Response-time distribution per entry"),
        ("resources", "Resource use"),
        ("streaming", "AI streaming: time to first token, inter-token latency, tokens/s"),
    ):
        body = "".join(ch[section]) or (no_failures if section == "errors" else "<p>No data in this run.</p>")
        parts.append(f"<h2>{escape(title)}</h2><div class='charts' id='charts-{section}'>{body}</div>")
    capacity_chart = a.run.path / CAPACITY_SVG
    if a.run.capacity is not None and capacity_chart.is_file():
        # As an image, not inline: an SVG from a run folder then cannot run script in the report.
        data = base64.b64encode(capacity_chart.read_bytes()).decode("ascii")
        parts.append(
            "<h2>Capacity search</h2><div class='charts' id='charts-capacity'>"
            f"<img alt='capacity search: rates, goodput and corrected latency against the target rate' "
            f"src='data:image/svg+xml;base64,{data}'></div>"
        )
    if a.run.capacity is not None and a.run.capacity.steps:
        parts.append(_capacity_steps(a.run.capacity.steps))
    parts.append(f"<h2 id='thresholds'>Thresholds ({escape(counts_text(a))})</h2>")
    idle = [r for r in a.results if is_idle(r)]
    judged = [*attention(a), *(r for r in a.results if r.status == "pass")]
    rows = _threshold_rows(a, judged)
    parts.append(_table(THRESHOLD_HEADERS, rows, [f"s-{r.status}" for r in judged]))
    if idle:
        parts.append(f"<details><summary>{len(idle)} rule(s) had nothing to check in this run</summary>")
        parts.append(_table(THRESHOLD_HEADERS, _threshold_rows(a, idle, note=False)))
        parts.append("</details>")
    if a.baselines:
        parts.append(
            f"<h2>Baseline comparison</h2><p class='muted'>pooled: {escape(', '.join(a.baselines))}. "
            "A regression needs both a one-sided Mann-Whitney U test under alpha and a 95% lower bound of "
            "the median shift of at least the minimum effect.</p>"
        )
        parts.append(_baseline_table(a))
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
    parts.append("<h2>Entries (named by a rule or issue first, then by request count)</h2>")
    first, rest = entries_in_report_order(a)
    rows = []
    for key in [*first, *rest]:
        r = a.stats.rows[key]
        rows.append(
            [
                _cell(r["request_type"]),
                _cell(r["name"]),
                _cell(r["group"]),
                _cell(f"{int(r['count']):,}", True),
                _cell(f"{int(r['failures']):,} ({float(r['failure_ratio'] or 0):.1%})", True),
                *(_cell(_fmt(float(r[k])), True) for k in ("mean", "median", "p95", "p99", "max")),
                _cell(_fmt(float(r["rps"])), True),
            ]
        )
    parts.append(
        _table(
            ENTRY_HEADERS,
            rows,
            ["s-warn" if k in first else "" for k in [*first, *rest]],
        )
    )
    parts.append("<h2>Recommendations</h2><ul>")
    parts += [f"<li>{escape(r)}</li>" for r in doc["recommendations"]]
    parts.append("</ul></body></html>")
    return "\n".join(parts) + "\n"
