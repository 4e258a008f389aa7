"""The library's exceptions, one tree, each carrying the exit code a command line maps it to.

    LoadTestError                 base; exit 1
    ├── UsageError                exit 2: bad input or usage; the message names the option, file or key
    │   ├── ProfileError          a load profile (file, stage, key)
    │   ├── ApiPathsError         an --api-paths mapping (file, key)          .api
    │   ├── BenchmarkConfigError  a performance_config.json (file, key)      .config
    │   ├── RunFolderError        a run-folder file against its contract      .run_folder
    │   ├── RunDirError           a --run-dir that cannot be used             .plugin.run_output
    │   ├── DatabaseUrlError      a --db-url / database URL that cannot be used .db
    │   ├── RemoteHostNotAllowed  a --host that is not loopback without --allow-remote-host .plugin.guard
    │   └── SuiteUsageError       a `compliance-loadtest` option, config file or value
    ├── BackendStartError         exit 1: the reference backend did not start
    └── SuiteRunError             exit 3: the suite could not make a run (nothing valid to analyse)

Exit codes, as everywhere in the project: 0 pass, 1 fail, 2 bad input or usage, 3 invalid run.
`exit_code_for` is the one mapping from an exception to an exit code. This module imports nothing of
Locust and is safe to import anywhere (the analysis, the suite runner, tests).
"""

from __future__ import annotations

from collections.abc import Iterable

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_INVALID_RUN = 3


class LoadTestError(Exception):
    """Base of every error the library raises on purpose."""

    exit_code: int = EXIT_FAIL
    title: str = ""
    """What went wrong in a few words, put before the message when it is shown on its own."""

    def report(self) -> str:
        """The message as a command line prints it."""
        return f"{self.title}: {self}" if self.title else str(self)


class UsageError(LoadTestError, ValueError):
    """Input or options the library cannot use; the message says which and how to fix it."""

    exit_code = EXIT_USAGE


class ProfileError(UsageError):
    """A profile that cannot be used; the message says which file, stage and key, and why."""

    title = "Bad load profile"

    def __init__(
        self, source: str, message: str, *, stage: int | None = None, key: str | None = None
    ) -> None:
        self.source = source
        self.stage = stage
        self.key = key
        where = source
        if stage is not None:
            where += f": stage {stage}"
        if key is not None:
            where += f": key '{key}'"
        super().__init__(f"{where}: {message}")


class BackendStartError(LoadTestError, RuntimeError):
    """The reference backend did not start; the message carries the end of its log."""


class SuiteUsageError(UsageError):
    """A bad `compliance-loadtest` option, config file or value; the message names it."""


class SuiteRunError(LoadTestError, RuntimeError):
    """The suite could not make a run (the backend or Locust did not start): there is no valid run to
    give a verdict on, so exit 3 as the analysis gives an invalid run, not 1 (a threshold failed)."""

    exit_code = EXIT_INVALID_RUN


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """` (did you mean 'x'?)` naming the known word closest to a mistyped one, or "" when none is close."""
    import difflib  # only an error's message needs it

    close = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def exit_code_for(exc: BaseException) -> int:
    """The exit code a command line ends with for `exc`: its own for the library's errors, else 1."""
    return exc.exit_code if isinstance(exc, LoadTestError) else EXIT_FAIL
