"""Threshold rules: parsed from YAML into frozen dataclasses, evaluated against one run's statistics.

A rule selects entries (by name glob, request type, group, tag), computes one metric per selected
entry (`per: entry`, the default) or over all of them pooled (`per: all`), and compares it with a
value. A rule that selects nothing is reported: `warn`, or `fail` when it says `required: true`.
Metrics that are not about entries (memory increase, CPU) read the resource samples.

A rule may also carry `abort`: while a run goes, the plugin (`compliance_loadtest.plugin.live`) evaluates
it over the requests of the last `window` and stops the run when it breaks there, once `after` has passed
since the start; the analysis then reports the stopping rule as failed (`stopped_result`).
"""

from __future__ import annotations

import fnmatch
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import yaml

from analysis._load import validate_config
from analysis._stats import Distribution, EntryKey, RunStats, dist_mean, entry_label, pooled
from analysis._system import SystemMetrics
from analysis.errors import ThresholdsError
from compliance_loadtest.run_folder import StoppedBy

Severity = Literal["fail", "warn"]
Status = Literal["pass", "fail", "warn", "no-data"]

OPERATORS: Mapping[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

ENTRY_STATS = ("mean", "median", "min", "max")
# Quantities other than the response time, each a distribution per entry (`ttft.p95`, `corrected.p99`).
STREAM_QUANTITIES = ("ttft", "itl", "tokens_per_s", "corrected")
SYSTEM_METRICS: Mapping[str, str] = {
    "memory_increase_mb": "target_memory_increase_mb",
    "rss_mb.max": "target_rss_max_mb",
    "cpu_percent": "target_cpu_mean",
    "cpu_percent.mean": "target_cpu_mean",
    "cpu_percent.max": "target_cpu_max",
    "memory_percent.max": "target_memory_percent_max",
    "loadgen_cpu_percent": "loadgen_cpu_mean",
    "loadgen_cpu_percent.max": "loadgen_cpu_max",
}
_PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?|100)$")
_VALUE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|%|mb|/s)?\s*$", re.IGNORECASE)

RULE_KEYS = frozenset(
    {
        "id",
        "description",
        "select",
        "metric",
        "op",
        "value",
        "severity",
        "required",
        "per",
        "limits",
        "min_samples",
        "abort",
    }
)
ABORT_KEYS = frozenset({"window", "after", "min_samples"})
SELECT_KEYS = frozenset(
    {"name", "exclude_name", "request_type", "exclude_request_type", "group", "exclude_group", "tag"}
)
GOODPUT_LIMITS = frozenset({"response_time_ms", "ttft_ms"})
TOP_KEYS = frozenset({"version", "rules", "regression", "issues", "min_samples"})
DEFAULT_MIN_SAMPLES = 5
"""Fewer samples than this (per entry, or pooled for `per: all`) and a rule says "not enough samples"
instead of a verdict: one slow request is an anecdote, not a mean. `min_samples:` at the top of a
thresholds file changes the default, on a rule it overrides it for that rule."""
# Metrics that are counts themselves, or not about requests: no minimum applies.
UNCOUNTED_METRICS = frozenset({"count", "failures"})


@dataclass(frozen=True)
class Selector:
    """Which entries a rule applies to; every field given must match (globs are case-insensitive)."""

    names: tuple[str, ...] = ()
    exclude_names: tuple[str, ...] = ()
    request_types: tuple[str, ...] = ()
    exclude_request_types: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    exclude_groups: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def matches(self, request_type: str, name: str, group: str, tags: str) -> bool:
        low = name.lower()
        if self.names and not any(fnmatch.fnmatchcase(low, p.lower()) for p in self.names):
            return False
        if any(fnmatch.fnmatchcase(low, p.lower()) for p in self.exclude_names):
            return False
        if self.request_types and request_type.upper() not in {t.upper() for t in self.request_types}:
            return False
        if request_type.upper() in {t.upper() for t in self.exclude_request_types}:
            return False
        if self.groups and group not in self.groups:
            return False
        if group in self.exclude_groups:
            return False
        entry_tags = {t for t in tags.split(",") if t}
        return not (self.tags and not entry_tags.intersection(self.tags))

    def describe(self) -> str:
        parts = []
        for label, values in (
            ("name", self.names),
            ("not name", self.exclude_names),
            ("type", self.request_types),
            ("not type", self.exclude_request_types),
            ("group", self.groups),
            ("not group", self.exclude_groups),
            ("tag", self.tags),
        ):
            if values:
                parts.append(f"{label} {'|'.join(values)}")
        return ", ".join(parts) or "all entries"


@dataclass(frozen=True)
class Abort:
    """When a rule stops a run: broken over the requests of the last `window_s` seconds, judged only
    from `after_s` seconds after the start and on at least `min_samples` requests."""

    window_s: float = 10.0
    after_s: float = 0.0
    min_samples: int = 20

    def text(self) -> str:
        after = f" after {self.after_s:g} s" if self.after_s else ""
        least = f"at least {self.min_samples} requests"
        return f"stops the run when broken over the last {self.window_s:g} s{after} ({least})"


@dataclass(frozen=True)
class Rule:
    id: str
    metric: str
    op: str
    value: float
    severity: Severity = "fail"
    required: bool = False
    per: Literal["entry", "all"] = "entry"
    select: tuple[Selector, ...] = (Selector(),)
    """Entries matching any of these selectors."""
    description: str = ""
    limits: Mapping[str, float] = field(default_factory=dict)
    origin: str = ""
    min_samples: int | None = None
    """The rule's own minimum sample count; None takes the thresholds file's (`DEFAULT_MIN_SAMPLES`)."""
    abort: Abort | None = None
    """Set when the rule may stop a run while it goes (see `Abort`)."""

    def describe_selection(self) -> str:
        return " or ".join(s.describe() for s in self.select)

    @property
    def is_system(self) -> bool:
        return self.metric in SYSTEM_METRICS

    def text(self) -> str:
        return f"{self.metric} {self.op} {format_value(self.metric, self.value)}"


@dataclass(frozen=True)
class RegressionSettings:
    """How a slowdown against the baseline is decided; see `_regression.py`."""

    alpha: float = 0.01
    min_effect: float = 0.05
    aggregate_min_effect: float = 0.20
    min_samples: int = 20
    max_samples: int = 50_000
    severity: Severity = "fail"


@dataclass(frozen=True)
class IssueSettings:
    """The seed's issue detection limits."""

    slow_mean_ms: float = 2000.0
    failure_ratio: float = 0.05
    cpu_percent: float = 80.0
    memory_percent: float = 85.0


@dataclass(frozen=True)
class Thresholds:
    rules: tuple[Rule, ...]
    regression: RegressionSettings = field(default_factory=RegressionSettings)
    issues: IssueSettings = field(default_factory=IssueSettings)
    source: str = ""
    min_samples: int = DEFAULT_MIN_SAMPLES


@dataclass(frozen=True)
class ThresholdResult:
    rule: Rule
    entry: str
    value: float | None
    status: Status
    message: str
    source: str = ""
    count: int | None = None
    """Samples the value was computed from (requests, rounds or streamed replies); None for resource
    metrics and rules that selected nothing."""


# --- parsing -----------------------------------------------------------------------------------------


def metric_kind(metric: str) -> str:
    """time, ratio, rate, count, percent or mb: decides the units a value may carry."""
    if metric in ("failure_ratio", "goodput"):
        return "ratio"
    if metric in ("count", "failures"):
        return "count"
    if metric in ("rps", "capacity") or metric.startswith("tokens_per_s"):
        return "rate"
    if metric in SYSTEM_METRICS:
        return "percent" if "percent" in metric else "mb"
    if metric.startswith("extra."):
        return "count"
    return "time"


def split_metric(metric: str) -> tuple[str | None, str]:
    """('ttft', 'p95') for 'ttft.p95', ('ttft', 'mean') for 'ttft', (None, 'p99.9') for 'p99.9'."""
    head, _, tail = metric.partition(".")
    if head in STREAM_QUANTITIES:
        return head, tail or "mean"
    return None, metric


def check_metric(metric: str) -> str | None:
    """None if the metric is known, else why not."""
    if metric in SYSTEM_METRICS or metric in (
        "count",
        "failures",
        "rps",
        "failure_ratio",
        "goodput",
        "capacity",
    ):
        return None
    if metric.startswith("extra.") and len(metric) > len("extra."):
        return None
    quantity, stat = split_metric(metric)
    if quantity is None and "." in metric and not _PERCENTILE.match(metric):
        head = metric.split(".")[0]
        return f"unknown quantity {head!r} (use ttft, itl, tokens_per_s or corrected before the dot)"
    if stat in ENTRY_STATS or _PERCENTILE.match(stat):
        return None
    return (
        f"unknown metric {metric!r}: use count, mean, median, min, max, p<N> (p95, p99.9), rps, failures, "
        "failure_ratio, goodput, ttft[.stat], itl[.stat], tokens_per_s[.stat], corrected[.stat], "
        "extra.<name>, capacity, " + ", ".join(SYSTEM_METRICS)
    )


def parse_value(metric: str, raw: object, where: str, source: str) -> float:
    if isinstance(raw, bool) or raw is None:
        raise ThresholdsError(f"must be a number, not {raw!r}", file=source, key=where)
    if isinstance(raw, int | float):
        return float(raw)
    m = _VALUE.match(str(raw))
    if not m:
        raise ThresholdsError(
            f"{raw!r} is not a number (units allowed: ms, s, %, MB, /s)", file=source, key=where
        )
    number, unit = float(m.group(1)), (m.group(2) or "").lower()
    kind = metric_kind(metric)
    allowed = {
        "time": ("ms", "s"),
        "ratio": ("%",),
        "percent": ("%",),
        "mb": ("mb",),
        "rate": ("/s",),
        "count": (),
    }
    if unit and unit not in allowed[kind]:
        raise ThresholdsError(
            f"unit {unit!r} does not fit metric {metric!r} (a {kind})", file=source, key=where
        )
    if unit == "s":
        return number * 1000.0
    if unit == "%" and kind == "ratio":
        return number / 100.0
    return number


def format_value(metric: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    kind = metric_kind(metric)
    if kind == "time":
        return f"{value:,.1f} ms" if value < 10_000 else f"{value / 1000:,.2f} s"
    if kind == "ratio":
        return f"{value * 100:.2f}%"
    if kind == "percent":
        return f"{value:.1f}%"
    if kind == "mb":
        return f"{value:,.1f} MB"
    if kind == "rate":
        return f"{value:,.2f}/s"
    if metric.startswith("extra."):
        return f"{value:,.4g}"
    return f"{value:,.0f}"


def _strings(value: object, where: str, source: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ThresholdsError("must be a string or a list of strings", file=source, key=where)


def parse_selector(raw: object, where: str, source: str) -> Selector:
    if not isinstance(raw, dict):
        raise ThresholdsError("must be a mapping", file=source, key=where)
    bad = sorted(set(raw) - SELECT_KEYS)
    if bad:
        raise ThresholdsError(
            f"unknown selector; use {', '.join(sorted(SELECT_KEYS))}", file=source, key=f"{where}.{bad[0]}"
        )
    sel = {k: _strings(v, f"{where}.{k}", source) for k, v in raw.items()}
    return Selector(
        names=sel.get("name", ()),
        exclude_names=sel.get("exclude_name", ()),
        request_types=sel.get("request_type", ()),
        exclude_request_types=sel.get("exclude_request_type", ()),
        groups=sel.get("group", ()),
        exclude_groups=sel.get("exclude_group", ()),
        tags=sel.get("tag", ()),
    )


def _seconds(raw: object, where: str, source: str) -> float:
    """A duration of the abort condition: a number of seconds, or '10s' / '500ms'."""
    if isinstance(raw, bool) or raw is None:
        raise ThresholdsError(f"must be a duration such as 10s, not {raw!r}", file=source, key=where)
    m = _VALUE.match(str(raw))
    if not m or (m.group(2) or "s").lower() not in ("s", "ms"):
        raise ThresholdsError(f"{raw!r} is not a duration (e.g. 10, 10s, 500ms)", file=source, key=where)
    value = float(m.group(1)) / (1000.0 if (m.group(2) or "").lower() == "ms" else 1.0)
    if value < 0:
        raise ThresholdsError(f"must not be negative, not {raw!r}", file=source, key=where)
    return value


def parse_abort(raw: object, where: str, source: str, rule: Rule) -> Abort:
    if not isinstance(raw, dict):
        raise ThresholdsError("must be a mapping such as {window: 10s, after: 5s}", file=source, key=where)
    bad = sorted(set(raw) - ABORT_KEYS)
    if bad:
        raise ThresholdsError(
            f"unknown key; abort takes {', '.join(sorted(ABORT_KEYS))}", file=source, key=f"{where}.{bad[0]}"
        )
    if rule.is_system or rule.metric.startswith("extra."):
        raise ThresholdsError(
            f"{rule.metric} is not measured while the run goes: only request metrics can stop a run",
            file=source,
            key=where,
        )
    window = _seconds(raw.get("window", Abort.window_s), f"{where}.window", source)
    if window <= 0:
        raise ThresholdsError("must be more than 0 s", file=source, key=f"{where}.window")
    after = _seconds(raw.get("after", Abort.after_s), f"{where}.after", source)
    samples = raw.get("min_samples", Abort.min_samples)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ThresholdsError(
            f"must be a whole number of at least 1, not {samples!r}", file=source, key=f"{where}.min_samples"
        )
    return Abort(window_s=window, after_s=after, min_samples=samples)


def parse_rule(raw: object, index: int, source: str, id_prefix: str = "") -> Rule:
    where = f"rules[{index}]"
    if not isinstance(raw, dict):
        raise ThresholdsError("must be a mapping", file=source, key=where)
    unknown = sorted(set(raw) - RULE_KEYS)
    if unknown:
        raise ThresholdsError(
            f"unknown key; a rule takes {', '.join(sorted(RULE_KEYS))}",
            file=source,
            key=f"{where}.{unknown[0]}",
        )
    for k in ("metric", "op", "value"):
        if k not in raw:
            raise ThresholdsError("is required", file=source, key=f"{where}.{k}")
    metric = raw["metric"]
    if not isinstance(metric, str) or (why := check_metric(metric)) is not None:
        raise ThresholdsError(
            why if isinstance(metric, str) and why else "must be a string", file=source, key=f"{where}.metric"
        )
    op = raw["op"]
    if op not in OPERATORS:
        raise ThresholdsError(f"{op!r} is not one of {', '.join(OPERATORS)}", file=source, key=f"{where}.op")
    value = parse_value(metric, raw["value"], f"{where}.value", source)
    severity = raw.get("severity", "fail")
    if severity not in ("fail", "warn"):
        raise ThresholdsError(
            f"{severity!r} is neither 'fail' nor 'warn'", file=source, key=f"{where}.severity"
        )
    required = raw.get("required", False)
    if not isinstance(required, bool):
        raise ThresholdsError("must be true or false", file=source, key=f"{where}.required")
    per = raw.get("per", "entry")
    if per not in ("entry", "all"):
        raise ThresholdsError(f"{per!r} is neither 'entry' nor 'all'", file=source, key=f"{where}.per")
    sel_raw = raw.get("select", {}) or {}
    selectors: tuple[Selector, ...]
    if isinstance(sel_raw, dict):
        selectors = (parse_selector(sel_raw, f"{where}.select", source),)
    elif isinstance(sel_raw, list) and sel_raw:
        selectors = tuple(parse_selector(s, f"{where}.select[{i}]", source) for i, s in enumerate(sel_raw))
    else:
        raise ThresholdsError(
            "must be a mapping or a non-empty list of mappings", file=source, key=f"{where}.select"
        )
    limits: dict[str, float] = {}
    if metric == "goodput":
        lim = raw.get("limits")
        if not isinstance(lim, dict) or not lim:
            raise ThresholdsError(
                "goodput needs limits, e.g. {response_time_ms: 500, ttft_ms: 1000}",
                file=source,
                key=f"{where}.limits",
            )
        for k, v in lim.items():
            if k not in GOODPUT_LIMITS:
                raise ThresholdsError(
                    f"unknown limit; use {', '.join(sorted(GOODPUT_LIMITS))}",
                    file=source,
                    key=f"{where}.limits.{k}",
                )
            limits[k] = parse_value("mean", v, f"{where}.limits.{k}", source)
    elif "limits" in raw:
        raise ThresholdsError("only a goodput rule takes limits", file=source, key=f"{where}.limits")
    rule_id = raw.get("id", f"{id_prefix}rule-{index + 1}")
    if not isinstance(rule_id, str) or not rule_id:
        raise ThresholdsError("must be a non-empty string", file=source, key=f"{where}.id")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ThresholdsError("must be a string", file=source, key=f"{where}.description")
    min_samples = raw.get("min_samples")
    if min_samples is not None:
        min_samples = _whole_at_least_1(min_samples, f"{where}.min_samples", source)
    rule = Rule(
        id=rule_id,
        metric=metric,
        op=op,
        value=value,
        severity=severity,
        required=required,
        per=per,
        select=selectors,
        description=description,
        limits=limits,
        origin=f"{source} {where}",
        min_samples=min_samples,
    )
    if "abort" in raw:
        rule = replace(rule, abort=parse_abort(raw["abort"], f"{where}.abort", source, rule))
    return rule


def _whole_at_least_1(value: object, key: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) or value < 1:
        raise ThresholdsError(f"must be a whole number of at least 1, not {value!r}", file=source, key=key)
    return int(value)


def _settings(raw: object, cls: type[Any], key: str, source: str) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ThresholdsError("must be a mapping", file=source, key=key)
    defaults = cls()
    values: dict[str, Any] = {}
    for k, v in raw.items():
        if not hasattr(defaults, k):
            names = ", ".join(defaults.__dataclass_fields__)
            raise ThresholdsError(f"unknown setting; use {names}", file=source, key=f"{key}.{k}")
        current = getattr(defaults, k)
        if isinstance(current, str):
            if v not in ("fail", "warn"):
                raise ThresholdsError(f"{v!r} is neither 'fail' nor 'warn'", file=source, key=f"{key}.{k}")
            values[k] = v
        elif isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise ThresholdsError(f"must be a non-negative number, not {v!r}", file=source, key=f"{key}.{k}")
        elif isinstance(current, int) and (v != int(v) or v < 1):
            raise ThresholdsError(
                f"must be a whole number of at least 1, not {v!r}", file=source, key=f"{key}.{k}"
            )
        elif k == "alpha" and not 0 < v < 1:
            raise ThresholdsError(
                f"must lie between 0 and 1 (exclusive), not {v!r}", file=source, key=f"{key}.{k}"
            )
        else:
            values[k] = type(current)(v)
    settings = cls(**values)
    low, high = getattr(settings, "min_samples", None), getattr(settings, "max_samples", None)
    if isinstance(low, int) and isinstance(high, int) and high < low:
        raise ThresholdsError(
            f"{high} is below min_samples ({low}): no entry could ever be compared",
            file=source,
            key=f"{key}.max_samples",
        )
    return settings


def parse_thresholds(data: object, source: str) -> Thresholds:
    """Validate a thresholds document (already parsed from YAML) into a `Thresholds`."""
    if data is None:
        raise ThresholdsError("is empty: it needs a 'rules' list", file=source)
    if not isinstance(data, dict):
        raise ThresholdsError(
            f"must be a mapping with a 'rules' list, not {type(data).__name__}", file=source
        )
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise ThresholdsError(f"unknown key; use {', '.join(sorted(TOP_KEYS))}", file=source, key=unknown[0])
    rules_raw = data.get("rules")
    if not isinstance(rules_raw, list):
        raise ThresholdsError("must be a list of rules", file=source, key="rules")
    rules = tuple(parse_rule(r, i, source) for i, r in enumerate(rules_raw))
    seen: set[str] = set()
    for i, r in enumerate(rules):
        if r.id in seen:
            raise ThresholdsError(f"duplicate rule id {r.id!r}", file=source, key=f"rules[{i}].id")
        seen.add(r.id)
    min_samples = data.get("min_samples", DEFAULT_MIN_SAMPLES)
    return Thresholds(
        rules=rules,
        regression=_settings(data.get("regression"), RegressionSettings, "regression", source),
        issues=_settings(data.get("issues"), IssueSettings, "issues", source),
        source=source,
        min_samples=_whole_at_least_1(min_samples, "min_samples", source),
    )


def load_thresholds(path: Path | str | None = None) -> Thresholds:
    """Read a thresholds YAML file; without a path, the shipped `analysis/thresholds.yaml`."""
    if path is None:
        text = resources.files("analysis").joinpath("thresholds.yaml").read_text(encoding="utf-8")
        source = "analysis/thresholds.yaml"
    else:
        p = Path(path)
        if not p.is_file():
            raise ThresholdsError("no such file", file=p)
        text = p.read_text(encoding="utf-8", errors="replace")
        source = str(p)
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ThresholdsError(f"is not valid YAML{at}: {exc.problem}", file=source) from None
    except yaml.YAMLError as exc:
        raise ThresholdsError(f"is not valid YAML: {exc}", file=source) from None
    return parse_thresholds(data, source)


def config_rules(
    config: Mapping[str, Any] | None, source: str = "performance_config.json"
) -> tuple[Rule, ...]:
    """Rules from the seed's performance_config.json `thresholds` block (times in seconds), in the block's
    order. The file is read through the library's one validator (`compliance_loadtest.config`), whose
    errors become `ThresholdsError`s naming the file and the key."""
    if not config:
        return ()
    validated = validate_config(config, source).thresholds
    rules = []
    for k in config.get("thresholds") or {}:
        where = f"thresholds.{k}"
        v = float(getattr(validated, k))
        if k == "api_response_time":
            rules.append(
                Rule(
                    id="config.api_response_time",
                    metric="mean",
                    op="<",
                    value=v * 1000.0,
                    select=(Selector(groups=("api",)),),
                    description=f"API mean response time < {v:g} s (performance_config.json)",
                    origin=f"{source} {where}",
                )
            )
        elif k == "database_query_time":
            rules.append(
                Rule(
                    id="config.database_query_time",
                    metric="mean",
                    op="<",
                    value=v * 1000.0,
                    select=(Selector(groups=("db",)),),
                    description=f"database query mean < {v:g} s (performance_config.json)",
                    origin=f"{source} {where}",
                )
            )
        else:
            rules.append(
                Rule(
                    id="config.memory_increase_mb",
                    metric="memory_increase_mb",
                    op="<",
                    value=v,
                    description=f"target memory increase < {v:g} MB (performance_config.json)",
                    origin=f"{source} {where}",
                )
            )
    return tuple(rules)


# --- evaluation --------------------------------------------------------------------------------------


def select_entries(stats: RunStats, selectors: Sequence[Selector]) -> list[EntryKey]:
    """Keys of the entries matching any selector, in the entries' order."""
    e = stats.entries
    keys = []
    for rt, name, group, tags in zip(e["request_type"], e["name"], e["group"], e["tags"], strict=True):
        if any(s.matches(str(rt), str(name), str(group), str(tags)) for s in selectors):
            keys.append((str(rt), str(name)))
    return keys


def _stat_of(d: Distribution | None, stat: str) -> float | None:
    if d is None or d.count == 0:
        return None
    if stat == "mean":
        return dist_mean(d)
    if stat == "median":
        return d.quantile(0.5)
    if stat == "min":
        return d.quantile(0.0)
    if stat == "max":
        return d.quantile(1.0)
    m = _PERCENTILE.match(stat)
    assert m is not None
    return d.quantile(float(m.group(1)) / 100.0)


def _quantity_table(stats: RunStats, quantity: str) -> Mapping[EntryKey, Distribution]:
    return {
        "ttft": stats.ttft,
        "itl": stats.itl,
        "tokens_per_s": stats.tokens_per_s,
        "corrected": stats.corrected,
    }[quantity]


def _row(stats: RunStats, key: EntryKey) -> Mapping[str, Any]:
    return stats.rows[key]


def _goodput(
    stats: RunStats, keys: Sequence[EntryKey], limits: Mapping[str, float]
) -> tuple[float | None, str]:
    """Share of requests that succeeded within every limit. Exact from the record; from histograms only
    for a response-time limit, approximated as share-within-limit times success ratio."""
    if stats.record is not None and stats.indices:
        # Every entry selected: no need to gather ten million row numbers.
        idx: npt.NDArray[np.intp] | slice = (
            slice(None)
            if set(keys) >= set(stats.indices)
            else np.concatenate(
                [stats.indices[k] for k in keys if k in stats.indices] or [np.array([], np.intp)]
            )
        )
        ok = stats.record["success"].to_numpy(dtype=bool)[idx]
        if not len(ok):
            return None, ""
        if "response_time_ms" in limits:
            ok = ok & (
                stats.record["response_time_ms"].to_numpy(dtype=np.float64)[idx] <= limits["response_time_ms"]
            )
        if "ttft_ms" in limits:
            if "ttft_ms" not in stats.record:
                return 0.0, "exact (no request of this run has a time to first token)"
            t = stats.record["ttft_ms"].to_numpy(dtype=np.float64)[idx]
            ok = ok & ~np.isnan(t) & (t <= limits["ttft_ms"])
        return float(ok.mean()), "exact"
    if set(limits) == {"response_time_ms"}:
        d = pooled(stats.response[k] for k in keys if k in stats.response)
        if d is None:
            return None, ""
        share = d.share_at_most(limits["response_time_ms"])
        if share is None:
            return None, ""
        rows = [_row(stats, k) for k in keys]
        n = sum(int(r["count"]) for r in rows)
        f = sum(int(r["failures"]) for r in rows)
        return share * (1 - f / n if n else 1.0), "histogram (approximate)"
    return None, ""


def _value(stats: RunStats, rule: Rule, keys: Sequence[EntryKey]) -> tuple[float | None, str]:
    """The rule's metric over some entries (one for per-entry rules), and where it came from."""
    metric = rule.metric
    rows = [_row(stats, k) for k in keys]
    count = sum(int(r["count"]) for r in rows)
    if metric == "count":
        return float(count), "counts"
    if metric == "failures":
        return float(sum(int(r["failures"]) for r in rows)), "counts"
    if metric == "failure_ratio":
        return (sum(int(r["failures"]) for r in rows) / count if count else None), "counts"
    if metric == "rps":
        vals = [float(r["rps"]) for r in rows if not math.isnan(float(r["rps"]))]
        return (sum(vals) if vals else None), "counts"
    if metric == "goodput":
        return _goodput(stats, keys, rule.limits)
    if metric.startswith("extra."):
        found = [stats.extras[k][metric[6:]] for k in keys if metric[6:] in stats.extras.get(k, {})]
        return (max(found) if found else None), "benchmark_results.json extra_info"
    quantity, stat = split_metric(metric)
    if quantity is not None:
        table = _quantity_table(stats, quantity)
        d = pooled(table[k] for k in keys if k in table) if len(keys) > 1 else table.get(keys[0])
        return _stat_of(d, stat), d.kind if d is not None else ""
    if len(keys) == 1 and stat in ("mean", "min", "max"):
        v = float(rows[0][stat])
        return (None if math.isnan(v) else v), rows[0]["source"]
    if len(keys) > 1 and stat == "mean":
        if not count:
            return None, ""
        return sum(float(r["mean"]) * int(r["count"]) for r in rows) / count, "counts"
    if len(keys) > 1 and stat in ("min", "max"):
        vals = [float(r[stat]) for r in rows if not math.isnan(float(r[stat]))]
        return ((min(vals) if stat == "min" else max(vals)) if vals else None), rows[0]["source"]
    d = stats.response.get(keys[0]) if len(keys) == 1 else pooled(stats.response[k] for k in keys)
    return _stat_of(d, stat), d.kind if d is not None else ""


def _samples(stats: RunStats, rule: Rule, keys: Sequence[EntryKey]) -> int:
    """How many samples the rule's value stands on: streamed replies for stream metrics, benchmark
    rounds or requests otherwise."""
    quantity = split_metric(rule.metric)[0]
    if quantity is not None:
        table = _quantity_table(stats, quantity)
        return sum(table[k].count for k in keys if k in table)
    return sum(int(_row(stats, k)["count"]) for k in keys)


def _applicable(stats: RunStats, rule: Rule, keys: list[EntryKey]) -> list[EntryKey]:
    """Entries the metric means something for: no latency rules on tokens/s entries, stream metrics only
    on entries with stream measures."""
    quantity = split_metric(rule.metric)[0]
    if quantity is not None:
        table = _quantity_table(stats, quantity)
        return [k for k in keys if k in table]
    if rule.metric in ("count", "failures", "failure_ratio", "rps"):
        return keys
    if rule.metric.startswith("extra."):
        return [k for k in keys if rule.metric[6:] in stats.extras.get(k, {})]
    measures = dict(zip(stats.key_list(), stats.entries["measure"], strict=True))
    return [k for k in keys if measures.get(k) != "tokens_per_s"]


def samples_needed(rule: Rule, min_samples: int = DEFAULT_MIN_SAMPLES) -> int:
    """Requests below which `rule` says "not enough samples" instead of a verdict: its own `min_samples`,
    else the file's; 0 for a metric that counts (count, failures, extra.*), which any number answers."""
    if rule.metric in UNCOUNTED_METRICS or rule.metric.startswith("extra."):
        return 0
    return rule.min_samples if rule.min_samples is not None else min_samples


def evaluate_rule(
    stats: RunStats, system: SystemMetrics, rule: Rule, min_samples: int = DEFAULT_MIN_SAMPLES
) -> list[ThresholdResult]:
    compare = OPERATORS[rule.op]
    needed = samples_needed(rule, min_samples)

    def judged(entry: str, value: float | None, source: str, count: int | None = None) -> ThresholdResult:
        if value is None or math.isnan(value):
            status: Status = "fail" if rule.required else "warn"
            return ThresholdResult(
                rule, entry, None, status, f"{rule.metric} cannot be computed from this run", source, count
            )
        held = compare(value, rule.value)
        shown = format_value(rule.metric, value)
        limit = f"{rule.op} {format_value(rule.metric, rule.value)}"
        n = f" (n = {count:,})" if count is not None else ""
        if count is not None and count < needed:
            return ThresholdResult(
                rule,
                entry,
                value,
                "fail" if rule.required else "warn",
                f"not enough samples: n = {count:,}, the rule needs {needed:,} (min_samples); "
                f"{shown} would {'meet' if held else 'break'} {limit}",
                source,
                count,
            )
        msg = f"{shown} {'meets' if held else 'breaks'} {limit}{n}"
        return ThresholdResult(rule, entry, value, "pass" if held else rule.severity, msg, source, count)

    if rule.metric == "capacity":
        # The sustained rate of a capacity search; a run without one cannot meet `capacity >= N/s`.
        return [judged("capacity search", system.capacity_rate, "capacity.json")]
    if rule.is_system:
        if not system.sampled:
            status: Status = "fail" if rule.required else "warn"
            return [
                ThresholdResult(
                    rule, "target", None, status, "no resource samples (resources.csv) in this run"
                )
            ]
        v = getattr(system, SYSTEM_METRICS[rule.metric])
        return [
            judged(
                "target" if not rule.metric.startswith("loadgen") else "load generator", v, "resources.csv"
            )
        ]
    selected = select_entries(stats, rule.select)
    keys = _applicable(stats, rule, selected)
    if not keys:
        status = "fail" if rule.required else "warn"
        why = (
            "selects no entry"
            if not selected
            else f"selects {len(selected)} entries, none with {rule.metric}"
        )
        return [
            ThresholdResult(
                rule,
                rule.describe_selection(),
                None,
                status,
                f"{why} of this run ({rule.describe_selection()})",
            )
        ]
    if rule.per == "all":
        value, source = _value(stats, rule, keys)
        return [judged(f"all of {len(keys)} selected", value, source, _samples(stats, rule, keys))]
    return [judged(entry_label(k), *_value(stats, rule, [k]), _samples(stats, rule, [k])) for k in keys]


def stopped_result(rules: Sequence[Rule], stopped: StoppedBy) -> ThresholdResult:
    """The failed result of the rule that stopped the run (run.json `stopped_by`), over its window."""
    rule = next((r for r in rules if r.id == stopped.rule), None)
    if rule is None:  # the run was judged with another thresholds file: still a failure, said plainly
        rule = Rule(id=stopped.rule, metric="count", op=">=", value=0.0, origin="run.json stopped_by")
    shown = format_value(rule.metric, stopped.value)
    message = (
        f"stopped the run at {stopped.at}: {shown} over the last {stopped.window_s:g} s "
        f"({stopped.samples} requests) breaks {rule.op} {format_value(rule.metric, rule.value)}"
    )
    return ThresholdResult(rule, f"{stopped.entry} (window)", stopped.value, "fail", message, "run.json")


STATUS_ORDER: Mapping[str, int] = {"fail": 0, "warn": 1, "no-data": 2, "pass": 3}


def evaluate(
    stats: RunStats,
    system: SystemMetrics,
    rules: Sequence[Rule],
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> tuple[ThresholdResult, ...]:
    """Every rule against the run, in rule order; per-entry rules give one result per entry."""
    return tuple(r for rule in rules for r in evaluate_rule(stats, system, rule, min_samples))


def worst_first(results: Sequence[ThresholdResult]) -> tuple[ThresholdResult, ...]:
    """Failures first, then warnings, then the rest, each in rule order: whatever shows only the first
    lines of a report shows what went wrong."""
    return tuple(sorted(results, key=lambda r: STATUS_ORDER[r.status]))
