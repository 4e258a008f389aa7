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

from analysis._analyse import BUSIEST_LOAD_GENERATOR, Analysis, Verdict, summary_counts
from analysis._stats import SOURCE_LABELS, EntryKey, entry_label, pooled
from analysis._thresholds import ThresholdResult, format_value, select_entries, split_metric
from compliance_loadtest.categories import LOAD_TESTING, TITLE_BY_USER_CLASS
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
    """The seed's suites the run carried out, named from the user classes that made its requests
    (run.json's `record.user_classes`): a class of no category is a user's own journey, so "Load
    Testing". Benchmark groups add their suites as they always did. Without that key (run folders of
    earlier versions, Locust's CSV alone) the groups decide alone. Sampled resources name no suite:
    every run with a run folder samples them, memory test or not."""
    groups = set(a.stats.entries["group"].astype(str)) if len(a.stats.entries) else set()
    suites = {SUITES[g] for g in groups if g in SUITES}
    info = a.run.run_info
    classes = [c for c, n in info.record.user_classes.items() if n] if info is not None else []
    if classes:
        suites.update(TITLE_BY_USER_CLASS.get(c, LOAD_TESTING) for c in classes)
    elif groups - set(SUITES):
        suites.add(LOAD_TESTING)
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
        "count": r.count,
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
        elif i.kind == "resource-cpu" and i.message.startswith(BUSIEST_LOAD_GENERATOR):
            recs.append(f"{i.message}; near a whole core its latencies measure it: add workers.")
        elif i.kind in ("resource-cpu", "resource-memory"):
            recs.append(f"{i.message}; check sizing or look for leaks.")
    if not recs:
        recs.append(
            "All thresholds held" + (" and no regression against the baseline." if a.baselines else ".")
        )
    return recs


# --- what every report says first ----------------------------------------------------------------------


def is_idle(r: ThresholdResult) -> bool:
    """A rule that had nothing to check in this run (and is not `required`): not a warning about the
    system under test, so it is counted and listed apart."""
    return r.value is None and r.status != "fail"


def rule_counts(a: Analysis) -> dict[str, int]:
    """Threshold results by what they say: held, failed, warned (judged and over a `warn` limit) and
    idle (nothing to check in this run)."""
    return {
        "held": sum(1 for r in a.results if r.status == "pass"),
        "failed": sum(1 for r in a.results if r.status == "fail"),
        "warned": sum(1 for r in a.results if r.status in ("warn", "no-data") and not is_idle(r)),
        "idle": sum(1 for r in a.results if is_idle(r)),
    }


def counts_text(a: Analysis) -> str:
    """ "3 held, 1 failed, 2 warnings, 4 with nothing to check" (the parts that are not zero)."""
    c = rule_counts(a)
    parts = [f"{c['held']} held", f"{c['failed']} failed"]
    if c["warned"]:
        parts.append(f"{c['warned']} warning{'s' if c['warned'] != 1 else ''}")
    if c["idle"]:
        parts.append(f"{c['idle']} with nothing to check")
    return ", ".join(parts)


def attention(a: Analysis) -> list[ThresholdResult]:
    """The results a reader must see first: failed rules, then judged warnings."""
    order = {"fail": 0, "warn": 1, "no-data": 2}
    bad = [r for r in a.results if r.status == "fail" or (r.status != "pass" and not is_idle(r))]
    return sorted(bad, key=lambda r: order.get(r.status, 3))


def _extra_unit(name: str) -> str:
    for suffix, unit in (("_mb", " MB"), ("_ms", " ms"), ("_seconds", " s"), ("_s", " s"), ("_percent", "%")):
        if name.endswith(suffix):
            return unit
    for word in ("requests", "connections", "rows", "queries", "errors"):
        if word in name:
            return f" {word}"
    return ""


def figure(metric: str, value: float | None, entry: str = "") -> str:
    """A rule's value (or limit) with its unit, and for a share what it is a share of: a failure ratio
    reads "0.00% of requests failed", never a bare "0.00%" that could be the success rate."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    of = "rounds" if entry.startswith("BENCH") else "requests"
    if metric == "failure_ratio":
        return f"{value * 100:.2f}% of {of} failed"
    if metric == "goodput":
        return f"{value * 100:.2f}% of {of} good"
    if metric == "count":
        return f"{value:,.0f} {of}"
    if metric == "failures":
        return f"{value:,.0f} failed {of}"
    if metric == "rps":
        return f"{value:,.2f} {of}/s"
    if split_metric(metric)[0] == "tokens_per_s":
        return f"{value:,.1f} tokens/s"
    if metric.startswith("extra."):
        return f"{value:,.4g}{_extra_unit(metric[6:])}"
    if "cpu_percent" in metric:
        return f"{value:.1f}% of one CPU core"
    if "memory_percent" in metric:
        return f"{value:.1f}% of the machine's memory"
    return format_value(metric, value)


def limit_text(r: ThresholdResult) -> str:
    return f"{r.rule.op} {figure(r.rule.metric, r.rule.value, r.entry)}"


def entry_keys(a: Analysis) -> dict[str, EntryKey]:
    """Entry label ("GET /api/x", as results and regressions name entries) to its key."""
    return {entry_label(k): k for k in a.stats.key_list()}


def result_keys(a: Analysis, r: ThresholdResult) -> list[EntryKey]:
    """The entries a threshold result is about (none for a resource rule)."""
    if r.rule.is_system:
        return []
    key = entry_keys(a).get(r.entry)
    if key is not None:
        return [key]
    if r.value is None:
        return []
    measures = dict(zip(a.stats.key_list(), a.stats.entries["measure"], strict=True))
    return [k for k in select_entries(a.stats, r.rule.select) if measures.get(k) != "tokens_per_s"]


def _n(n: int, noun: str) -> str:
    """ "1 request", "2 requests"."""
    return f"{n:,} {noun}" if n != 1 else f"1 {noun.removesuffix('s')}"


def sample_count(a: Analysis, r: ThresholdResult) -> str:
    """How many measurements the figure stands on: requests (or rounds) of its entries, or resource
    samples."""
    if r.rule.is_system:
        res = a.run.resources
        n = 0 if res is None else int((res["role"] == "target").sum())
        return _n(n, "resource samples")
    keys = result_keys(a, r)
    if not keys:
        return "none"
    quantity = split_metric(r.rule.metric)[0]
    table = {"ttft": a.stats.ttft, "itl": a.stats.itl, "tokens_per_s": a.stats.tokens_per_s}.get(
        quantity or "", {}
    )
    if table:
        n = sum(table[k].count for k in keys if k in table)
        return f"{n:,} streamed replies" if n != 1 else "1 streamed reply"
    rows = a.stats.rows
    n = sum(int(rows[k]["count"]) for k in keys if k in rows)
    return _n(n, "rounds" if all(k[0] == "BENCH" for k in keys) else "requests")


def concerned_entries(a: Analysis) -> list[EntryKey]:
    """Entries named by failed or warning rules, by regressions and by issues, in that order, once."""
    keys = entry_keys(a)
    out: list[EntryKey] = []
    names = [r.entry for r in attention(a)]
    names += [g.entry for g in a.regressions if g.status != "pass"]
    names += [i.entry for i in a.issues if i.entry]
    for name in names:
        key = keys.get(name)
        if key is not None and key not in out:
            out.append(key)
    return out


def entries_in_report_order(a: Analysis) -> tuple[list[EntryKey], list[EntryKey]]:
    """(the entries the rules concern, the rest by request count, busiest first)."""
    first = concerned_entries(a)
    e = a.stats.entries
    rest = [
        (str(rt), str(n))
        for rt, n in e.sort_values("count", ascending=False, kind="stable")[
            ["request_type", "name"]
        ].itertuples(index=False)
    ]
    return first, [k for k in rest if k not in first]


BASELINE_QUANTILES = (0.5, 0.95, 0.99)


def baseline_percentiles(a: Analysis, entry: str) -> list[tuple[float | None, float | None]]:
    """(pooled baselines', this run's) p50, p95 and p99 of one entry; None where a side has none."""
    key = entry_keys(a).get(entry)
    cur = a.stats.response.get(key) if key is not None else None
    base = pooled(b.response[key] for b in a.baseline_stats if key in b.response) if key is not None else None
    return [
        (base.quantile(q) if base is not None else None, cur.quantile(q) if cur is not None else None)
        for q in BASELINE_QUANTILES
    ]


def change_text(before: float | None, after: float | None) -> str:
    """ "12.0 → 14.4 ms (+20.0%)"."""
    change = f" ({after / before - 1:+.1%})" if before and after is not None else ""
    return f"{_ms(before)} → {_ms(after)} ms{change}"


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


def _md_entry_row(a: Analysis, key: EntryKey) -> str:
    r = a.stats.rows[key]
    n, f = int(r["count"]), int(r["failures"])
    share = f" ({f / n:.1%})" if n else ""
    return (
        f"| {_md(entry_label(key))} | {n:,} | {f:,}{share} | {_ms(r['median'])} | {_ms(r['p95'])} | "
        f"{_ms(r['p99'])} | {_ms(r['max'])} |"
    )


def to_markdown(a: Analysis, max_rows: int = 60, max_entries: int = 15) -> str:
    """GitHub step-summary Markdown: the verdict, the thresholds (failed and warning rules first), the
    entries they name, then the busiest others, baseline deltas and issues."""
    st = a.stats
    lines = [f"## {VERDICT_ICON[a.verdict]} Load test verdict: {VERDICT_TEXT[a.verdict]}", ""]
    src = SOURCE_LABELS.get(st.percentile_source or "", "none")
    ratio = f" ({st.total_failures / st.total_count:.2%} of requests)" if st.total_count else ""
    lines.append(
        f"Run `{_md(a.run.label)}`: {st.total_count:,} requests, {st.total_failures:,} failed{ratio}, "
        f"{len(st.entries)} entries. Percentiles from: {src}."
    )
    lines.append("")
    for reason in a.invalid_reasons:
        lines.append(f"> **Invalid run:** {_md(reason)}")
    if a.invalid_reasons:
        lines.append("")
    lines += [
        f"### Thresholds ({counts_text(a)})",
        "",
        "| | rule | entry | value | limit | measured on | note |",
        "|---|---|---|---:|---|---:|---|",
    ]
    # Failed and warning rules first; rules with nothing to check are listed in one line, not a row each.
    idle = [r for r in a.results if is_idle(r)]
    ranked = [*attention(a), *(r for r in a.results if r.status == "pass")]
    for r in ranked[:max_rows]:
        lines.append(
            f"| {STATUS_ICON[r.status]} | `{_md(r.rule.id)}` | {_md(r.entry)} | "
            f"{figure(r.rule.metric, r.value, r.entry)} | {_md(limit_text(r))} | {sample_count(a, r)} | "
            f"{_md(r.message if r.status != 'pass' else r.rule.description)} |"
        )
    if len(ranked) > max_rows:
        lines.append(f"| | | … {len(ranked) - max_rows} more results (all held) in the JSON report | | | | |")
    if idle:
        lines += [
            "",
            f"Nothing to check in this run: {', '.join(f'`{_md(r.rule.id)}`' for r in idle)}.",
        ]
    lines.append("")
    first, rest = entries_in_report_order(a)
    head = [
        "| entry | requests | failed (% of its requests) | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    if first:
        lines += ["### Entries the rules and issues name", "", *head]
        lines += [_md_entry_row(a, k) for k in first]
        lines.append("")
    if rest:
        shown = rest[:max_entries]
        lines += [f"### {'Other entries' if first else 'Entries'} (busiest {len(shown)} of {len(rest)})", ""]
        lines += [*head, *(_md_entry_row(a, k) for k in shown), ""]
    lines.append("")
    if a.baselines:
        lines += [
            f"### Baseline comparison (pooled: {', '.join(f'`{_md(b)}`' for b in a.baselines)})",
            "",
            "| | entry | p50 | p95 | p99 | median shift, 95% lower bound | p-value | method | note |",
            "|---|---|---:|---:|---:|---:|---:|---|---|",
        ]
        for g in sorted(a.regressions, key=lambda g: (not g.regressed, g.entry)):
            pcts = " | ".join(change_text(b, c) for b, c in baseline_percentiles(a, g.entry))
            bound = "n/a" if g.effect_lower_bound is None else f"≥ {g.effect_lower_bound:+.1%}"
            p = "" if g.p_value is None else f"{g.p_value:.2g}"
            lines.append(
                f"| {STATUS_ICON[g.status]} | {_md(g.entry)} | {pcts} | {bound} | {p} | {g.method} | "
                f"{_md(g.message)} |"
            )
        if not a.regressions:
            lines.append("| ○ | no entry in common with the baseline | | | | | | | |")
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


def _console_entry(a: Analysis, key: EntryKey) -> list[str]:
    rec = a.stats.rows[key]
    return [
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


def to_console(a: Analysis, max_entries: int = 40) -> str:
    """The verdict, failed and warning rules, the entries they name, then the busiest others."""
    out = [f"Verdict: {VERDICT_TEXT[a.verdict]} (exit {a.exit_code})  run: {redact_text(a.run.label)}"]
    out.append(f"Percentiles from: {SOURCE_LABELS.get(a.stats.percentile_source or '', 'none')}")
    for reason in a.invalid_reasons:
        out.append(f"INVALID RUN: {redact_text(reason)}")
    rg = summary_counts(a)["regressions"]
    out.append(
        f"Thresholds: {counts_text(a)}."
        + (f" Regressions: {rg['fail']} failed of {len(a.regressions)} compared." if a.baselines else "")
    )
    out.append("")
    bad = attention(a)
    if bad:
        out += _table(
            ["status", "rule", "entry", "value", "limit", "measured on", "why"],
            [
                [
                    r.status.upper(),
                    r.rule.id,
                    redact_text(r.entry)[:50],
                    figure(r.rule.metric, r.value, r.entry),
                    limit_text(r),
                    sample_count(a, r),
                    # value, limit and count say why a figure broke its limit; a warning (too few
                    # samples) or a failure without a figure needs its message
                    redact_text(r.message) if r.status != "fail" or r.value is None else "",
                ]
                for r in bad
            ],
        )
    idle = [r for r in a.results if is_idle(r)]
    if idle:
        ids = [r.rule.id for r in idle]
        shown = ", ".join(ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")
        out.append(f"Nothing to check in this run for {len(idle)} rule(s): {shown}")
    for g in a.regressions:
        if g.regressed:
            out.append(f"REGRESSION {redact_text(g.entry)}: {g.message}")
    if bad or idle or any(g.regressed for g in a.regressions):
        out.append("")
    first, rest = entries_in_report_order(a)
    headers = ["type", "name", "count", "fail", "mean", "p50", "p95", "p99", "max"]
    right = (2, 3, 4, 5, 6, 7, 8)
    if first:
        out.append("Entries the rules and issues name (ms; fail = share of the entry's requests):")
        out += _table(headers, [_console_entry(a, k) for k in first], right=right)
        out.append("")
    if rest:
        shown_keys = rest[:max_entries]
        title = "Other entries" if first else "Entries"
        out.append(
            f"{title}, busiest {len(shown_keys)} of {len(rest)} (ms; fail = share of the entry's requests):"
        )
        out += _table(headers, [_console_entry(a, k) for k in shown_keys], right=right)
        out.append("")
    for i in a.issues:
        out.append(
            f"[{i.severity}] {i.kind}: "
            f"{(redact_text(i.entry) + ': ') if i.entry else ''}{redact_text(i.message)}"
        )
    return "\n".join(out) + "\n"


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = _clean(frame.to_dict("records"))
    return rows
