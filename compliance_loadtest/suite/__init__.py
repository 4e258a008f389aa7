"""The one-command suite run (`compliance-loadtest`): backend, Locust master and workers, analysis.

    suite/
      plan.py       the command line and the seed's performance_config.json -> a SuitePlan
      processes.py  the child processes (stopped master, workers, backend) and the signals
      progress.py   the progress line read from the master's stats history; `say`
      run.py        carrying out a plan: backend, master + workers, analysis (`run_suite`)
      command.py    `main`: plan, run, and each error mapped to its exit code in one place

Each module depends only on those above it. None imports Locust: the suite starts and watches
processes, and Locust's import would monkey-patch this one with gevent.
"""

from compliance_loadtest.suite.command import main

__all__ = ["main"]
