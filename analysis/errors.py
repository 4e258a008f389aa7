"""The analysis package's exceptions, one tree, each mapped to a command-line exit code.

    AnalysisError                 base; never raised itself
    ├── InputError                exit 2: bad input or usage, message names file, row, column or key
    │   ├── UsageError            command-line arguments that make no sense together
    │   ├── RunFolderError        a run folder file that is missing, empty, truncated or malformed
    │   ├── ThresholdsError       a thresholds YAML or performance_config.json that does not validate
    │   └── SchemaError           a report that does not match its JSON schema
    └── (an invalid run is a verdict, not an exception: `Verdict.INVALID`, exit 3)

Exit codes: 0 all held, 1 a threshold or regression failed, 2 bad input or usage, 3 invalid run.
"""

from __future__ import annotations

from pathlib import Path

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_BAD_INPUT = 2
EXIT_INVALID_RUN = 3


class AnalysisError(Exception):
    """Base of every error the analysis raises on purpose."""

    exit_code: int = EXIT_BAD_INPUT


class InputError(AnalysisError):
    """Input the analysis cannot use: the message says where it is and what is wrong with it."""

    def __init__(
        self,
        message: str,
        *,
        file: Path | str | None = None,
        row: int | None = None,
        column: str | None = None,
        key: str | None = None,
    ) -> None:
        self.message = message
        self.file = None if file is None else str(file)
        self.row = row
        self.column = column
        self.key = key
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.file is not None:
            where.append(self.file)
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        if self.key is not None:
            where.append(f"key {self.key!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class UsageError(InputError):
    """Command-line arguments the analysis cannot act on."""


class RunFolderError(InputError):
    """A file of the run folder (or a Locust --csv prefix) that cannot be read as documented."""


class ThresholdsError(InputError):
    """A thresholds file or a performance_config.json thresholds block that does not validate."""


class SchemaError(InputError):
    """A report document that does not match the report schema."""
