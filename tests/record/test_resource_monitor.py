"""Resource samples: the target backend (by --target-pid, embedded, or found by its loopback port) and
every load-generator process are sampled each second into resources.csv and summed up in run.json."""

from __future__ import annotations

import json
from pathlib import Path

import compliance_loadtest
from compliance_loadtest.plugin.monitor import (
    SATURATED_SAMPLES,
    ResourceLog,
    find_listening_pid,
    is_loopback_host,
    target_address,
)
from compliance_loadtest.run_folder import Resources, RunInfo
from tests.backend_process import Backend
from tests.record.runs import (
    backend_count,
    headless,
    locust,
    read_outputs,
    reset_count,
    resource_rows,
    run,
    start,
    write_locustfile,
)
from tests.record.runs import finish as finish_process


def test_target_pid_and_load_generator_are_sampled_and_secrets_stay_out(
    backend: Backend, tmp_path: Path
) -> None:
    locustfile = write_locustfile(tmp_path)
    run_dir = tmp_path / "run"
    log = tmp_path / "run.log"
    secrets = ("--login-password", "pw-s3cr3t", "--db-url", "postgresql://u:hunter2@127.0.0.1:5432/x")
    cmd = headless(locustfile, backend.url, run_dir, 2, 4, "--target-pid", str(backend.pid), *secrets)
    proc = start(cmd, log, tmp_path)
    assert finish_process(proc, log) == 1, log.read_text()
    samples = resource_rows(run_dir)
    target = samples[samples["role"] == "target"]
    assert set(target["pid"]) == {backend.pid} and len(target) >= 2
    assert (
        (target["rss_mb"] > 1).all() and (target["threads"] >= 1).all() and (target["open_files"] > 0).all()
    )
    generator = samples[samples["role"] == "load-generator"]
    assert set(generator["pid"]) == {proc.pid} and set(generator["worker"]) == {"local"}
    meta, _, _ = read_outputs(run_dir)
    summed = meta["resources"]["target"]
    assert summed["pid"] == backend.pid and summed["samples"] == len(target)
    assert meta["resources"]["memory_increase_mb"] == summed["rss_increase_mb"]
    assert summed["rss_increase_mb"] == round(summed["rss_end_mb"] - summed["rss_start_mb"], 3)
    assert meta["load_generator_saturated"] is False
    assert any("--target-pid" in n for n in meta["notes"])
    for name in meta["files"]:
        text = (run_dir / name).read_bytes()
        assert b"pw-s3cr3t" not in text and b"hunter2" not in text, name
    assert meta["options"]["login_password"] == "<redacted>"
    assert meta["options"]["target_pid"] == backend.pid


def test_compliance_user_run_records_every_request_the_backend_received(
    backend: Backend, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    reset_count(backend)
    cmd = locust(
        "-f", compliance_loadtest.locustfile_path(), "--headless", "-u", "3", "-r", "3", "-t", "4s",
        "--stop-timeout", "10", "-H", backend.url, "--run-dir", str(run_dir), "ComplianceUser",
    )  # fmt: skip
    rc, log = run(cmd, tmp_path)
    assert rc == 0, log
    meta, summary, record = read_outputs(run_dir)
    assert len(record) == backend_count(backend) > 0
    assert summary["agrees_with_locust"] is True and meta["complete"] is True
    assert set(record["user_class"]) == {"ComplianceUser"}
    assert (record["group"] == "api").all()
    assert record["request_type"].isin(["GET", "POST", "PUT", "PATCH", "DELETE"]).all()
    # Found without --target-pid: the process listening on the target's loopback port.
    assert meta["resources"]["target"]["pid"] == backend.pid


def test_embedded_backend_is_sampled_as_the_target(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cmd = locust(
        "-f", compliance_loadtest.locustfile_path(), "--headless", "-u", "2", "-r", "2", "-t", "5s",
        "--stop-timeout", "10", "--run-dir", str(run_dir), "ComplianceUser",
    )  # fmt: skip
    rc, log = run(cmd, tmp_path, timeout=120)
    assert rc == 0, log
    meta, summary, _ = read_outputs(run_dir)
    assert any("embedded backend" in n for n in meta["notes"]), meta["notes"]
    target = resource_rows(run_dir).query("role == 'target'")
    assert len(target) >= 2 and set(target["pid"]) == {meta["resources"]["target"]["pid"]}
    assert summary["agrees_with_locust"] is True and summary["total"]["count"] > 0


def test_backend_is_found_by_its_loopback_port(backend: Backend) -> None:
    host, port = target_address(backend.url) or ("", 0)
    assert is_loopback_host(host)
    assert find_listening_pid(port) == backend.pid


def test_only_loopback_targets_count_as_local() -> None:
    assert all(map(is_loopback_host, ["127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"]))
    assert not any(map(is_loopback_host, ["10.0.0.1", "example.com", "192.0.2.7"]))
    assert target_address("https://api.example.com") == ("api.example.com", 443)
    assert target_address("http://[::1]:8080/x") == ("::1", 8080)


def _samples(worker: str, cpus: list[float]) -> list[tuple[float, str, str, int, float, float, int, int]]:
    return [(1.0 + i, "load-generator", worker, 42, 100.0 + i, c, 3, 10) for i, c in enumerate(cpus)]


def test_load_generator_is_saturated_only_after_consecutive_hot_samples(tmp_path: Path) -> None:
    log = ResourceLog(tmp_path / "resources.csv")
    hot = [95.0] * SATURATED_SAMPLES
    log.add(_samples("w-hot", [10.0, *hot, 20.0]))
    log.add(_samples("w-warm", [95.0, 95.0, 95.0, 95.0, 50.0, 95.0, 95.0, 95.0, 95.0]))
    log.close()
    assert log.saturated_workers() == ["w-hot"]
    rows = (tmp_path / "resources.csv").read_text().splitlines()
    assert rows[0] == "timestamp,role,worker,pid,rss_mb,cpu_percent,threads,open_files"
    assert len(rows) == 1 + (SATURATED_SAMPLES + 2) + 9
    hot_summary = next(p for p in log.processes() if p.worker == "w-hot")
    assert hot_summary.rss_increase_mb == SATURATED_SAMPLES + 1
    assert hot_summary.saturated and log.target() is None and len(log.load_generators()) == 2
    # JSON-ready for run.json, and read back as written.
    info = RunInfo(resources=Resources(load_generators=tuple(log.load_generators())))
    assert RunInfo.from_json(json.loads(json.dumps(info.to_json()))) == info


def test_remote_target_is_noted_not_sampled_and_record_can_be_switched_off(tmp_path: Path) -> None:
    # No users: nothing is sent to the (documentation-range) remote address; only the options are judged.
    # The guard refuses a remote --host at start unless it is allowed explicitly.
    run_dir = tmp_path / "run"
    cmd = headless(
        write_locustfile(tmp_path),
        "http://192.0.2.1:9",
        run_dir,
        0,
        2,
        "--no-request-record",
        "--allow-remote-host",
    )
    rc, log = run(cmd, tmp_path)
    assert rc == 0, log
    meta, summary, _ = read_outputs(run_dir)
    assert meta["notes"] == ["target http://192.0.2.1:9 is not on this machine's loopback: not sampled"]
    assert meta["resources"]["target"] is None and meta["resources"]["memory_increase_mb"] is None
    assert set(resource_rows(run_dir)["role"]) == {"load-generator"}
    assert meta["record"] == {
        "enabled": False,
        "rows": 0,
        "parts": 0,
        "agrees_with_locust": None,
        "user_classes": {},
    }
    assert summary["agrees_with_locust"] is None and "--no-request-record" in summary["note"]
    assert not list((run_dir / "requests").iterdir()) and meta["complete"] is True
