"""A ComplianceGPT-shaped backend for load tests: `create_app(settings)` and `python -m reference_backend`.

Serves the API contract in COMPLIANCEGPT_API.md on SQLite (default, in a temporary directory) or
PostgreSQL. Modules: `settings` (every knob, from `CGPT_*`), `schema` (tables others may query),
`db`, `security`, `app` (the factory), `routes_*` (the API), `middleware` (request counts, body limit,
rate limit, faults), `faults`, `model` (the simulated LLM), `reports`, `seed`.
"""

from reference_backend.app import create_app
from reference_backend.settings import RateLimit, Settings, SettingsError

__all__ = ["RateLimit", "Settings", "SettingsError", "create_app"]
