"""Thresholds judge only what was measured enough: the warm-up (the spawn phase, or --warmup) is left
out, a rule below its minimum sample count says so instead of passing, every verdict shows its count,
and the reports list failures first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis import analyse, load_run, load_thresholds, parse_thresholds
from analysis.__main__ import main
from tests.analysis.runs import START, Entry, record_frame, write_record, write_resources, write_run_json

RULES = """
rules:
  - {id: login.mean, select: {name: /api/auth/login}, metric: mean, op: "<", value: 500ms}
  - {id: chat.mean, select: {name: /api/chat/send}, metric: mean, op: "<", value: 3s}
"""


def demo_like_run(d: Path) -> Path:
    """12 users at 6/s (2 s of spawn phase): the first login, at t = 0, took a minute; the one chat
    message of the run, at t = 5 s, took 3.6 s; the other 49 logins 20 ms each, spread over 10 s."""
    frame = record_frame(
        [
            Entry("POST", "/api/auth/login", [60_000.0] + [20.0] * 49),
            Entry("POST", "/api/chat/send", [3600.0]),
        ]
    )
    frame.loc[frame["name"] == "/api/chat/send", "timestamp"] = START + 5.0
    write_record(d, frame.sort_values("timestamp").reset_index(drop=True))
    write_resources(d, [200.0, 210.0], [30.0, 40.0])
    write_run_json(d, options={"num_users": 12, "spawn_rate": 6.0, "run_time": 10})
    return d


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return demo_like_run(tmp_path / "run")


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    p = tmp_path / "rules.yaml"
    p.write_text(RULES)
    return p


def test_a_slow_warm_up_sample_and_a_rule_below_its_minimum_pass_with_warnings_that_say_so(
    run: Path, rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(run), "--thresholds", str(rules), "--report", "console"]) == 0
    out = capsys.readouterr().out
    assert "Verdict: PASS" in out
    assert (
        "not enough samples: n = 1, the rule needs 5 (min_samples); 3,600.0 ms would break < 3,000.0 ms"
        in out
    )
    assert "10 requests that started in the first 2 s (spawn phase: 12 users at 6/s)" in out
    a = analyse(load_run(run), load_thresholds(rules))
    (login,) = [r for r in a.results if r.rule.id == "login.mean"]
    assert (login.status, login.count, login.value) == ("pass", 40, pytest.approx(20.0))
    assert login.message == "20.0 ms meets < 500.0 ms (n = 40)"
    (chat,) = [r for r in a.results if r.rule.id == "chat.mean"]
    assert (chat.status, chat.count) == ("warn", 1)


def test_without_the_warm_up_the_slow_start_fails_and_is_listed_before_the_entries(
    run: Path, rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(run), "--thresholds", str(rules), "--warmup", "0", "--report", "console"]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    fail = next(i for i, line in enumerate(lines) if line.startswith("FAIL"))
    warn = next(i for i, line in enumerate(lines) if line.startswith("WARN"))
    table = next(i for i, line in enumerate(lines) if line.startswith("type "))
    assert fail < warn < table
    assert " ".join(lines[fail].split()).endswith("1,219.6 ms < 500.0 ms 50 requests")


def test_an_explicit_warm_up_and_the_markdown_and_json_reports_carry_counts(
    run: Path, rules: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = [str(run), "--thresholds", str(rules), "--warmup", "5s", "--report", "md,json", "--out", str(out)]
    assert main(args) == 0
    (md,) = out.glob("*.md")
    text = md.read_text()
    # The warning first, the pass after it; the logins from t = 5 s on are 25.
    assert text.index("not enough samples: n = 1") < text.index("| 25 requests |")
    (js,) = out.glob("*.json")
    rows = {r["rule"]: r for r in json.loads(js.read_text())["thresholds"]}
    assert rows["login.mean"]["count"] == 25 and rows["chat.mean"]["count"] == 1
    assert rows["chat.mean"]["status"] == "warn"


def test_a_required_rule_below_its_minimum_fails(run: Path, tmp_path: Path) -> None:
    p = tmp_path / "required.yaml"
    p.write_text(
        "rules:\n  - {id: chat.mean, select: {name: /api/chat/send}, metric: mean, op: '<', value: 10s,"
        " required: true}\n"
    )
    a = analyse(load_run(run), load_thresholds(p))
    assert [(r.status, r.count) for r in a.results] == [("fail", 1)]
    assert a.exit_code == 1


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("min_samples: 1\n", "pass"),  # the file's default lowered: one sample judges
        ("min_samples: 50\n", "warn"),  # 40 logins after the warm-up are not enough
        ("", "pass"),
    ],
)
def test_the_default_minimum_is_set_per_file_and_overridden_per_rule(
    run: Path, tmp_path: Path, text: str, status: str
) -> None:
    p = tmp_path / "t.yaml"
    p.write_text(
        text + "rules:\n"
        "  - {id: login, select: {name: /api/auth/login}, metric: mean, op: '<', value: 500ms}\n"
        "  - {id: chat, select: {name: /api/chat/send}, metric: mean, op: '<', value: 5s, min_samples: 1}\n"
    )
    a = analyse(load_run(run), load_thresholds(p))
    got = {r.rule.id: r.status for r in a.results}
    assert got == {"login": status, "chat": "pass"}


def test_counts_have_no_minimum(run: Path, tmp_path: Path) -> None:
    p = tmp_path / "t.yaml"
    p.write_text(
        "rules:\n  - {id: chat, select: {name: /api/chat/send}, metric: count, op: '>=', value: 1}\n"
    )
    assert [r.status for r in analyse(load_run(run), load_thresholds(p)).results] == ["pass"]


def test_a_run_whose_requests_all_fall_in_the_warm_up_is_invalid_and_says_why(
    run: Path, rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(run), "--thresholds", str(rules), "--warmup", "60s", "--report", "console"]) == 3
    assert "all 51 requests started within the warm-up (the first 60 s" in capsys.readouterr().out


def test_locusts_outputs_do_not_bring_back_a_warm_up_that_held_every_request(
    run: Path, rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run folder also holds locust.json, counting the same requests as the record: when the
    warm-up leaves out all of them, the analysis must not fall back to Locust's counts."""
    (run / "locust.json").write_text(
        json.dumps(
            [
                {
                    "name": name,
                    "method": "POST",
                    "num_requests": len(times),
                    "num_failures": 0,
                    "total_response_time": sum(times),
                    "max_response_time": max(times),
                    "min_response_time": min(times),
                    "response_times": {str(round(t)): times.count(t) for t in set(times)},
                }
                for name, times in [
                    ("/api/auth/login", [60_000.0] + [20.0] * 49),
                    ("/api/chat/send", [3600.0]),
                ]
            ]
        )
    )
    assert analyse(load_run(run), load_thresholds(rules), warmup_s=0).stats.total_count == 51
    assert main([str(run), "--thresholds", str(rules), "--warmup", "60s", "--report", "console"]) == 3
    out = capsys.readouterr().out
    assert "all 51 requests started within the warm-up (the first 60 s" in out
    assert "Percentiles from: none" in out
    assert "/api/auth/login" not in out.split("Thresholds:")[1]


def test_benchmark_rounds_are_never_part_of_the_warm_up(tmp_path: Path) -> None:
    d = tmp_path / "run"
    write_record(
        d, record_frame([Entry("BENCH", "api.dashboard", [5.0] * 10), Entry("GET", "/x", [1.0] * 10)])
    )
    write_run_json(d)
    a = analyse(load_run(d), parse_thresholds({"rules": []}, "t"), warmup_s=5.0)
    counts = dict(zip(a.stats.entries["name"], a.stats.entries["count"], strict=True))
    assert counts == {"api.dashboard": 10, "/x": 5}
    assert a.warmup.excluded == 5


@pytest.mark.parametrize("value", ["soon", "-1s", "nan", "inf"])
def test_a_bad_warmup_is_a_usage_error(run: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    assert main([str(run), f"--warmup={value}", "--report", "none"]) == 2
    err = capsys.readouterr().err
    assert f"key '--warmup': {value!r} is not a duration" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("min_samples: 0\nrules: []\n", "min_samples"),
        ("rules: [{metric: mean, op: '<', value: 1, min_samples: 2.5}]\n", "rules[0].min_samples"),
    ],
)
def test_a_bad_minimum_names_its_key(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str
) -> None:
    p = tmp_path / "t.yaml"
    p.write_text(text)
    assert main([str(run), "--thresholds", str(p), "--report", "none"]) == 2
    assert f"key '{key}': must be a whole number of at least 1" in capsys.readouterr().err
