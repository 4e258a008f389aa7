"""Every command-line option the library adds to Locust, registered once.

`add_options` is registered once, by `compliance_loadtest.plugin.install`. Each option also reads an
environment variable and can be set in `locust.conf`. Options shown in the web UI are marked; secrets
are masked there and redacted from every file the library writes.
"""

from __future__ import annotations

from typing import Any

from compliance_loadtest.profiles import available_profiles

# Options whose values never reach a log or a report.
SECRET_OPTIONS = frozenset({"login_password", "db_url", "backend_database_url"})


class ProfileChoices(list[str]):
    """The shipped profile names, which the web UI lists in a drop-down; the command line also takes
    any other value (a YAML path), which the profile loader checks."""

    def __contains__(self, value: object) -> bool:
        return True


class _Group:
    """An argument group that takes Locust's web-UI keywords (`include_in_web_ui`, `is_secret`).

    Locust's parser accepts them in its own `add_argument` only; an argparse group rejects them.
    """

    def __init__(self, parser: Any, title: str) -> None:
        self._group = parser.add_argument_group(title)

    def add_argument(
        self, *args: Any, include_in_web_ui: bool = True, is_secret: bool = False, **kw: Any
    ) -> Any:
        action = self._group.add_argument(*args, **kw)
        action.include_in_web_ui = include_in_web_ui
        action.is_secret = is_secret
        return action


def add_options(parser: Any) -> None:
    """Add the library's options to Locust's parser (an `init_command_line_parser` listener)."""
    g = _Group(parser, "compliance scenarios")
    g.add_argument(
        "--scenario-seed",
        # A string, not an int: the web UI sends every field back as text (an empty one when unset),
        # and Locust converts it to the type of the current value; any text is a valid seed.
        default="",
        env_var="CGPT_SCENARIO_SEED",
        help="Seed for Faker and random choices, so a run's data can be reproduced "
        "(default: random, printed)",
    )
    g.add_argument(
        "--login-email",
        default="",
        env_var="CGPT_LOGIN_EMAIL",
        help="Log every simulated user in as this account instead of registering one per user",
    )
    g.add_argument(
        "--login-password",
        default="",
        env_var="CGPT_LOGIN_PASSWORD",
        is_secret=True,
        help="Password for --login-email",
    )
    g.add_argument(
        "--api-paths",
        default="",
        env_var="CGPT_API_PATHS",
        help="YAML or JSON file mapping endpoint keys to the paths of a backend whose routes differ",
    )
    g.add_argument(
        "--allow-remote-host",
        action="store_true",
        default=False,
        env_var="CGPT_ALLOW_REMOTE_HOST",
        include_in_web_ui=False,
        help="Allow a --host that is not a loopback address (load goes only where you say)",
    )
    g.add_argument(
        "--db-url",
        default="",
        env_var="CGPT_DB_URL",
        is_secret=True,
        help="Database for DatabaseStressUser and DbBenchmarkUser: a postgresql:// URL or a SQLite path "
        "(default: the embedded backend's database)",
    )
    g.add_argument(
        "--report-timeout",
        type=float,
        default=60.0,
        env_var="CGPT_REPORT_TIMEOUT",
        help="Seconds a ReportingUser waits for a report job before failing it",
    )

    e = _Group(parser, "embedded reference backend (started when no --host is given)")
    e.add_argument(
        "--backend-database-url",
        default="",
        env_var="CGPT_BACKEND_DATABASE_URL",
        is_secret=True,
        include_in_web_ui=False,
        help="Storage of the embedded backend (default: SQLite in a temporary directory)",
    )
    e.add_argument(
        "--backend-demo-evidence",
        type=int,
        default=500,
        env_var="CGPT_BACKEND_DEMO_EVIDENCE",
        include_in_web_ui=False,
        help="Evidence rows seeded into the embedded backend's demo organisation",
    )
    e.add_argument(
        "--backend-llm-first-token-ms",
        type=float,
        default=None,
        env_var="CGPT_BACKEND_LLM_FIRST_TOKEN_MS",
        include_in_web_ui=False,
        help="Simulated model's time to first token in the embedded backend (default: the backend's)",
    )
    e.add_argument(
        "--backend-llm-token-ms",
        type=float,
        default=None,
        env_var="CGPT_BACKEND_LLM_TOKEN_MS",
        include_in_web_ui=False,
        help="Simulated model's delay per token in the embedded backend (default: the backend's)",
    )

    p = _Group(parser, "load profiles")
    p.add_argument(
        "--load-profile",
        default="",
        env_var="CGPT_LOAD_PROFILE",
        choices=ProfileChoices(["", *available_profiles()]),
        metavar="NAME|PATH",
        help="Stages of users over time, not Locust's Profile (a run label): a name from profiles/ "
        "(smoke, ramp, step, spike, soak, peak, stress, ...) or a YAML path. Without it, -u/-r/-t work "
        "as in plain Locust",
    )
    p.add_argument(
        "--profile-time-scale",
        type=float,
        default=1.0,
        env_var="CGPT_PROFILE_TIME_SCALE",
        help="Multiply every duration of the load profile by this factor (0.1 runs it ten times faster)",
    )

    v = _Group(parser, "live verdict")
    v.add_argument(
        "--thresholds",
        default="",
        env_var="CGPT_THRESHOLDS",
        include_in_web_ui=False,
        help="Thresholds file the run is judged by while it goes (Verdict tab, log; rules with `abort` stop "
        "the run), in the analysis's format (default: the shipped analysis/thresholds.yaml in the web UI; "
        "headless runs are judged while they go only with this option)",
    )
    v.add_argument(
        "--verdict-window",
        type=float,
        default=30.0,
        env_var="CGPT_VERDICT_WINDOW",
        include_in_web_ui=False,
        help="Seconds of the sliding window the live verdict shows beside the run so far (rules with "
        "`abort` use their own window)",
    )
    v.add_argument(
        "--no-live-verdict",
        action="store_true",
        default=False,
        env_var="CGPT_NO_LIVE_VERDICT",
        include_in_web_ui=False,
        help="Do not judge the run while it goes (no Verdict tab, no stop by an `abort` rule)",
    )

    r = _Group(parser, "run output")
    r.add_argument(
        "--run-dir",
        default="",
        env_var="CGPT_RUN_DIR",
        include_in_web_ui=False,
        help="Folder for the run's outputs: exact request record, resource samples, benchmark results, "
        "run.json",
    )
    r.add_argument(
        "--no-request-record",
        action="store_true",
        default=False,
        env_var="CGPT_NO_REQUEST_RECORD",
        include_in_web_ui=False,
        help="Do not write the exact per-request record into --run-dir",
    )
    r.add_argument(
        "--target-pid",
        type=int,
        default=None,
        env_var="CGPT_TARGET_PID",
        include_in_web_ui=False,
        help="Process id of the backend to sample (default: the embedded backend, or the process listening "
        "on the target's loopback port)",
    )
    r.add_argument(
        "--benchmark-config",
        default="",
        env_var="CGPT_BENCHMARK_CONFIG",
        include_in_web_ui=False,
        help="performance_config.json in the seed suite's format (warmup_iterations, benchmark_rounds, ...)",
    )
