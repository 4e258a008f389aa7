"""Every code example of the README and the docs is run (or, where it needs other machines, parsed by
its tool) and does what its text says. See `docs_examples` for the markers that say how."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.library.docs_examples import KINDS, REPO, Example, all_examples
from tests.streaming.headless import Run, assert_clean_exit, run_locust

EXAMPLES = all_examples()
FAST_MODEL = ["--backend-llm-first-token-ms", "5", "--backend-llm-token-ms", "1"]
TINY_BENCHMARKS = {"warmup_iterations": 0, "benchmark_rounds": 1}
# Commands the docs show that belong to other tools (or to CI itself), named, never run here.
EXTERNAL = {"pip", "docker", "kubectl", "helm", ".venv/bin/ruff", ".venv/bin/mypy", ".venv/bin/python"}


def by_kind(kind: str) -> list[Example]:
    return [e for e in EXAMPLES if e.kind == kind]


def ids(examples: list[Example]) -> list[str]:
    return [e.where for e in examples]


def test_every_code_block_says_what_kind_of_example_it_is() -> None:
    unmarked = [e.where for e in EXAMPLES if e.kind not in KINDS]
    assert not unmarked, f"code blocks without a known <!-- example: KIND --> marker: {unmarked}"
    assert by_kind("locustfile") and by_kind("run") and by_kind("check")


# --- locustfiles ------------------------------------------------------------------------------------


def imported_names(source: str) -> list[str]:
    """Every module path and name a file imports."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names += [node.module or "", *(a.name for a in node.names)]
    return names


def check_journey(run: Run, example: Example) -> None:
    assert_clean_exit(run)
    private = [n for n in imported_names(example.code) if any(p.startswith("_") for p in n.split("."))]
    assert not private, f"the journey imports private names: {private}"
    for request_type, name in (
        ("POST", "/api/evidence"),
        ("GET", "/api/evidence/search"),
        ("POST", "/api/chat/stream"),
        ("LLM", "sse time to first token"),
        ("LLM", "sse inter-token latency"),
        ("LLM", "sse total"),
        ("WS", "ws reply"),
        ("LLM", "ws time to first token"),
        ("SQL", "evidence by id"),
    ):
        assert run.requests(request_type, name) > 0, (request_type, name)
    # "streamed: TTFT, ITL, tokens/s": tokens per second from the whole reply's row, not an entry.
    assert not any("tokens/s" in name for name in run.names("LLM"))
    record = run.record()
    replies = record[(record["name"] == "/api/chat/stream") & record["success"]]
    assert len(replies) > 0 and (replies["tokens"] / (replies["response_time_ms"] / 1000) > 0).all()
    summary = json.loads((run.run_dir / "summary.json").read_text())
    info = json.loads((run.run_dir / "run.json").read_text())
    assert summary["agrees_with_locust"] is True and info["complete"] is True, info["problems"]
    assert len(record) == summary["total"]["count"] > 0


def check_review(run: Run, example: Example) -> None:
    assert_clean_exit(run)
    record = run.record()
    tags = {name: set(record.loc[record["name"] == name, "tags"]) for name in set(record["name"])}
    assert tags["/api/evidence/[id]"] <= {"read", "write"}
    gets = record[(record["name"] == "/api/evidence/[id]") & (record["request_type"] == "GET")]
    patches = record[(record["name"] == "/api/evidence/[id]") & (record["request_type"] == "PATCH")]
    assert set(gets["tags"]) == {"read"} and set(patches["tags"]) == {"write"}, tags
    assert run.requests("GET", "/api/users/dashboard") > 0


def check_v2(run: Run, example: Example) -> None:
    record = run.record()
    assert set(record["user_class"]) == {"V2ComplianceUser"}, "only the subclass runs"
    # Stat names follow the mapping. The run reads evidence on every draw (LOCUSTFILE_ARGS); which of
    # the two mapped reads it reaches is chance.
    gets = run.names("GET")
    assert any(name.startswith("/v2/documents") for name in gets), gets
    assert not {"/api/evidence", "/api/evidence/[id]"} & set(gets), gets


def check_auditor(run: Run, example: Example) -> None:
    assert_clean_exit(run)
    assert run.requests("PATCH", "/api/evidence/[id]") > 0
    assert run.failures_of("PATCH", "/api/evidence/[id]") == 0


# ComplianceUser reads evidence (the keys the v2 example maps) in 19 of its 44 task draws, and its
# waits of 1-4 s leave three users about eight draws in six seconds: about one run in 80 read none.
# Pinned to its three evidence reads, every draw does; its other tasks read neither key.
V2_READS = {
    "user_class_name": "V2ComplianceUser",
    "tasks": ["list_evidence", "filter_evidence", "view_evidence"],
}
LOCUSTFILE_ARGS: dict[str, list[str]] = {"v2": ["--config-users", json.dumps(V2_READS)]}

LOCUSTFILE_CHECKS: dict[str, Callable[[Run, Example], None]] = {
    "journey": check_journey,
    "review": check_review,
    "v2": check_v2,
    "auditor": check_auditor,
}


@pytest.mark.parametrize("example", by_kind("locustfile"), ids=ids(by_kind("locustfile")))
def test_locustfile_examples_run_and_do_what_they_say(example: Example, tmp_path: Path) -> None:
    assert example.language == "python"
    (name,) = example.args
    assert name in LOCUSTFILE_CHECKS, f"{example.where}: no check for locustfile example {name!r}"
    locustfile = tmp_path / f"{name}_example.py"
    locustfile.write_text(example.code)
    extra = [*FAST_MODEL, *LOCUSTFILE_ARGS.get(name, [])]  # --config-users last: takes what follows
    run = run_locust(locustfile, tmp_path, host=None, users=3, seconds=6, record=True, extra=extra)
    LOCUSTFILE_CHECKS[name](run, example)


# --- shell commands run for real ------------------------------------------------------------------


def bounded(words: list[str], runs: Path, workdir: Path = REPO) -> list[str]:
    """A documented command cut to a few seconds and a few users, its `runs/` folders under `runs`."""
    out: list[str] = []
    words = list(words)
    i = 0
    while i < len(words):
        word = words[i]
        value = words[i + 1] if i + 1 < len(words) else ""
        if word in ("-t", "--run-time"):
            out += [word, "3s"]
        elif word == "--duration":
            out += [word, "6s"]
        elif word in ("-u", "--users"):
            out += [word, str(min(int(value), 4))]
        elif word == "--profile-time-scale":
            pass  # set below, from the profile's length
        else:
            out.append(str(runs / word[len("runs/") :]) if word.startswith("runs/") else word)
            i += 1
            continue
        i += 2
    if "--load-profile" in out:
        from compliance_loadtest.profiles import load_profile

        name = out[out.index("--load-profile") + 1]
        profile = load_profile(str(workdir / name) if (workdir / name).is_file() else name)
        out += ["--profile-time-scale", f"{min(1.0, 5.0 / profile.duration):.4f}"]
    return out


def command_line(words: list[str]) -> list[str]:
    program, *rest = words
    if program == "locust":
        return [sys.executable, "-m", "locust", *rest]
    if program == "compliance-loadtest":
        return [sys.executable, "-m", "compliance_loadtest", *rest]
    if program == "python":
        return [sys.executable, *rest]
    raise AssertionError(f"a `run` example may run locust, compliance-loadtest or python, not {program!r}")


@pytest.mark.parametrize("example", by_kind("run"), ids=ids(by_kind("run")))
def test_run_examples_run_to_exit_code_0(example: Example, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "locust.conf").write_text(f"locustfile = {REPO / 'locust_scenarios'}\n")
    (workdir / "locust_scenarios").symlink_to(REPO / "locust_scenarios")
    for other in EXAMPLES:  # the document's files: locustfiles under the name their first line gives,
        if other.document != example.document:  # YAML under the name its marker gives
            continue
        first = other.code.splitlines()[0] if other.code else ""
        if other.kind == "locustfile" and first.startswith("# "):
            (workdir / first[2:].strip()).write_text(other.code)
        elif other.kind == "yaml" and len(other.args) > 1:
            (workdir / other.args[1]).write_text(other.code)
    config = tmp_path / "tiny_benchmarks.json"
    config.write_text(json.dumps(TINY_BENCHMARKS))
    env = {**os.environ, "CGPT_BENCHMARK_CONFIG": str(config), "PYTHONPATH": str(REPO)}
    for words in example.commands():
        command = command_line(bounded(words, tmp_path / "runs", workdir))
        if command[2:3] == ["locust"] and "--host" not in command:
            command += FAST_MODEL
        proc = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=240)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, (
            f"{example.where}: {' '.join(words)} exited {proc.returncode}\n{output[-4000:]}"
        )
        assert "Traceback" not in output, output[-4000:]


def test_the_main_command_is_the_demo_and_passes(tmp_path: Path) -> None:
    (example,) = by_kind("main-command")
    commands = example.code.strip().split("&&")
    suite = [c.strip() for c in commands if c.strip().startswith(".venv/bin/compliance-loadtest")]
    assert len(suite) == 1, commands
    words = suite[0].split()[1:]
    command = [sys.executable, "-m", "compliance_loadtest", *bounded(words, tmp_path / "runs")]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "PASS" in output


# --- shell commands parsed by their tools -----------------------------------------------------------

LOCUST_PARSE = """
import json, sys
import locust_scenarios  # the library's options
from locust.argument_parser import get_parser

results = []
for args in json.loads(sys.argv[1]):
    try:
        get_parser().parse_args(args=args)
        results.append("")
    except SystemExit as exc:
        results.append(f"exit {exc.code}")
print(json.dumps(results))
"""


def expand(line: str) -> list[str]:
    """The words of a command line as bash expands them ($(...), $VAR), without running the command."""
    script = f"set -- {line}\nprintf '%s\\0' \"$@\""
    env = {**os.environ, "LOCUSTFILE": str(REPO / "locust_scenarios"), "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=env, cwd=REPO, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split("\0")[:-1]


def check_commands(example: Example, tmp_path: Path) -> list[str]:
    """Problems with the example's commands: unknown options, profiles, files; [] when all parse."""
    from analysis.__main__ import build_parser as analysis_parser
    from compliance_loadtest.profiles import load_profile
    from compliance_loadtest.suite.plan import build_plan
    from reference_backend.__main__ import build_parser as backend_parser

    problems: list[str] = []
    locust_commands: list[list[str]] = []
    for line in example.lines():
        if re.match(r"[A-Z_]+=", line):
            continue  # a shell variable being set
        words = expand(line)
        program, args = words[0], words[1:]
        if program in EXTERNAL or program.startswith(("python3", "./")):
            continue  # another tool's command
        if program == "locust":
            locust_commands.append(args)
            if "--load-profile" in args:
                name = args[args.index("--load-profile") + 1]
                if not name.startswith("./"):
                    load_profile(name)
            if "-f" in args and not Path(args[args.index("-f") + 1]).exists():
                problems.append(f"{' '.join(words)}: no such locustfile")
        elif program == "compliance-loadtest":
            for name in re.findall(r"(\S+\.json)", " ".join(args)):
                (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(REPO / "examples" / "performance_config.json", tmp_path / name)
            if "--baseline" in args:  # a run folder of an earlier run, as the example supposes
                (tmp_path / args[args.index("--baseline") + 1]).mkdir(parents=True, exist_ok=True)
            cwd = os.getcwd()
            os.chdir(tmp_path)
            try:
                build_plan(args)
            except Exception as exc:
                problems.append(f"{' '.join(words)}: {exc}")
            finally:
                os.chdir(cwd)
        elif program == "python" and args[:2] == ["-m", "analysis"]:
            analysis_parser().parse_args(args[2:])
        elif program == "python" and args[:2] == ["-m", "reference_backend"]:
            backend_parser().parse_args(args[2:])
        else:
            problems.append(f"{example.where}: {program!r} is neither ours nor a known external tool")
    if locust_commands:
        command = [sys.executable, "-c", LOCUST_PARSE, json.dumps(locust_commands)]
        proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        verdicts = json.loads(proc.stdout.strip().splitlines()[-1])
        problems += [
            f"locust {' '.join(a)}: {v}\n{proc.stderr[-1500:]}"
            for a, v in zip(locust_commands, verdicts, strict=True)
            if v
        ]
    return problems


@pytest.mark.parametrize("example", by_kind("check"), ids=ids(by_kind("check")))
def test_check_examples_parse_with_their_tools(example: Example, tmp_path: Path) -> None:
    assert check_commands(example, tmp_path) == []


# --- YAML, printed output, synopses ----------------------------------------------------------------


@pytest.mark.parametrize("example", by_kind("yaml"), ids=ids(by_kind("yaml")))
def test_yaml_examples_are_valid(example: Example) -> None:
    kind = example.args[0]
    data = yaml.safe_load(example.code)
    if kind == "profile":
        from compliance_loadtest.profiles import parse_profile

        parse_profile(example.code, source=example.where)
    elif kind == "thresholds":
        from analysis import parse_thresholds

        parse_thresholds(data, example.where)
    elif kind == "api-paths":
        from compliance_loadtest.api import Api

        assert Api.validate_paths(data, source=example.where)
    else:
        raise AssertionError(f"{example.where}: unknown yaml example kind {kind!r}")


PROFILE_ERRORS = {
    "stage 2: key 'spawn_rate'": "stages:\n  - {duration: 5, users: 1, spawn_rate: 1}\n"
    "  - {duration: 5, users: 2, spawn_rate: -3}\n",
    "key 'mix.Nobody'": "stages:\n  - {duration: 5, users: 1, spawn_rate: 1, mix: {Nobody: 1}}\n",
    "key 'stage'": "stage: {duration: 5}\nstages:\n  - {duration: 5, users: 1, spawn_rate: 1}\n",
}


@pytest.mark.parametrize("example", by_kind("output"), ids=ids(by_kind("output")))
def test_printed_output_examples_are_what_the_library_prints(example: Example, tmp_path: Path) -> None:
    assert example.args == ("profile-errors",)
    from compliance_loadtest.errors import ProfileError
    from compliance_loadtest.profiles import load_profile

    (tmp_path / "profiles").mkdir()
    for line in example.code.strip().splitlines():
        key = next(k for k in PROFILE_ERRORS if k in line)
        (tmp_path / "profiles" / "mine.yaml").write_text(PROFILE_ERRORS[key])
        cwd = os.getcwd()
        os.chdir(tmp_path)
        try:
            with pytest.raises(ProfileError) as caught:
                load_profile("profiles/mine.yaml", known_classes=["ComplianceUser", "ReportingUser"])
        finally:
            os.chdir(cwd)
        shown = line.split("...", 1)[0]
        assert caught.value.report().startswith(shown), (caught.value.report(), line)


@pytest.mark.parametrize("example", by_kind("usage"), ids=ids(by_kind("usage")))
def test_usage_synopses_name_only_options_that_exist(example: Example) -> None:
    from analysis.__main__ import build_parser as analysis_parser
    from reference_backend.__main__ import build_parser as backend_parser

    parsers = {"analysis": analysis_parser(), "reference_backend": backend_parser()}
    for line in example.code.strip().splitlines():
        tool = next((name for name in parsers if f"-m {name}" in line), None)
        if tool is None:
            continue
        known = option_strings(parsers[tool])
        for option in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", line.split(tool, 1)[1]):
            assert option in known, f"{example.where}: {tool} has no option {option}"


def option_strings(parser: object) -> set[str]:
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    known = set(parser._option_string_actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                known |= option_strings(sub)
    return known
