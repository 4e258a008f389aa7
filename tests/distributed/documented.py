"""The commands docs/distributed.md gives, as values the tests run and compare with.

Each command is the fenced bash block after a `<!-- NAME -->` marker: `master-command`,
`worker-command`, `analysis-command`. A test runs one with its own values (`Command.but`), so what the
tests run is what the page tells a user to type, option for option.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "distributed.md"

# Options of these commands that take no value; every other option takes exactly one.
FLAGS = frozenset({"--master", "--worker", "--headless", "--allow-remote-host", "--no-step-summary"})
PROGRAMS = (("python", "-m", "analysis"), ("locust",))


@dataclass(frozen=True)
class Command:
    """A command line: its program, its positional arguments, its options in order."""

    program: tuple[str, ...]
    positional: tuple[str, ...]
    options: tuple[tuple[str, str | None], ...]
    """(option, value) pairs; the value is None for a flag."""

    @classmethod
    def parse(cls, argv: list[str], program: tuple[str, ...] = ()) -> Command:
        """Split `argv`; `program` is its leading words (guessed from PROGRAMS when empty)."""
        if not program:
            program = next((p for p in PROGRAMS if tuple(argv[: len(p)]) == p), ())
            if not program:
                raise ValueError(f"not a command of the docs: {argv[:3]}")
        rest = argv[len(program) :]
        positional: list[str] = []
        options: list[tuple[str, str | None]] = []
        i = 0
        while i < len(rest):
            token = rest[i]
            if token.startswith("-") and token not in FLAGS:
                if i + 1 >= len(rest):
                    raise ValueError(f"option {token} has no value in {argv}")
                options.append((token, rest[i + 1]))
                i += 2
            elif token.startswith("-"):
                options.append((token, None))
                i += 1
            else:
                positional.append(token)
                i += 1
        return cls(tuple(program), tuple(positional), tuple(options))

    def names(self) -> list[str]:
        """The options, in order, without their values."""
        return [name for name, _ in self.options]

    def value(self, name: str) -> str | None:
        for option, value in self.options:
            if option == name:
                return value
        raise KeyError(f"{' '.join(self.program)} has no option {name}")

    def but(
        self,
        values: Mapping[str, str | None] | None = None,
        *,
        drop: tuple[str, ...] = (),
        add: tuple[str, ...] = (),
        positional: tuple[str, ...] | None = None,
    ) -> Command:
        """The same command with these options' values, without the `drop`ped options, with `add`
        appended (as argv words) and, if given, other positional arguments."""
        values = dict(values or {})
        unknown = (set(values) | set(drop)) - set(self.names())
        if unknown:
            raise KeyError(f"{' '.join(self.program)} has no option {sorted(unknown)}")
        options = tuple((name, values.get(name, value)) for name, value in self.options if name not in drop)
        extra = Command.parse([*self.program, *add], self.program).options
        return Command(self.program, self.positional if positional is None else positional, options + extra)

    def argv(self, program: tuple[str, ...] | None = None) -> list[str]:
        words = list(self.program if program is None else program)
        for name, value in self.options:
            words += [name] if value is None else [name, value]
        return [*words, *self.positional]


def documented(marker: str, doc: Path = DOC) -> Command:
    """The command in the first bash block after `<!-- marker -->` in `doc`."""
    text = doc.read_text(encoding="utf-8")
    found = re.search(rf"<!-- {re.escape(marker)} -->\s*```bash\n(.*?)```", text, re.S)
    if found is None:
        raise AssertionError(f"{doc}: no ```bash block after <!-- {marker} -->")
    return Command.parse(shlex.split(found.group(1).replace("\\\n", " ")))
