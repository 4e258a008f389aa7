"""Every profile shipped in profiles/ parses, validates, and keeps real durations and modest users."""

from __future__ import annotations

import pytest

from compliance_loadtest.profiles import available_profiles, load_profile

REQUIRED = {"smoke", "ramp", "step", "spike", "soak", "peak", "stress", "arrival-constant", "arrival-ramp"}
# The scenario classes the project ships (docs: scenario interfaces); a profile may name only these.
SCENARIO_CLASSES = {
    "ComplianceUser",
    "AIAssistantUser",
    "ReportingUser",
    "StressTestUser",
    "ChatWebSocketUser",
    "DatabaseStressUser",
    "PeakTrafficScenario",
    "ApiBenchmarkUser",
    "DbBenchmarkUser",
}


def test_the_required_profiles_are_shipped() -> None:
    assert set(available_profiles()) >= REQUIRED


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_shipped_profile_validates_against_the_scenario_classes(name: str) -> None:
    profile = load_profile(name, known_classes=SCENARIO_CLASSES)
    assert profile.name == name
    assert profile.description, "every profile says what it is for"
    assert 60 <= profile.duration <= 3600, "real durations are minutes"
    assert max(stage.users for stage in profile.stages) <= 50, "user counts stay modest"


def test_arrival_profiles_name_a_workflow_and_a_pool() -> None:
    for name in ("arrival-constant", "arrival-ramp"):
        profile = load_profile(name)
        assert profile.is_arrival and profile.workflow in SCENARIO_CLASSES
        assert all(stage.users > 0 and stage.arrival is not None for stage in profile.stages)


def test_stress_profile_has_a_stop_condition_and_peak_a_day_of_stages() -> None:
    stress = load_profile("stress")
    assert stress.stop_when is not None and stress.stop_when.failure_ratio and stress.stop_when.p95_ms
    users = [s.users for s in stress.stages]
    assert users == sorted(users) and len(set(users)) == len(users), "stress only adds users"
    peak = load_profile("peak")
    assert len(peak.stages) == 24
    curve = [s.users for s in peak.stages]
    assert curve.index(max(curve)) not in (0, 23), "the peak is during the day"


def test_loader_exports_exactly_its_public_names() -> None:
    import compliance_loadtest.profiles as module

    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and getattr(v, "__module__", "") == module.__name__
    }
    assert set(module.__all__) == public
