"""Bad profiles are refused before any load, with a message naming the file, stage and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from compliance_loadtest.errors import ProfileError
from compliance_loadtest.profiles import load_profile, parse_profile

GOOD_STAGE = "{duration: 10, users: 2, spawn_rate: 1}"
S1 = "stages:\n  - "  # a profile whose first stage follows


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("stages: [", r"bad\.yaml: not valid YAML"),
        ("- 1\n- 2\n", r"bad\.yaml: a profile is a mapping"),
        ("stages: []\n", r"bad\.yaml: key 'stages': must be a non-empty list"),
        (f"stage: [{GOOD_STAGE}]\n", r"bad\.yaml: key 'stage': unknown key"),
        (
            f"stages: [{GOOD_STAGE}, {{duration: 5, users: 2, spawn_rate: 1, user: 3}}]\n",
            r"stage 2: key 'user'",
        ),
        (
            S1 + "{duration: 10, users: -1, spawn_rate: 1}\n",
            r"stage 1: key 'users': must be at least 0",
        ),
        (S1 + "{duration: 10, users: 2}\n", r"stage 1: key 'spawn_rate': missing \(line 2\)"),
        (
            S1 + "{duration: 0, users: 2, spawn_rate: 1}\n",
            r"stage 1: key 'duration': must be above 0",
        ),
        (
            S1 + "{duration: ten, users: 2, spawn_rate: 1}\n",
            r"stage 1: key 'duration': must be a number",
        ),
        (S1 + "{duration: 1, users: 2.5, spawn_rate: 1}\n", r"stage 1: key 'users': must be a whole"),
        (f"stages: [{GOOD_STAGE}, {GOOD_STAGE}]\nstages: []\n", r"duplicate key 'stages'"),
        (
            S1 + "{duration: 1, users: 2, spawn_rate: 1, mix: {A: 0}}\n",
            r"stage 1: key 'mix\.A': must be a positive whole weight",
        ),
        (
            "model: arrival\nworkflow: W\nstages:\n  - {duration: 10, rate: 5}\n",
            r"stage 1: key 'max_users': an arrival rate needs capacity",
        ),
        ("model: arrival\nmax_users: 3\nstages:\n  - {duration: 10, rate: 5}\n", r"key 'workflow'"),
        (
            "model: arrival\nworkflow: W\nmax_users: 3\nstages:\n  - {duration: 10, rate: -5}\n",
            r"stage 1: key 'rate': must be at least 0",
        ),
        (f"max_users: 3\nstages: [{GOOD_STAGE}]\n", r"key 'max_users': only arrival-rate profiles"),
        (f"stop_when: {{window: 5}}\nstages: [{GOOD_STAGE}]\n", r"give failure_ratio, p95_ms or both"),
        (f"stop_when: {{failure_ratio: 2}}\nstages: [{GOOD_STAGE}]\n", r"key 'failure_ratio': is a ratio"),
    ],
)
def test_bad_profile_error_names_file_stage_and_key(text: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        parse_profile(text, source="bad.yaml")


def test_unknown_user_class_is_named_with_the_known_ones() -> None:
    text = f"stages:\n  - {GOOD_STAGE}\n  - {{duration: 1, users: 1, spawn_rate: 1, mix: {{Nope: 1}}}}\n"
    expected = r"p\.yaml: stage 2: key 'mix\.Nope': unknown user class 'Nope'; known: A, B"
    with pytest.raises(ProfileError, match=expected):
        parse_profile(text, source="p.yaml", known_classes=["A", "B"])


def test_unknown_workflow_class_is_refused() -> None:
    text = "model: arrival\nworkflow: Ghost\nmax_users: 2\nstages:\n  - {duration: 1, rate: 1}\n"
    with pytest.raises(ProfileError, match=r"key 'workflow': unknown user class 'Ghost'"):
        parse_profile(text, source="p.yaml", known_classes=["A"])


def test_unknown_profile_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ProfileError, match=r"no-such-profile: unknown profile; shipped profiles are .*ramp"):
        load_profile("no-such-profile")


def test_a_mistyped_profile_name_gets_the_closest_shipped_one() -> None:
    with pytest.raises(ProfileError, match=r"rmp: unknown profile \(did you mean 'ramp'\?\); shipped"):
        load_profile("rmp")


def test_missing_profile_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"gone\.yaml: no such file"):
        load_profile(str(tmp_path / "gone.yaml"))


def test_profile_read_from_a_path_is_named_after_its_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.yml"
    path.write_text(f"stages: [{GOOD_STAGE}]\n")
    assert load_profile(str(path)).name == "mine"
