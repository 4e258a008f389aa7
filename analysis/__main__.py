"""`python -m analysis RUN` / `compliance-analysis RUN`: a run folder in, reports and an exit code out.
`python -m analysis history RUN...`: trends and change points over many runs (see `_history.py`).

Exit codes: 0 all thresholds held (and no regression), 1 a threshold or regression failed,
2 bad input or usage, 3 invalid run. The command line only parses arguments and calls the pure
functions of the package.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import math
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from analysis._analyse import Analysis, analyse, reduce_baseline
from analysis._history import find_runs, history_command
from analysis._html import to_html
from analysis._load import load_run, resolve_run
from analysis._reports import to_console, to_json, to_junit, to_markdown
from analysis._thresholds import Thresholds, load_thresholds
from analysis.errors import EXIT_BAD_INPUT, AnalysisError, UsageError
from compliance_loadtest.run_folder import REPORT_STEM

REPORTS = ("json", "md", "junit", "html", "console")
SUFFIXES = {"json": ".json", "md": ".md", "junit": ".junit.xml", "html": ".html"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="compliance-analysis",
        description="Turn a load-test run folder into a verdict: thresholds, regressions against baselines, "
        "reports (JSON, Markdown, JUnit XML, HTML, console). "
        "Exit 0 pass, 1 fail, 2 bad input, 3 invalid run.",
    )
    p.add_argument("run", metavar="RUN", help="a run folder, or a Locust --csv prefix (e.g. out/locust)")
    p.add_argument(
        "--thresholds",
        metavar="FILE",
        action="append",
        default=None,
        help="thresholds YAML (repeatable; default: the shipped analysis/thresholds.yaml)",
    )
    p.add_argument(
        "--baseline",
        metavar="RUN",
        nargs="+",
        action="extend",
        default=[],
        help="baseline run(s), or folders of runs; several runs widen the interval by their disagreement",
    )
    p.add_argument(
        "--out", metavar="DIR", default=None, help="folder for the reports (default: the run folder)"
    )
    p.add_argument(
        "--report",
        default="json,md,junit,html,console",
        help=f"comma-separated reports to write, of {','.join(REPORTS)} (default: all); 'none' for none",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="the seed's performance_config.json, whose thresholds block adds rules "
        "(default: performance_config.json in the run folder, if any)",
    )
    p.add_argument(
        "--warmup",
        metavar="DURATION",
        default="auto",
        help="leave out requests that started in the run's first DURATION (e.g. 10s, 500ms, 0 for none); "
        "default auto: the spawn phase, users / spawn rate from run.json (none with a load profile)",
    )
    p.add_argument(
        "--no-step-summary",
        action="store_true",
        help="do not append the Markdown report to $GITHUB_STEP_SUMMARY when it is set",
    )
    return p


def parse_reports(value: str) -> tuple[str, ...]:
    if value.strip().lower() == "none":
        return ()
    chosen = tuple(dict.fromkeys(v.strip().lower() for v in value.split(",") if v.strip()))
    unknown = [c for c in chosen if c not in REPORTS]
    if unknown:
        raise UsageError(
            f"unknown report {unknown[0]!r}; choose from {', '.join(REPORTS)} or none", key="--report"
        )
    return chosen


def parse_warmup(value: str) -> float | None:
    """Seconds of `--warmup`, or None for auto (the spawn phase)."""
    text = value.strip().lower()
    if text == "auto":
        return None
    scale = 1.0
    for unit, factor in (("ms", 0.001), ("s", 1.0)):
        if text.endswith(unit):
            text, scale = text[: -len(unit)].strip(), factor
            break
    try:
        seconds = float(text) * scale
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise UsageError(
            f"{value!r} is not a duration: give auto, or seconds of at least 0 (10s, 500ms, 0)",
            key="--warmup",
        )
    return seconds


def merge_thresholds(files: Sequence[str] | None) -> Thresholds:
    if not files:
        return load_thresholds(None)
    loaded = [load_thresholds(f) for f in files]
    rules = tuple(r for t in loaded for r in t.rules)
    ids = [r.id for r in rules]
    dup = next((i for i in ids if ids.count(i) > 1), None)
    if dup is not None:
        raise UsageError(f"rule id {dup!r} appears in more than one --thresholds file", key="--thresholds")
    last = loaded[-1]
    return Thresholds(
        rules, last.regression, last.issues, ", ".join(t.source for t in loaded), last.min_samples
    )


def _free_path(folder: Path, stem: str, suffix: str) -> Path:
    path = folder / f"{stem}{suffix}"
    n = 1
    while path.exists():
        path = folder / f"{stem}-{n}{suffix}"
        n += 1
    return path


def _write(path: Path, text: str) -> None:
    """Write to a temporary name, then rename: a report is whole or absent, never half-written."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_reports(analysis: Analysis, out: Path, reports: Sequence[str]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{REPORT_STEM}{analysis.generated_at.strftime('%Y%m%d_%H%M%S')}"
    renderers = {"json": to_json, "md": to_markdown, "junit": to_junit, "html": to_html}
    written = []
    for kind in reports:
        if kind in renderers:
            path = _free_path(out, stem, SUFFIXES[kind])
            _write(path, renderers[kind](analysis))
            written.append(path)
    return written


def run(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["history"]:
        return history_command(argv[1:])
    args = build_parser().parse_args(argv)
    reports = parse_reports(args.report)
    warmup_s = parse_warmup(args.warmup)
    thresholds = merge_thresholds(args.thresholds)
    resolve_run(args.run)  # a RUN that is no run folder is named before any baseline is read
    # Baselines first, one at a time, each reduced to its sorted samples (and compared on response
    # times only: their stream columns are never read). The current run's record is read after them,
    # so it is never in memory next to a baseline's, and takes the memory the baseline's record freed.
    baselines = [
        reduce_baseline(load_run(b, with_stream_columns=False), warmup_s)
        for b in find_runs(args.baseline, leave_out=args.run)
    ]
    current = load_run(args.run, config=args.config)
    analysis = analyse(current, thresholds, baselines, warmup_s=warmup_s)
    out = Path(args.out) if args.out else current.path
    try:
        written = write_reports(analysis, out, reports)
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary and "md" in reports and not args.no_step_summary:
            with open(summary, "a", encoding="utf-8") as f:
                f.write(to_markdown(analysis))
    except OSError as exc:
        raise UsageError(f"cannot write reports: {exc.strerror or exc}", file=exc.filename or out) from None
    if "console" in reports:
        sys.stdout.write(to_console(analysis))
        for path in written:
            sys.stdout.write(f"wrote {path}\n")
    return analysis.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(argv)
    except AnalysisError as exc:
        print(f"compliance-analysis: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("compliance-analysis: interrupted", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception:
        # A bug, not a verdict: never exit 0 or 1 (which CI reads as a pass or a failed threshold).
        traceback.print_exc()
        print(
            "compliance-analysis: internal error (a bug in the analysis; please report it)", file=sys.stderr
        )
        return EXIT_BAD_INPUT


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> None:
    """Let the process reuse the memory it frees instead of asking the kernel for fresh pages.

    The analysis allocates and frees arrays of the record's length (80 MB each at ten million rows):
    a baseline's columns, then the current run's in the same place. By default glibc maps each such
    array on its own and unmaps it when freed, and numpy asks for huge pages on it, so every array is
    new memory the kernel must find, zero and map: 1.5-2.0 s of system time in a 10M + 10M analysis.
    Served from the heap, and no longer advised to huge pages, freed arrays are reused: 0.45-0.55 s,
    2.4-2.7 s wall instead of 3.2-3.6, for a peak of 820-895 MB instead of 740-780 (freed memory the
    process keeps until it exits). Glibc only; elsewhere nothing changes.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, 1 << 30)  # arrays under 1 GB come from the heap
    mallopt(_M_TRIM_THRESHOLD, 128 << 20)  # and up to 128 MB free at its top stays mapped
    multiarray = getattr(getattr(np, "_core", None), "multiarray", None)
    set_hugepage = getattr(multiarray, "_set_madvise_hugepage", None)
    if set_hugepage is not None:
        set_hugepage(False)


def cli() -> None:
    """The command itself: `main`, then exit. Its first step lets the process reuse the memory it frees
    (`keep_freed_memory`); its last moves every object out of the garbage collector's sight: the
    interpreter's final collections would otherwise walk every object pandas and the analysis made,
    0.15 s of a ten-million-request analysis spent on memory freed at exit anyway. (`main` stays free of
    both: tests and other programs call it in their own process.)"""
    keep_freed_memory()
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    cli()
