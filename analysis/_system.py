"""Resource use of the target and the load generator, from `resources.csv` (one row per process
per second)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from compliance_loadtest.run_folder import ROLE_LOAD_GENERATOR, ROLE_TARGET, RunInfo


@dataclass(frozen=True)
class SystemMetrics:
    """Figures the thresholds and the issue detection use; NaN where the run did not sample them."""

    sampled: bool
    target_memory_increase_mb: float = math.nan
    target_rss_start_mb: float = math.nan
    target_rss_end_mb: float = math.nan
    target_rss_max_mb: float = math.nan
    target_cpu_mean: float = math.nan
    target_cpu_max: float = math.nan
    target_memory_percent_max: float = math.nan
    loadgen_cpu_mean: float = math.nan
    """The mean CPU of the busiest load-generator process (% of one core)."""
    loadgen_cpu_max: float = math.nan
    """The highest CPU any one load-generator process reached in a sample (% of one core)."""
    loadgen_rss_max_mb: float = math.nan
    samples: int = 0
    capacity_rate: float = math.nan
    """Sustained rate of a capacity search (capacity.json), iterations per second."""

    def as_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in self.__dict__.items()}


def _per_second(frame: pd.DataFrame, column: str) -> pd.Series:
    """Sum over the processes of a role, per whole second: a role may be several processes."""
    sec = np.floor(frame["timestamp"].to_numpy(dtype=np.float64))
    return frame.assign(_sec=sec).groupby("_sec")[column].sum()


def system_metrics(resources: pd.DataFrame | None, run_info: RunInfo | None = None) -> SystemMetrics:
    """Memory increase is end minus start of the target's RSS, summed over its processes (per pid, so a
    process that starts late counts from its own first sample)."""
    if resources is None or not len(resources):
        return SystemMetrics(sampled=False)
    target = resources[resources["role"] == ROLE_TARGET]
    loadgen = resources[resources["role"] == ROLE_LOAD_GENERATOR]
    out: dict[str, Any] = {"sampled": True, "samples": len(resources)}
    if len(target):
        ordered = target.sort_values("timestamp")
        by_pid = ordered.groupby("pid")["rss_mb"]
        out["target_rss_start_mb"] = float(by_pid.first().sum())
        out["target_rss_end_mb"] = float(by_pid.last().sum())
        out["target_memory_increase_mb"] = out["target_rss_end_mb"] - out["target_rss_start_mb"]
        rss = _per_second(ordered, "rss_mb")
        cpu = _per_second(ordered, "cpu_percent")
        out["target_rss_max_mb"] = float(rss.max())
        out["target_cpu_mean"] = float(cpu.mean())
        out["target_cpu_max"] = float(cpu.max())
        total_mb = run_info.system.memory_total_mb if run_info is not None else None
        if "memory_percent" in target:
            out["target_memory_percent_max"] = float(
                pd.to_numeric(target["memory_percent"], errors="coerce").max()
            )
        elif total_mb:
            out["target_memory_percent_max"] = float(rss.max()) / total_mb * 100.0
    if len(loadgen):
        # A load generator is one event loop per process, which one core bounds: whether it kept up is
        # how busy its busiest process was, not the sum over processes (three workers at 30% each are
        # not one at 90%; the sum grows with the workers, not with their load).
        per_process = loadgen.groupby(["worker", "pid"])["cpu_percent"]
        out["loadgen_cpu_mean"] = float(per_process.mean().max())
        out["loadgen_cpu_max"] = float(per_process.max().max())
        out["loadgen_rss_max_mb"] = float(_per_second(loadgen, "rss_mb").max())
    return SystemMetrics(**out)
