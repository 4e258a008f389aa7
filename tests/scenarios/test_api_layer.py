"""One API layer: stable stat names, paths filled from ids, and a mapping (file or subclass) that points
every scenario at a backend whose routes differ; a bad mapping is refused with exit 2 and its file and key."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from faker import Faker

from compliance_loadtest.api import Api, ApiPathsError
from tests.backend_process import Backend
from tests.scenarios.locust_run import locust, run_users, stats_of

RUSH_ONLY = '{"user_class_name": "PeakTrafficScenario", "tasks": ["morning_rush"]}'


def test_stat_names_group_ids_and_paths_fill_them() -> None:
    api = Api()
    assert api.name("evidence.get") == "/api/evidence/[id]"
    assert api.path("evidence.get", id="abc") == "/api/evidence/abc"
    assert api.name("reports.download") == "/api/reports/[id]/download"
    assert api.path("users.dashboard") == api.name("users.dashboard") == "/api/users/dashboard"
    assert all("{" not in api.name(k) for k in Api.PATHS)


def test_a_subclass_overrides_paths_and_names_follow() -> None:
    class V2Api(Api):
        PATHS = {**Api.PATHS, "evidence.get": "/v2/documents/{id}"}

    api = V2Api()
    assert api.path("evidence.get", id="7") == "/v2/documents/7"
    assert api.name("evidence.get") == "/v2/documents/[id]"
    assert api.path("evidence.list") == "/api/evidence"


def test_payloads_are_reproducible_from_the_seeds() -> None:
    def payloads(seed: int) -> list[dict[str, object]]:
        rng, fake = random.Random(seed), Faker()
        fake.seed_instance(seed)
        return [
            Api.evidence_payload(fake, rng),
            Api.business_profile_payload(fake, rng),
            Api.report_payload(rng),
        ]

    assert payloads(3) == payloads(3)
    assert payloads(3) != payloads(4)


def test_a_call_with_a_mistyped_key_names_the_closest_key_and_every_key() -> None:
    with pytest.raises(KeyError) as raised:
        Api().routes["evidence.lst"]
    message = raised.value.args[0]
    assert message.startswith(
        "unknown endpoint key 'evidence.lst' (did you mean 'evidence.list'?); known keys: "
    )
    assert message.endswith(", ".join(sorted(Api.PATHS)))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"paths": {"evidence.fetch": "/x/{id}"}}', r"map\.json: unknown endpoint key 'evidence\.fetch'"),
        (
            '{"paths": {"evidence.get": "/x/{evidence}"}}',
            r"map\.json: key 'evidence\.get'.*must contain \{id\}",
        ),
        (
            '{"paths": {"evidence.list": "x"}}',
            r"map\.json: key 'evidence\.list': path must be a string starting",
        ),
        ('{"routes": {}}', r"map\.json: unknown endpoint key 'routes'; known keys: analytics"),
        (
            '{"paths": {"evidence.lst": "/x"}}',
            r"map\.json: unknown endpoint key 'evidence\.lst' \(did you mean 'evidence\.list'\?\);",
        ),
        ('["/api"]', r"map\.json: expected a mapping"),
        ("{not json", r"map\.json: not valid JSON or YAML"),
    ],
)
def test_bad_mapping_files_name_the_file_and_the_key(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "map.json"
    path.write_text(content)
    with pytest.raises(ApiPathsError, match=message):
        Api.from_file(path)


def test_missing_mapping_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ApiPathsError, match=r"nowhere\.yaml: cannot read"):
        Api.from_file(tmp_path / "nowhere.yaml")


def test_yaml_mapping_routes_every_request_of_a_run(scenario_backend: Backend, tmp_path: Path) -> None:
    # Another backend's routes, simulated: one path that only answers through a redirect on the same
    # host (followed), one the backend does not serve (so it fails under its new name).
    mapping = tmp_path / "paths.yaml"
    mapping.write_text(
        "paths:\n  users.dashboard: /api/users/dashboard/\n  compliance.status: /v9/compliance\n"
    )
    args = ["-f", "locust_scenarios", "--headless", "-u", "2", "-r", "2", "-t", "3s", "--only-summary"]
    args += ["--host", scenario_backend.url, "--api-paths", str(mapping), "--csv", str(tmp_path / "run")]
    # Both mapped keys are read only by the morning rush (3 draws in 4); with waits of 0.5-2 s its two
    # users draw about five times in 3 s, so about one run in 900 never rushed: pinned to it, every
    # draw sends both requests (the crunch sends neither, so nothing the check covers is left out).
    proc = locust([*args, "PeakTrafficScenario", "--config-users", RUSH_ONLY])  # last: takes what follows
    assert proc.returncode == 1, proc.stderr[-2000:]  # /v9/compliance does not exist here
    stats = stats_of(proc)
    assert stats.requests("GET", "/api/users/dashboard/") > 0
    assert stats.failed("GET", "/api/users/dashboard/") == 0
    assert stats.requests("GET", "/v9/compliance") == stats.failed("GET", "/v9/compliance") > 0
    assert stats.requests("GET", "/api/users/dashboard") == 0
    assert stats.requests("GET", "/api/compliance/status") == 0


def test_bad_mapping_stops_the_run_with_exit_2(scenario_backend: Backend, tmp_path: Path) -> None:
    mapping = tmp_path / "routes.json"
    mapping.write_text(json.dumps({"paths": {"evidence.fetch": "/x"}}))
    args = ["-f", "locust_scenarios", "--headless", "-u", "1", "-t", "3s", "--host", scenario_backend.url]
    proc = locust([*args, "--api-paths", str(mapping), "--csv", str(tmp_path / "run")])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "routes.json: unknown endpoint key 'evidence.fetch'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "All users spawned" not in proc.stderr


def test_a_host_given_with_a_trailing_slash_sends_the_same_paths(scenario_backend: Backend) -> None:
    result = run_users(scenario_backend.url + "/", "peak_traffic:PeakTrafficScenario", seconds=2, wait=0.2)
    assert result.requests("GET", "/api/users/dashboard") > 0
    assert result.errors == [], result.errors
