"""The `compliance-loadtest` command: build the plan, run it, and map every error to its exit code in
this one place (`errors.exit_code_for`: 2 bad input or usage, 3 no valid run could be made).

A usage error found in the command line or the config (before anything started) ends with a pointer
to `--help`; one found later (a user class the scenarios lack, Locust refusing an option) does not,
as `--help` would not show it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from compliance_loadtest.errors import LoadTestError, UsageError, exit_code_for
from compliance_loadtest.suite.plan import PROG, SuitePlan, build_plan
from compliance_loadtest.suite.run import run_suite

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """The `compliance-loadtest` command; returns its exit code."""
    plan: SuitePlan | None = None
    try:
        plan = build_plan(sys.argv[1:] if argv is None else argv)
        return run_suite(plan)
    except LoadTestError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr, flush=True)
        if isinstance(exc, UsageError) and plan is None:
            print(f"Try `{PROG} --help`.", file=sys.stderr)
        return exit_code_for(exc)
