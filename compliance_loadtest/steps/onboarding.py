"""Onboarding an organisation: business profile, assessment with answers, completion, recommendations.

`onboard` walks the whole sequence in order, as a new customer does; each part is a step of its own.
"""

from __future__ import annotations

from typing import Any

from compliance_loadtest.steps.base import required

ASSESSMENT_QUESTIONS = 3


def create_business_profile(user: Any) -> str:
    """`POST /api/business-profiles`; the profile's id, also kept as `workspace.profile_id`."""
    payload = user.api.business_profile_payload(user.fake, user.rng)
    body = required(user, user.call("POST", "profiles.create", json=payload), "create business profile")
    profile_id = str(body["id"])
    user.workspace.profile_id = profile_id
    return profile_id


def start_assessment(user: Any, profile_id: str) -> str:
    """`POST /api/assessments` for the profile; the assessment session's id."""
    payload = user.api.assessment_payload(profile_id, user.rng)
    body = required(user, user.call("POST", "assessments.create", json=payload), "start assessment")
    return str(body["session_id"])


def answer(user: Any, session_id: str, question: int) -> None:
    """`POST /api/assessments/[id]/responses`: one answer, moving to the next stage."""
    payload = user.api.assessment_response_payload(user.fake, user.rng, question)
    body = user.call("POST", "assessments.respond", ids={"id": session_id}, json=payload)
    required(user, body, f"assessment answer {question}")


def complete_assessment(user: Any, session_id: str) -> dict[str, Any]:
    """`POST /api/assessments/[id]/complete`; fails unless it is completed with a score."""
    body = user.call(
        "POST",
        "assessments.complete",
        ids={"id": session_id},
        fields=("score",),
        check=lambda b: (
            None if b["status"] == "completed" else f"status {b['status']!r}, expected 'completed'"
        ),
    )
    return required(user, body, "complete assessment")


def recommendations(user: Any, profile_id: str) -> list[Any]:
    """`GET /api/frameworks/recommendations/[id]`; fails on an empty list."""
    body = user.call(
        "GET",
        "frameworks.recommendations",
        ids={"id": profile_id},
        check=lambda b: None if b else "no framework recommended",
    )
    return required(user, body, "framework recommendations")


def onboard(user: Any, questions: int = ASSESSMENT_QUESTIONS) -> None:
    """The whole onboarding, in order: profile, assessment, `questions` answers, completion,
    recommendations."""
    profile_id = create_business_profile(user)
    session_id = start_assessment(user, profile_id)
    for question in range(1, questions + 1):
        answer(user, session_id, question)
    complete_assessment(user, session_id)
    recommendations(user, profile_id)


def onboard_new_organisation(user: Any) -> None:
    """A new customer signs up: a fresh account and organisation, then the whole onboarding.

    With a shared account (`--login-email`) nothing is registered: the account onboards again."""
    if not user.shared_account() and user.register_users:
        required(user, True if user.sign_up() else None, "sign up")
        user.workspace.forget_evidence()
    onboard(user)
