"""Reports of an `Analysis`: a JSON document (the seed's layout plus ours), Markdown for a CI step
summary, JUnit XML, and a console table. Each is a pure function returning text; every value passes
through `redact` first, so secrets never reach a report."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from analysis._analyse import Analysis, Verdict, summary_counts
from analysis._stats import SOURCE_LABELS
from analysis._thresholds import ThresholdResult, format_value
from compliance_loadtest.redact import redact, redact_text

REPORT_VERSION = 1
VERDICT_TEXT = {Verdict.PASS: "PASS", Verdict.FAIL: "FAIL", Verdict.INVALID: "INVALID RUN"}
VERDICT_ICON = {Verdict.PASS: "✅", Verdict.FAIL: "❌", Verdict.INVALID: "⚠️"}
SUITES = {
    "bench-api": "API Performance",
    "bench-db": "Database Performance",
    "bench": "Benchmarks",
}


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinity become null, numpy scalars become Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _iso(ts: float | None) -> str | None:
    if ts is None or not math.isfinite(ts):
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _start_and_duration(a: Analysis) -> tuple[str | None, float | None]:
    info = a.run.run_info
    start, end = (info.started_at, info.ended_at) if info is not None else (None, None)
    if start is not None:
        duration = None
        if end is not None:
            try:
                duration = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
            except ValueError:
                duration = None
        return start, duration if duration is not None else a.stats.duration_s
    if a.stats.record is not None and len(a.stats.record):
        return _iso(float(a.stats.record["timestamp"].min())), a.stats.duration_s
    if a.run.history is not None and len(a.run.history):
        ts = a.run.history["timestamp"]
        return _iso(float(ts.min())), float(ts.max() - ts.min())
    return None, a.stats.duration_s


def suites_run(a: Analysis) -> list[str]:
    groups = set(a.stats.entries["group"].astype(str)) if len(a.stats.entries) else set()
    suites = {SUITES[g] for g in groups if g in SUITES}
    if groups - set(SUITES):
        suites.add("Load Testing")
    if a.system.sampled:
        suites.add("Memory Testing")
    return sorted(suites)


def threshold_row(r: ThresholdResult) -> dict[str, Any]:
    return {
        "rule": r.rule.id,
        "description": r.rule.description,
        "metric": r.rule.metric,
        "op": r.rule.op,
        "threshold": r.rule.value,
        "severity": r.rule.severity,
        "required": r.rule.required,
        "selector": r.rule.describe_selection(),
        "entry": r.entry,
        "value": r.value,
        "status": r.status,
        "message": r.message,
        "source": r.source,
    }


def entries_rows(a: Analysis) -> list[dict[str, Any]]:
    cols = ["request_type", "name", "group", "tags", "source", "count", "failures", "failure_ratio"]
    cols += ["mean", "median", "min", "max", "p95", "p99", "rps"]
    e = a.stats.entries
    if not len(e):
        return []
    return [{str(k): v for k, v in r.items()} for r in e[cols].to_dict("records")]


def recommendations(a: Analysis) -> list[str]:
    recs = []
    for reason in a.invalid_reasons:
        recs.append(f"Re-run: {reason}. An invalid run is never a pass.")
    for r in a.results:
        if r.status == "fail":
            recs.append(
                f"{r.entry}: {r.rule.text()} failed ({r.message}); {r.rule.description or r.rule.id}."
            )
    for g in a.regressions:
        if g.regressed:
            recs.append(
                f"{g.entry}: slower than the baseline ({g.message}); look at what changed on this path."
            )
    for i in a.issues:
        if i.kind == "slow-response":
            recs.append(f"{i.entry}: slow responses ({i.message}); profile the endpoint and its queries.")
        elif i.kind == "high-failure-rate" and i.entry:
            recs.append(f"{i.entry}: {i.message}; check the failures report for the error messages.")
        elif i.kind in ("resource-cpu", "resource-memory"):
            recs.append(f"{i.message}; check sizing or look for leaks.")
    if not recs:
        recs.append(
            "All thresholds held" + (" and no regression against the baseline." if a.baselines else ".")
        )
    return recs


def report_document(a: Analysis) -> dict[str, Any]:
    """The JSON report: the seed's keys (summary, results, recommendations, config) plus thresholds,
    regressions, issues, verdict and percentile_source."""
    start, duration = _start_and_duration(a)
    info = a.run.run_info
    st = a.stats
    doc: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "generated_at": a.generated_at.isoformat(),
        "summary": {
            "test_start_time": start,
            "total_duration": duration,
            "suites_run": suites_run(a),
            "system_metrics": a.system.as_dict(),
            "total_requests": st.total_count,
            "total_failures": st.total_failures,
            "failure_ratio": (st.total_failures / st.total_count) if st.total_count else None,
            "entries": len(st.entries),
        },
        "results": {"entries": entries_rows(a)},
        "recommendations": recommendations(a),
        "config": {
            "run_options": dict(info.options) if info is not None else {},
            "host": info.host if info is not None else None,
            "load_profile": info.load_profile if info is not None else None,
            "performance_config": dict(a.run.perf_config) if a.run.perf_config else None,
            "thresholds_file": a.thresholds.source,
            "regression": dict(a.thresholds.regression.__dict__),
            "issues": dict(a.thresholds.issues.__dict__),
            "baselines": list(a.baselines),
        },
        "thresholds": [threshold_row(r) for r in a.results],
        "regressions": [asdict(r) for r in a.regressions],
        "issues": [dict(i.__dict__) for i in a.issues],
        "verdict": {
            "status": a.verdict.value,
            "exit_code": a.exit_code,
            "invalid_reasons": list(a.invalid_reasons),
            "counts": summary_counts(a),
        },
        "percentile_source": {
            "kind": st.percentile_source,
            "description": SOURCE_LABELS.get(st.percentile_source or "", "no response times in this run"),
        },
        "run": {
            "path": str(a.run.path),
            "present": list(a.run.present),
            "missing": list(a.run.missing),
            "notes": list(st.notes),
            "locust_version": info.locust_version if info is not None else None,
            "workers": info.workers.to_json() if info is not None else None,
        },
    }
    cleaned: dict[str, Any] = _clean(redact(doc))
    return cleaned


def to_json(a: Analysis) -> str:
    return json.dumps(report_document(a), indent=2, allow_nan=False) + "\n"


# --- Markdown -----------------------------------------------------------------------------------------


def _md(text: object) -> str:
    return redact_text(str(text)).replace("|", "\\|").replace("\n", " ")


def _ms(v: float | None) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:,.1f}"


STATUS_ICON = {"pass": "✅", "fail": "❌", "warn": "⚠️", "no-data": "○"}


def to_markdown(a: Analysis, max_rows: int = 60) -> str:
    """GitHub step-summary Markdown: verdict, thresholds table (failures first), baseline deltas, issues."""
    st = a.stats
    lines = [f"## {VERDICT_ICON[a.verdict]} Load test verdict: {VERDICT_TEXT[a.verdict]}", ""]
    src = SOURCE_LABELS.get(st.percentile_source or "", "none")
    ratio = f"{st.total_failures / st.total_count:.2%}" if st.total_count else "n/a"
    lines.append(
        f"Run `{_md(a.run.label)}`: {st.total_count:,} requests, {st.total_failures:,} failures ({ratio}), "
        f"{len(st.entries)} entries. Percentiles from: {src}."
    )
    lines.append("")
    for reason in a.invalid_reasons:
        lines.append(f"> **Invalid run:** {_md(reason)}")
    if a.invalid_reasons:
        lines.append("")
    counts = summary_counts(a)["thresholds"]
    lines += [
        f"### Thresholds ({counts['pass']} held, {counts['fail']} failed, {counts['warn']} warnings)",
        "",
        "| | rule | entry | value | limit | note |",
        "|---|---|---|---:|---|---|",
    ]
    order = {"fail": 0, "warn": 1, "no-data": 2, "pass": 3}
    # Rules with nothing to check in this run are listed in one line, not one row each.
    idle = [r for r in a.results if r.value is None and r.status != "fail"]
    ranked = sorted((r for r in a.results if r not in idle), key=lambda r: order[r.status])
    for r in ranked[:max_rows]:
        lines.append(
            f"| {STATUS_ICON[r.status]} | `{_md(r.rule.id)}` | {_md(r.entry)} | "
            f"{format_value(r.rule.metric, r.value)} | "
            f"{_md(r.rule.op)} {format_value(r.rule.metric, r.rule.value)} | "
            f"{_md(r.message if r.status != 'pass' else r.rule.description)} |"
        )
    if len(ranked) > max_rows:
        lines.append(
            f"| | | … {len(ranked) - max_rows} more results (passed or warnings) in the JSON report | | | |"
        )
    if idle:
        lines += [
            "",
            f"Nothing to check in this run (warnings): {', '.join(f'`{_md(r.rule.id)}`' for r in idle)}.",
        ]
    lines.append("")
    if a.baselines:
        lines += [
            f"### Baseline comparison (pooled: {', '.join(f'`{_md(b)}`' for b in a.baselines)})",
            "",
            "| | entry | method | baseline median ms | current median ms | change [95% interval] | p-value "
            "| note |",
            "|---|---|---|---:|---:|---:|---:|---|",
        ]
        for g in sorted(a.regressions, key=lambda g: (not g.regressed, g.entry)):
            change = "n/a" if g.relative_change is None else f"{g.relative_change:+.1%}"
            if g.effect_lower_bound is not None and g.interval_high is not None:
                change += f" [{g.effect_lower_bound:+.1%}, {g.interval_high:+.1%}]"
            p = "" if g.p_value is None else f"{g.p_value:.2g}"
            lines.append(
                f"| {STATUS_ICON[g.status]} | {_md(g.entry)} | {g.method} | {_ms(g.baseline_median)} | "
                f"{_ms(g.current_median)} | {change} | {p} | {_md(g.message)} |"
            )
        if not a.regressions:
            lines.append("| ○ | no entry in common with the baseline | | | | | | |")
        lines.append("")
    lines += ["### Detected issues", ""]
    if a.issues:
        for i in a.issues:
            where = f" `{_md(i.entry)}`:" if i.entry else ""
            lines.append(f"- **{i.severity}** {i.kind}:{where} {_md(i.message)}")
    else:
        lines.append("None.")
    failures = top_failures(a)
    if failures:
        lines += ["", "### Most frequent failures", "", "| occurrences | request | error |", "|---:|---|---|"]
        lines += [f"| {n:,} | {_md(entry)} | {_md(error)} |" for n, entry, error in failures]
    if a.run.missing:
        lines += ["", f"Not in this run: {', '.join(f'`{m}`' for m in a.run.missing)}."]
    return "\n".join(lines) + "\n"


def top_failures(a: Analysis, limit: int = 10) -> list[tuple[int, str, str]]:
    """(occurrences, entry, error) from Locust's failures CSV, most frequent first."""
    f = a.run.failures
    if f is None or not len(f):
        return []
    rows = f.sort_values("occurrences", ascending=False, kind="stable").head(limit)
    return [
        (int(r["occurrences"]), f"{r['request_type']} {r['name']}".strip(), str(r["error"])[:200])
        for r in rows.to_dict("records")
    ]


# --- JUnit XML ----------------------------------------------------------------------------------------


def to_junit(a: Analysis) -> str:
    """One test case per threshold result and per regression check, plus one for the run's validity."""
    root = ET.Element("testsuites", name="compliance-analysis")

    def suite(name: str) -> ET.Element:
        return ET.SubElement(root, "testsuite", name=name)

    def finish(s: ET.Element) -> None:
        cases = s.findall("testcase")
        s.set("tests", str(len(cases)))
        s.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
        s.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))
        s.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))

    v = suite("validity")
    case = ET.SubElement(v, "testcase", classname="validity", name="run is valid")
    if a.invalid_reasons:
        err = ET.SubElement(
            case, "error", message=redact_text("; ".join(a.invalid_reasons)), type="invalid-run"
        )
        err.text = redact_text("\n".join(a.invalid_reasons))
    finish(v)

    t = suite("thresholds")
    for r in a.results:
        name = f"{r.entry}: {r.rule.text()}"
        case = ET.SubElement(t, "testcase", classname=f"thresholds.{r.rule.id}", name=redact_text(name))
        if r.status == "fail":
            f = ET.SubElement(case, "failure", message=redact_text(r.message), type="threshold")
            f.text = redact_text(f"{r.rule.description}\n{r.message}\nrule: {r.rule.origin}")
        elif r.status == "warn" and r.value is None:
            ET.SubElement(case, "skipped", message=redact_text(r.message))
        elif r.status == "warn":
            out = ET.SubElement(case, "system-out")
            out.text = redact_text(f"WARNING: {r.message}")
    finish(t)

    g = suite("regressions")
    for reg in a.regressions:
        case = ET.SubElement(
            g, "testcase", classname="regressions", name=redact_text(f"{reg.entry}: no slowdown")
        )
        if reg.status == "fail":
            f = ET.SubElement(case, "failure", message=redact_text(reg.message), type="regression")
            f.text = redact_text(reg.message)
        elif reg.status == "warn":
            ET.SubElement(case, "skipped", message=redact_text(reg.message))
    finish(g)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --- console ------------------------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> list[str]:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return [line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def to_console(a: Analysis, max_entries: int = 40) -> str:
    e = a.stats.entries
    out = [f"Verdict: {VERDICT_TEXT[a.verdict]} (exit {a.exit_code})  run: {redact_text(a.run.label)}"]
    out.append(f"Percentiles from: {SOURCE_LABELS.get(a.stats.percentile_source or '', 'none')}")
    out.append("")
    if len(e):
        rows = []
        top = e.sort_values("count", ascending=False).head(max_entries)
        for rec in top.to_dict("records"):
            rows.append(
                [
                    str(rec["request_type"]),
                    redact_text(str(rec["name"]))[:60],
                    f"{int(rec['count']):,}",
                    f"{float(rec['failure_ratio']):.1%}",
                    _ms(float(rec["mean"])),
                    _ms(float(rec["median"])),
                    _ms(float(rec["p95"])),
                    _ms(float(rec["p99"])),
                    _ms(float(rec["max"])),
                ]
            )
        out += _table(
            ["type", "name", "count", "fail", "mean", "p50", "p95", "p99", "max"],
            rows,
            right=(2, 3, 4, 5, 6, 7, 8),
        )
        out.append("")
    bad = [r for r in a.results if r.status != "pass" and (r.value is not None or r.status == "fail")]
    idle = [r for r in a.results if r.value is None and r.status != "fail"]
    if bad:
        out += _table(
            ["status", "rule", "entry", "message"],
            [[r.status.upper(), r.rule.id, redact_text(r.entry)[:50], redact_text(r.message)] for r in bad],
        )
    if idle:
        ids = [r.rule.id for r in idle]
        shown = ", ".join(ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")
        out.append(f"Nothing to check in this run for {len(idle)} rule(s): {shown}")
    counts = summary_counts(a)
    th, rg = counts["thresholds"], counts["regressions"]
    out.append(
        f"Thresholds: {th['pass']} held, {th['fail']} failed, {th['warn']} warnings."
        + (f" Regressions: {rg['fail']} failed of {len(a.regressions)} compared." if a.baselines else "")
    )
    for g in a.regressions:
        if g.regressed:
            out.append(f"REGRESSION {redact_text(g.entry)}: {g.message}")
    for i in a.issues:
        out.append(
            f"[{i.severity}] {i.kind}: "
            f"{(redact_text(i.entry) + ': ') if i.entry else ''}{redact_text(i.message)}"
        )
    return "\n".join(out) + "\n"


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = _clean(frame.to_dict("records"))
    return rows
