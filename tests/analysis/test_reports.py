"""Every report parses and says the same thing: JSON against its schema, JUnit XML with ElementTree,
Markdown for a step summary, the console table; secrets never reach any of them."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

import analysis
from analysis import SchemaError, redact, redact_text, report_schema, schema_errors, validate_report
from analysis.__main__ import main
from compliance_loadtest.run_folder import Record
from tests.analysis.runs import (
    Entry,
    lognormal,
    record_frame,
    simple_run,
    write_record,
    write_resources,
    write_run_json,
)

PASSWORD = "hunter2-Sup3rSecret"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.sig"
THRESHOLDS = """
rules:
  - {id: login-p95, select: {name: /api/auth/login}, metric: p95, op: "<", value: 250ms}
  - {id: search-mean, select: {name: /api/evidence/search}, metric: mean, op: "<", value: 1s}
  - {id: ttft, select: {group: ai}, metric: ttft.p95, op: "<", value: 2s}
  - {id: failures, per: all, metric: failure_ratio, op: "<", value: 5%}
  - {id: memory, metric: memory_increase_mb, op: "<", value: 100}
  - {id: nothing-here, select: {name: /api/reports/*}, metric: mean, op: "<", value: 1s}
"""


def rich_run(d: Path, search_median: float, seed: int) -> Path:
    d.mkdir(parents=True)
    return simple_run(
        d,
        [
            Entry("POST", "/api/auth/login", lognormal(3000, 100, 0.3, seed), failures=3, tags="auth"),
            Entry("GET", "/api/evidence/search", lognormal(3000, search_median, 0.3, seed + 1)),
            Entry(
                "POST",
                "/api/chat/stream",
                lognormal(50, 900, 0.2, seed + 2),
                group="ai",
                ttft=lognormal(50, 200, 0.2, seed + 3),
                tokens=[40.0] * 50,
            ),
        ],
        options={
            "users": 3,
            "login_password": PASSWORD,
            "db_url": f"postgresql://app:{PASSWORD}@127.0.0.1:5432/test",
            "api_token": TOKEN,
        },
        host=f"http://admin:{PASSWORD}@127.0.0.1:8000",
    )


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("reports")
    base = rich_run(root / "base", 200, 1)
    cur = rich_run(root / "cur", 300, 11)
    (root / "t.yaml").write_text(THRESHOLDS)
    summary = root / "step-summary.md"
    import os

    os.environ["GITHUB_STEP_SUMMARY"] = str(summary)
    try:
        code = main(
            [
                str(cur),
                "--thresholds",
                str(root / "t.yaml"),
                "--baseline",
                str(base),
                "--out",
                str(root / "out"),
            ]
        )
    finally:
        del os.environ["GITHUB_STEP_SUMMARY"]
    out = root / "out"
    files = {p.name.split(".", 1)[1]: p for p in out.iterdir()}
    return {"code": code, "files": files, "summary": summary, "out": out, "run": cur, "root": root}


def test_the_run_fails_on_the_slowed_search_and_says_so_everywhere(reports: dict[str, object]) -> None:
    assert reports["code"] == 1
    files = reports["files"]
    assert isinstance(files, dict)
    assert set(files) == {"json", "md", "junit.xml", "html"}


def test_json_report_matches_its_schema_and_keeps_the_seed_keys(reports: dict[str, object]) -> None:
    files = reports["files"]
    assert isinstance(files, dict)
    doc = json.loads(files["json"].read_text())
    validate_report(doc)
    for key in ("summary", "results", "recommendations", "config"):
        assert key in doc
    assert set(doc["summary"]) >= {"test_start_time", "total_duration", "suites_run", "system_metrics"}
    assert doc["summary"]["test_start_time"] == "2026-09-21T14:13:20+00:00"
    assert doc["summary"]["total_duration"] == 10.0
    assert doc["summary"]["total_requests"] == 6050
    assert doc["percentile_source"]["kind"] == "exact"
    assert doc["verdict"] == {
        "status": "fail",
        "exit_code": 1,
        "invalid_reasons": [],
        "counts": doc["verdict"]["counts"],
    }
    counts = doc["verdict"]["counts"]["thresholds"]
    assert all(isinstance(n, int) for n in counts.values()), counts
    assert counts["pass"] == sum(t["status"] == "pass" for t in doc["thresholds"])
    by_rule = {t["rule"]: t for t in doc["thresholds"]}
    assert by_rule["search-mean"]["status"] == "pass"
    assert by_rule["ttft"]["status"] == "pass" and 150 < by_rule["ttft"]["value"] < 400
    assert by_rule["memory"]["value"] == 30.0
    assert by_rule["nothing-here"]["status"] == "warn" and by_rule["nothing-here"]["value"] is None
    regressions = {r["entry"]: r for r in doc["regressions"]}
    assert regressions["GET /api/evidence/search"]["regressed"] is True
    assert regressions["POST /api/auth/login"]["regressed"] is False
    assert any(i["kind"] == "regression" for i in doc["issues"])


def test_the_schema_rejects_a_report_that_breaks_it(reports: dict[str, object]) -> None:
    files = reports["files"]
    assert isinstance(files, dict)
    doc = json.loads(files["json"].read_text())
    doc["verdict"]["status"] = "maybe"
    del doc["summary"]["suites_run"]
    errors = schema_errors(doc, report_schema())
    assert "$.summary: missing required key 'suites_run'" in errors
    assert any(e.startswith("$.verdict.status: 'maybe' is not one of") for e in errors)
    with pytest.raises(SchemaError, match=r"key '\$\.summary'.*\(and 1 more\)"):
        validate_report(doc)


def test_junit_has_one_case_per_threshold_result_and_regression_check(reports: dict[str, object]) -> None:
    files = reports["files"]
    assert isinstance(files, dict)
    doc = json.loads(files["json"].read_text())
    root = ET.parse(files["junit.xml"]).getroot()
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {"validity", "thresholds", "regressions"}
    assert len(suites["thresholds"].findall("testcase")) == len(doc["thresholds"])
    assert len(suites["regressions"].findall("testcase")) == len(doc["regressions"]) == 3
    failed = [c for c in suites["regressions"].findall("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["GET /api/evidence/search: no slowdown"]
    assert suites["regressions"].get("failures") == "1"
    assert suites["validity"].find("testcase/error") is None
    skipped = [
        c.get("classname") for c in suites["thresholds"].iter("testcase") if c.find("skipped") is not None
    ]
    assert skipped == ["thresholds.nothing-here"]


def test_markdown_fits_a_step_summary(reports: dict[str, object]) -> None:
    files = reports["files"]
    assert isinstance(files, dict)
    md = files["md"].read_text()
    assert md.startswith("## ❌ Load test verdict: FAIL")
    assert "### Thresholds" in md and "| | rule | entry | value | limit | measured on | note |" in md
    assert "### Baseline comparison" in md and "GET /api/evidence/search" in md
    # p50, p95 and p99 of both sides, then the regression test's interval and verdict.
    row = re.compile(
        r"^\| ❌ \| GET /api/evidence/search \|( [\d.,]+ → [\d.,]+ ms \(\+[\d.]+%\) \|){3} ≥ \+\d"
    )
    assert any(row.match(line) for line in md.splitlines()), md
    assert "### Detected issues" in md and "regression" in md
    assert "`nothing-here`" in md
    summary = reports["summary"]
    assert isinstance(summary, Path)
    assert summary.read_text() == md


def test_no_secret_reaches_any_report(reports: dict[str, object], capsys: pytest.CaptureFixture[str]) -> None:
    out = reports["out"]
    assert isinstance(out, Path)
    texts = [p.read_text() for p in out.iterdir()]
    main([str(reports["run"]), "--report", "console"])
    texts.append(capsys.readouterr().out)
    for text in texts:
        assert PASSWORD not in text and TOKEN not in text
    doc = json.loads(next(p for p in out.iterdir() if p.suffix == ".json").read_text())
    opts = doc["config"]["run_options"]
    assert opts["login_password"] == "<redacted>" and opts["api_token"] == "<redacted>"
    assert opts["db_url"] == "postgresql://app:<redacted>@127.0.0.1:5432/test"
    assert doc["config"]["host"] == "http://admin:<redacted>@127.0.0.1:8000"
    assert opts["users"] == 3


def test_redaction_rules() -> None:
    assert redact({"tokens": 12, "token_type": "bearer", "access_token": "abc"}) == {
        "tokens": 12,
        "token_type": "bearer",
        "access_token": "<redacted>",
    }
    assert redact({"pass": 3, "fail": 1, "passphrase": "x", "pwd": "y"}) == {
        "pass": 3,
        "fail": 1,
        "passphrase": "<redacted>",
        "pwd": "<redacted>",
    }
    assert redact_text("host=db password=pw user=x") == "host=db password=<redacted> user=x"
    assert redact_text("Authorization: Bearer abc.def") == "Authorization: Bearer <redacted>"
    assert redact({"backend_database_url": "postgresql://u@h/db"}) == {
        "backend_database_url": "postgresql://u@h/db"
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("connect postgresql://app:pw123@db:5432/x failed",
         "connect postgresql://app:<redacted>@db:5432/x failed"),
        ("redis://:s3cret@127.0.0.1:6379/0", "redis://:<redacted>@127.0.0.1:6379/0"),
        ("GET /x?token=abc&page=2&api_key=k1", "GET /x?token=<redacted>&page=2&api_key=<redacted>"),
        ("dbname=app user=u password='p w' host=db", "dbname=app user=u password='<redacted>' host=db"),
        ('{"access_token": "eyJ.x.y", "token_type": "bearer", "tokens": 5}',
         '{"access_token": "<redacted>", "token_type": "bearer", "tokens": 5}'),
        ("client_secret=abc; apikey=xyz", "client_secret=<redacted>; apikey=<redacted>"),
        ("max_tokens=100, http://127.0.0.1:8000/api", "max_tokens=100, http://127.0.0.1:8000/api"),
    ],
)  # fmt: skip
def test_the_one_redactor_on_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    assert redact_text(expected) == expected  # redacting twice changes nothing more


def test_the_analysis_uses_the_librarys_one_redactor() -> None:
    from compliance_loadtest import redact as one

    assert redact is one.redact and redact_text is one.redact_text and one.REDACTED == "<redacted>"
    assert redact({"authorization": ["Bearer abc"], "cookie": "sid=1", "pass": "x"})["cookie"] == "<redacted>"
    assert redact({"db_url": "postgresql://a:b@h/x", "dsn": "host=h password=p"}) == {
        "db_url": "postgresql://a:<redacted>@h/x",
        "dsn": "host=h password=<redacted>",
    }


def test_reports_never_overwrite_earlier_ones(reports: dict[str, object]) -> None:
    from analysis.__main__ import write_reports

    out = reports["out"]
    assert isinstance(out, Path)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    analysed = analysis.analyse(analysis.load_run(str(reports["run"])), analysis.load_thresholds())
    (first,) = write_reports(analysed, out, ["json"])
    (second,) = write_reports(analysed, out, ["json"])
    assert first != second and first.exists() and second.exists()
    assert second.name.startswith(first.name.removesuffix(".json").split("-")[0])
    for name, data in before.items():
        assert (out / name).read_bytes() == data


def test_console_table_lists_entries_and_failed_rules(
    reports: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    root = reports["root"]
    assert isinstance(root, Path)
    code = main([str(reports["run"]), "--thresholds", str(root / "t.yaml"), "--report", "console"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0].startswith("Verdict: PASS (exit 0)")
    header = next(line for line in out.splitlines() if line.startswith("type"))
    assert header.split() == ["type", "name", "count", "fail", "mean", "p50", "p95", "p99", "max"]
    assert "Nothing to check in this run for 1 rule(s): nothing-here" in out


RARE_FAILS = """
rules:
  - {id: rare-p95, description: "Exports stay fast", select: {name: /api/export},
     metric: p95, op: "<", value: 5ms, min_samples: 1}
  - {id: login-fail-ratio, select: {name: /api/auth/login}, metric: failure_ratio, op: "<", value: 0.01%,
     severity: warn}
  - {id: login-ok, select: {name: /api/auth/login}, metric: mean, op: "<", value: 10s}
  - {id: nothing-here, select: {name: /api/reports/*}, metric: mean, op: "<", value: 1s}
"""


@pytest.fixture(scope="module")
def rare_failure_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Many busy entries and one failing entry of a single request: the case the busiest-first table
    used to hide."""
    root = tmp_path_factory.mktemp("rare")
    entries = [Entry("GET", f"/api/busy/{i}", lognormal(400 - i, 20, 0.3, i)) for i in range(45)]
    entries += [
        Entry("POST", "/api/auth/login", lognormal(500, 60, 0.3, 99), failures=5),
        Entry("GET", "/api/export", [900.0]),
    ]
    run = simple_run(root / "run", entries)
    (root / "t.yaml").write_text(RARE_FAILS)
    return run


def test_console_and_markdown_put_failed_and_warning_rules_then_their_entries_first(
    rare_failure_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t = str(rare_failure_run.parent / "t.yaml")
    assert main([str(rare_failure_run), "--thresholds", t, "--report", "console"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "Thresholds: 1 held, 1 failed, 1 warning, 1 with nothing to check."
    fail = next(i for i, line in enumerate(lines) if line.startswith("FAIL"))
    warn = next(i for i, line in enumerate(lines) if line.startswith("WARN"))
    named = lines.index("Entries the rules and issues name (ms; fail = share of the entry's requests):")
    other = next(i for i, line in enumerate(lines) if line.startswith("Other entries, busiest 40 of 45"))
    assert fail < warn < named < other
    assert lines[fail].split()[:5] == ["FAIL", "rare-p95", "GET", "/api/export", "900.0"]
    assert "1 request" in lines[fail] and "1 requests" not in lines[fail] and "< 5.0 ms" in lines[fail]
    assert "1.00% of requests failed" in lines[warn] and "500 requests" in lines[warn]
    # The failing entry (one request) is listed although forty busier entries fill the rest.
    named_rows = lines[named + 3 : other - 1]
    assert [row.split()[1] for row in named_rows] == ["/api/export", "/api/auth/login"]

    out = rare_failure_run.parent / "md"
    assert main([str(rare_failure_run), "--thresholds", t, "--report", "md", "--out", str(out)]) == 1
    md = next(out.glob("*.md")).read_text()
    assert "### Thresholds (1 held, 1 failed, 1 warning, 1 with nothing to check)" in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and "`" in line]
    assert [r.split("`")[1] for r in rows] == ["rare-p95", "login-fail-ratio", "login-ok"]
    assert md.index("### Entries the rules and issues name") < md.index(
        "### Other entries (busiest 15 of 45)"
    )
    assert "| GET /api/export | 1 | 0 (0.0%) | 900.0 |" in md
    assert "Nothing to check in this run: `nothing-here`." in md


@pytest.mark.parametrize(
    ("metric", "value", "entry", "shown"),
    [
        ("failure_ratio", 0.0, "BENCH db.connection_pool", "0.00% of rounds failed"),
        ("failure_ratio", 0.025, "GET /x", "2.50% of requests failed"),
        ("goodput", 0.97, "all of 3 selected", "97.00% of requests good"),
        ("extra.rss_growth_mb", 12.25, "BENCH api.large_dataset", "12.25 MB"),
        ("extra.requests_over_2s", 3.0, "BENCH api.x", "3 requests"),
        ("rps", 12.5, "GET /x", "12.50 requests/s"),
        ("tokens_per_s.p50", 41.0, "LLM sse tokens/s", "41.0 tokens/s"),
        ("cpu_percent", 63.2, "target", "63.2% of one CPU core"),
        ("p95", 47.9, "GET /x", "47.9 ms"),
        ("memory_increase_mb", 30.4, "target", "30.4 MB"),
    ],
)  # fmt: skip
def test_every_figure_carries_its_unit_and_a_share_says_of_what(
    metric: str, value: float, entry: str, shown: str
) -> None:
    from analysis._reports import figure

    assert figure(metric, value, entry) == shown


def test_html_baseline_table_shows_p50_p95_p99_and_the_tests_interval(reports: dict[str, object]) -> None:
    files = reports["files"]
    assert isinstance(files, dict)
    html = files["html"].read_text()
    table = html[html.index("<h2>Baseline comparison</h2>") :]
    table = table[: table.index("</table>")]
    for header in ("p50: baseline → now", "p95: baseline → now", "p99: baseline → now"):
        assert f"<th>{header}</th>" in table
    assert "<th>median shift, 95% lower bound</th>" in table
    first = table[table.index("<tbody>") :].split("</tr>")[0]
    assert "s-fail" in first and "GET /api/evidence/search" in first
    assert len(re.findall(r"[\d.,]+ → [\d.,]+ ms \(\+[\d.]+%\)", first)) == 3
    assert re.search(r"≥ \+\d+\.\d%", first)


def classed_run(d: Path, rows: dict[str, list[Entry]], counted: bool = True) -> Path:
    """A run folder whose record rows carry these user classes, resources sampled as in every run with
    a run folder; with `counted`, run.json counts the rows per class as the writer does."""
    frames = []
    for user_class, entries in rows.items():
        frames.append(record_frame(entries).assign(user_class=user_class))
    frame = pd.concat(frames, ignore_index=True).sort_values("timestamp", kind="stable")
    d.mkdir(parents=True)
    write_record(d, frame.reset_index(drop=True))
    write_resources(d, [200.0, 210.0, 220.0, 230.0], [30.0, 40.0, 50.0, 40.0])
    by_class = frame.loc[frame["user_class"] != "", "user_class"].value_counts().to_dict()
    record = Record(rows=len(frame), parts=2, user_classes=by_class if counted else {})
    write_run_json(d, record=record.to_json())
    return d


def suites_and_header(run: Path) -> tuple[list[str], str]:
    a = analysis.analyse(analysis.load_run(run), analysis.load_thresholds())
    assert a.system.sampled  # resources were sampled, as in every run with a run folder
    header = re.search(r"suites: (.*?) · files missing", analysis.to_html(a))
    assert header is not None
    return analysis.report_document(a)["summary"]["suites_run"], header.group(1)


def test_a_users_own_journey_is_load_testing_and_no_memory_test(tmp_path: Path) -> None:
    run = classed_run(
        tmp_path / "run",
        {
            "ReviewerJourney": [
                Entry("GET", "/api/users/dashboard", [20.0] * 40),
                Entry("POST", "/api/evidence/requests", [35.0] * 10),
            ],
            "": [Entry("GET", "/health", [1.0] * 5)],  # a request no class claimed names no suite
        },
    )
    assert suites_and_header(run) == (["Load Testing"], "Load Testing")


def test_a_database_stress_user_is_a_memory_test(tmp_path: Path) -> None:
    run = classed_run(
        tmp_path / "run",
        {
            "DatabaseStressUser": [Entry("SQL", "evidence by status (join)", [4.0] * 30)],
            "ComplianceUser": [Entry("GET", "/api/evidence/[id]", [12.0] * 30)],
        },
    )
    assert suites_and_header(run) == (
        ["Load Testing", "Memory Testing"],
        "Load Testing, Memory Testing",
    )


def test_concurrency_and_benchmark_users_name_their_own_suites(tmp_path: Path) -> None:
    run = classed_run(
        tmp_path / "run",
        {
            "StressTestUser": [Entry("POST", "/api/evidence/bulk", [50.0] * 20)],
            "ApiBenchmarkUser": [Entry("BENCH", "GET /api/users/dashboard", [8.0] * 5, group="bench-api")],
        },
    )
    assert suites_and_header(run)[0] == ["API Performance", "Concurrency Testing"]


def test_a_run_folder_without_class_counts_falls_back_to_the_groups(tmp_path: Path) -> None:
    """Run folders of earlier versions: the groups alone decide, and sampled resources no longer add
    a memory test."""
    run = classed_run(
        tmp_path / "run",
        {
            "DatabaseStressUser": [Entry("SQL", "evidence by status (join)", [4.0] * 30)],
            "ApiBenchmarkUser": [Entry("BENCH", "GET /api/users/dashboard", [8.0] * 5, group="bench-api")],
        },
        counted=False,
    )
    assert suites_and_header(run)[0] == ["API Performance", "Load Testing"]
