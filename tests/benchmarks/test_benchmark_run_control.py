"""How a benchmark run starts and stops: a bad config stops it with 2, the benchmark users stay out of
ordinary mixed runs unless named, and a run started by itself in the web UI ends by itself too."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.backend_process import Backend, free_port
from tests.benchmarks.locust_run import SCENARIOS, run_locust, write_config

IDLE_USER = """
from locust import User, constant, task


class IdleUser(User):
    wait_time = constant(0.2)

    @task
    def tick(self):
        self.environment.events.request.fire(
            request_type="IDLE", name="tick", response_time=1.0, response_length=0, exception=None, context={}
        )
"""


def test_bad_benchmark_config_exits_2_naming_file_and_key(run_dir: Path) -> None:
    config = write_config(run_dir / "performance_config.json", warmup_iterations=1, benchmark_rounds=0)
    run = run_locust(
        run_dir,
        "ApiBenchmarkUser",
        "-u",
        "1",
        "-H",
        "http://127.0.0.1:9",
        "--benchmark-config",
        str(config),
        timeout=60,
    )
    assert run.returncode == 2, run.output[-2000:]
    assert f"{config}: key 'benchmark_rounds': expected a whole number of at least 1, got 0" in run.output
    assert not (run_dir / "benchmark_results.json").exists()


def test_benchmark_users_stay_out_of_a_mixed_run_unless_named(tmp_path: Path, run_dir: Path) -> None:
    idle = tmp_path / "idle_user.py"
    idle.write_text(IDLE_USER)
    files = ",".join([str(idle), str(SCENARIOS / "api_benchmark.py"), str(SCENARIOS / "db_benchmark.py")])
    run = run_locust(
        run_dir, "-u", "3", "-r", "3", "-H", "http://127.0.0.1:9", locustfiles=files, run_time="2s"
    )

    assert run.returncode == 0, run.output[-2000:]
    assert "ApiBenchmarkUser, DbBenchmarkUser left out of the mix" in run.output
    stats = run.stats()
    assert int(stats[("IDLE", "tick")]["Request Count"]) > 0
    assert not [key for key in stats if key[0] == "BENCH"]
    run_json = json.loads((run_dir / "run.json").read_text())
    assert run_json["user_classes"] == ["IdleUser"]
    assert not (run_dir / "benchmark_results.json").exists()


def test_db_benchmark_with_an_unusable_database_url_exits_2_without_waiting(run_dir: Path) -> None:
    run = run_locust(run_dir, "DbBenchmarkUser", "-u", "1", "-H", "http://127.0.0.1:9",
                     "--db-url", "mysql://127.0.0.1/compliance", timeout=60)  # fmt: skip
    assert run.returncode == 2, run.output[-2000:]
    assert "--db-url: unsupported database URL scheme 'mysql'" in run.output
    # Refused before any user starts: neither a benchmark round nor the --run-time limit.
    assert "All users spawned" not in run.output and "--run-time limit reached" not in run.output


def test_a_load_profile_whose_mix_names_a_benchmark_user_runs_it(tmp_path: Path, run_dir: Path) -> None:
    idle = tmp_path / "idle_user.py"
    idle.write_text(IDLE_USER)
    profile = tmp_path / "with-benchmarks.yaml"
    profile.write_text(
        "description: idle users beside one database benchmark user\n"
        "stages:\n"
        "  - {duration: 60, users: 2, spawn_rate: 2, mix: {IdleUser: 1, DbBenchmarkUser: {fixed_count: 1}}}\n"
    )
    database = tmp_path / "bench.db"
    sqlite3.connect(database).close()
    config = write_config(run_dir / "performance_config.json", warmup_iterations=0, benchmark_rounds=1)
    files = ",".join([str(idle), str(SCENARIOS / "db_benchmark.py"), str(SCENARIOS / "load_profile.py")])
    options = ["--load-profile", str(profile), "--db-url", str(database), "--benchmark-config", str(config)]
    run = run_locust(run_dir, "-H", "http://127.0.0.1:9", *options, locustfiles=files)

    assert run.returncode == 0, run.output[-2000:]
    assert run.ended_by_itself, run.output[-2000:]  # long before the profile's 60 s
    assert "left out of the mix" not in run.output
    assert len(run.results()["benchmarks"]) == 18
    assert int(run.stats()[("IDLE", "tick")]["Request Count"]) > 0


def test_an_autostarted_web_ui_run_ends_when_the_benchmarks_are_done_and_autoquit_quits(
    backend: Backend, run_dir: Path
) -> None:
    """`--autostart --autoquit 1`, as a CI job may run Locust with its web UI: the test stops once the
    benchmark user has done its rounds, and Locust quits a second later, long before the run time."""
    config = write_config(run_dir / "performance_config.json", warmup_iterations=0, benchmark_rounds=1)
    run = run_locust(
        run_dir, "ApiBenchmarkUser", "-u", "1", "-r", "1", "-H", backend.url,
        "--benchmark-config", str(config), web_ui_port=free_port(), timeout=90,
    )  # fmt: skip

    assert run.returncode == 0, run.output[-3000:]
    assert "All 1 benchmark users finished their rounds: stopping the run" in run.output, run.output[-3000:]
    assert run.ended_by_itself and "--autoquit time reached" not in run.output, run.output[-3000:]
    results = run.results()
    assert results["failed_benchmarks"] == [] and len(results["benchmarks"]) == 14
    assert json.loads((run_dir / "run.json").read_text())["ended_by"] == "normal"
