"""The machinery behind `locust_scenarios`: what users compose with, the Locust plugin, the suite.

    compliance_loadtest/
      api.py, user.py        the API layer (`Api`) and the authenticated base user (`ApiUser`)
      steps/                 the steps journeys are made of (evidence, search, assistant, ...)
      streaming.py, db.py    reading token streams; talking to the database directly
      benchmark.py           what a microbenchmark user is made of
      plugin/                the Locust plugin, wired in one place: `plugin.install()`
      suite/                 the one-command suite runner (`compliance-loadtest`)
      run_folder.py          the run folder's contract, shared by its writer and the analysis
      categories.py          the seed's suites and their user classes, shared by the suite and the analysis
      profiles.py            load profiles (YAML) validated into dataclasses
      config.py              the seed suite's performance_config.json
      backend.py             starting the reference backend as a process of its own
      redact.py, errors.py   the one redactor; the one exception tree and its exit codes

Users import from `locust_scenarios` (the public API, whose import installs the plugin). This
`__init__` imports nothing: the analysis and the suite runner use the pure modules here without
Locust, whose import monkey-patches the process with gevent.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["locustfile_path"]


def locustfile_path() -> str:
    """The `locust_scenarios` folder to give `locust -f`, wherever it is installed, without importing
    it (importing it imports Locust)."""
    spec = importlib.util.find_spec("locust_scenarios")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the locust_scenarios package is not installed")
    return str(Path(next(iter(spec.submodule_search_locations))).resolve())
