"""Settings parse from `CGPT_*` variables and reject bad values naming the variable; the package
exports what its `__all__` says."""

from __future__ import annotations

import pytest

import reference_backend
from reference_backend import RateLimit, Settings, SettingsError, create_app


def test_package_all_matches_its_exports() -> None:
    assert sorted(reference_backend.__all__) == ["RateLimit", "Settings", "SettingsError", "create_app"]
    for name in reference_backend.__all__:
        assert hasattr(reference_backend, name)


def test_settings_from_env() -> None:
    s = Settings.from_env(
        {
            "CGPT_TOKEN_TTL_SECONDS": "2.5",
            "CGPT_LLM_FIRST_TOKEN_MS": "0",
            "CGPT_ADMIN": "yes",
            "CGPT_RATE_LIMIT": "20/s",
            "CGPT_FAULTS": '{"faults": [{"path": "/health", "latency_ms": 5}]}',
            "DATABASE_URL": "postgresql://postgres@127.0.0.1/test",
        }
    )
    assert (s.token_ttl_seconds, s.llm_first_token_ms, s.admin) == (2.5, 0.0, True)
    assert s.rate_limit == RateLimit(20, 1.0)
    assert s.faults == ({"path": "/health", "latency_ms": 5},)
    assert s.database_url == "postgresql://postgres@127.0.0.1/test"
    assert Settings.from_env({}).rate_limit is None and Settings.from_env({}).admin is False
    assert RateLimit.parse("5/10s") == RateLimit(5, 10.0) and RateLimit.parse("off") is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CGPT_KDF_COST": "high"}, "CGPT_KDF_COST"),
        ({"CGPT_ADMIN": "maybe"}, "CGPT_ADMIN"),
        ({"CGPT_RATE_LIMIT": "100 per minute"}, "CGPT_RATE_LIMIT"),
        ({"CGPT_FAULTS": "[{"}, "CGPT_FAULTS"),
        ({"CGPT_DELAY_MEDIAN_MS": "-5"}, "CGPT_DELAY_MEDIAN_MS: -5.0 is not a number from 0 to 60000"),
        ({"CGPT_DELAY_SIGMA": "nan"}, "CGPT_DELAY_SIGMA: nan is not a number from 0 to 3"),
        ({"CGPT_DELAY_SEED": "1.5"}, "CGPT_DELAY_SEED"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_create_app_has_no_side_effects_until_started() -> None:
    app = create_app(Settings(database_url=None))
    st = app.fastapi_app.state.backend
    assert st.db.dialect == "sqlite" and st.db.path is not None and not st.db.path.exists()
    st.db.close()
