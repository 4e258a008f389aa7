"""The code examples of the README and the docs, as the tests find them.

Every fenced block of a document is preceded by a marker saying what kind of example it is, so that
none is left untested:

    <!-- example: locustfile NAME -->   Python: a locustfile, run headless and checked by NAME
    <!-- example: run -->               shell: each command run for real, its lengths cut (see `bounded`)
    <!-- example: check -->             shell: each command's options parsed by the tool's own parser
    <!-- example: yaml KIND [FILE] -->  YAML: validated by the library's loader of KIND; kept as FILE
    <!-- example: output KIND -->       text the library prints: produced again and compared
    <!-- example: usage -->             a synopsis: every option it names exists
    <!-- main-command -->, <!-- test-command -->   the README's two commands
    <!-- master-command -->, <!-- worker-command -->, <!-- analysis-command -->   docs/distributed.md's
        commands, run on hosts in network namespaces by tests/distributed
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = (
    "README.md",
    "docs/scenarios.md",
    "docs/profiles.md",
    "docs/benchmarks.md",
    "docs/run-folder.md",
    "docs/suite.md",
    "docs/distributed.md",
    "analysis/README.md",
    "reference_backend/README.md",
)
DISTRIBUTED = ("master-command", "worker-command", "analysis-command")
KINDS = (
    "locustfile",
    "run",
    "check",
    "yaml",
    "output",
    "usage",
    "main-command",
    "test-command",
    *DISTRIBUTED,
)

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
_MARKER = re.compile(
    r"<!--\s*(main-command|test-command|master-command|worker-command|analysis-command|example:\s*([^>]*?))\s*-->"
)


@dataclass(frozen=True)
class Example:
    document: str
    line: int
    language: str
    kind: str
    args: tuple[str, ...]
    code: str

    @property
    def where(self) -> str:
        return f"{self.document}:{self.line}"

    def lines(self) -> list[str]:
        """The block's command lines, `\\` continuations joined, blank and comment lines dropped."""
        text = self.code.replace("\\\n", " ")
        lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        return [part.strip() for line in lines for part in line.split(" && ")]  # one command each

    def commands(self) -> list[list[str]]:
        """The shell commands of the block, one per line, comments dropped, `\\` continuations joined."""
        text = self.code.replace("\\\n", " ")
        commands = []
        for line in text.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
        return commands


def examples(document: str) -> list[Example]:
    text = (REPO / document).read_text(encoding="utf-8")
    found = []
    for fence in _FENCE.finditer(text):
        before = text[: fence.start()].rstrip().splitlines()
        marker = _MARKER.search(before[-1]) if before else None
        if marker is None:
            kind, args = "", ()
        elif marker.group(2) is not None:
            kind, *rest = marker.group(2).split()
            args = tuple(rest)
        else:
            kind, args = marker.group(1), ()
        line = text[: fence.start()].count("\n") + 1
        found.append(Example(document, line, fence.group(1), kind, args, fence.group(2)))
    return found


def all_examples() -> list[Example]:
    return [e for document in DOCUMENTS for e in examples(document)]
