"""Turn a load-test run folder into a verdict a CI system and a person can both read.

The pandas post-processor of compliance-loadtest: it never imports Locust or gevent (Locust
monkey-patches the process it is imported in). Pure functions over DataFrames and frozen dataclasses:

    run = load_run("runs/2026-11-25")            # RunData: validated DataFrames, what is missing
    analysis = analyse(run, load_thresholds())    # thresholds, regressions, issues, verdict
    print(to_markdown(analysis)); sys.exit(analysis.exit_code)
"""

from __future__ import annotations

from analysis._analyse import (
    Analysis,
    Baseline,
    Issue,
    Verdict,
    Warmup,
    analyse,
    detect_issues,
    invalid_reasons,
    reduce_baseline,
    without_warmup,
)
from analysis._history import ChangePoint, History, Trend, e_divisive, find_runs, history
from analysis._html import to_html
from analysis._load import RunData, load_run, read_record, resolve_run
from analysis._regression import (
    MannWhitney,
    RegressionResult,
    Shift,
    compare_runs,
    compare_samples,
    mann_whitney_greater,
    median_interval,
)
from analysis._reports import report_document, to_console, to_json, to_junit, to_markdown
from analysis._schema import report_schema, schema_errors, validate_report
from analysis._stats import PERCENTILE_METHOD, Distribution, RunStats, compute_stats, quantile_sorted
from analysis._system import SystemMetrics, system_metrics
from analysis._thresholds import (
    IssueSettings,
    RegressionSettings,
    Rule,
    Selector,
    ThresholdResult,
    Thresholds,
    config_rules,
    evaluate,
    load_thresholds,
    parse_thresholds,
)
from analysis.errors import (
    AnalysisError,
    InputError,
    RunFolderError,
    SchemaError,
    ThresholdsError,
    UsageError,
)
from compliance_loadtest.redact import redact, redact_text

__all__ = [
    "PERCENTILE_METHOD",
    "Analysis",
    "AnalysisError",
    "Baseline",
    "ChangePoint",
    "Distribution",
    "History",
    "InputError",
    "Issue",
    "IssueSettings",
    "MannWhitney",
    "RegressionResult",
    "RegressionSettings",
    "Rule",
    "RunData",
    "RunFolderError",
    "RunStats",
    "SchemaError",
    "Selector",
    "Shift",
    "SystemMetrics",
    "ThresholdResult",
    "Thresholds",
    "ThresholdsError",
    "Trend",
    "UsageError",
    "Verdict",
    "Warmup",
    "analyse",
    "compare_runs",
    "compare_samples",
    "compute_stats",
    "config_rules",
    "detect_issues",
    "e_divisive",
    "evaluate",
    "find_runs",
    "history",
    "invalid_reasons",
    "load_run",
    "load_thresholds",
    "mann_whitney_greater",
    "median_interval",
    "parse_thresholds",
    "quantile_sorted",
    "read_record",
    "redact",
    "redact_text",
    "reduce_baseline",
    "report_document",
    "report_schema",
    "resolve_run",
    "schema_errors",
    "system_metrics",
    "to_console",
    "to_html",
    "to_json",
    "to_junit",
    "to_markdown",
    "validate_report",
    "without_warmup",
]
