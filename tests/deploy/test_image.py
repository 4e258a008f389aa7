"""The image builds what pyproject.toml installs and runs as the user the manifests expect.

No Docker engine here: the Dockerfile is read as `docker build` would use it (its COPY sources, the
.dockerignore'd build context, its ENV and USER) and compared with pyproject.toml and the manifests.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib

from tests.deploy.manifests import GATE, ROOT, dockerfile_env, dockerfile_instructions, find, pod_spec


def copied() -> set[str]:
    sources: set[str] = set()
    for line in dockerfile_instructions():
        if line.startswith("COPY "):
            *from_context, _dest = line.split()[1:]
            sources |= {s.rstrip("/") for s in from_context if not s.startswith("--")}
    return sources


def test_every_package_pyproject_installs_is_copied_into_the_build() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = pyproject["tool"]["setuptools"]
    package_dirs: dict[str, str] = setuptools.get("package-dir", {})
    sources = copied()
    assert {"pyproject.toml", pyproject["project"]["readme"]} <= sources
    for package in setuptools["packages"]:
        folder = package_dirs.get(package, package.replace(".", "/"))
        assert (ROOT / folder).is_dir(), (
            f"pyproject.toml installs {package} from {folder}, which does not exist"
        )
        top = folder.split("/")[0]
        assert top in sources, (
            f"pyproject.toml installs {package} from {folder}/: the Dockerfile must COPY {top}"
        )


def test_the_dockerignore_keeps_nothing_the_build_copies_out_of_the_context() -> None:
    patterns = [
        p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip() and p[0] != "#"
    ]
    for source in copied():
        hits = [p for p in patterns if fnmatch.fnmatch(source, p.removeprefix("**/"))]
        assert not hits, f"{source} is copied by the Dockerfile but .dockerignore excludes it ({hits})"


def test_the_locustfile_is_the_installed_scenarios_of_the_images_python() -> None:
    base = next(line for line in dockerfile_instructions() if line.startswith("FROM "))
    version = re.fullmatch(r"FROM python:(\d+\.\d+)-slim", base)
    assert version, base
    locustfile = dockerfile_env("LOCUST_LOCUSTFILE")
    assert locustfile == f"/usr/local/lib/python{version.group(1)}/site-packages/locust_scenarios"
    assert 'ENTRYPOINT ["locust"]' in dockerfile_instructions()


def test_the_image_runs_as_the_numeric_user_the_pods_ask_for() -> None:
    users = [line.split()[1] for line in dockerfile_instructions() if line.startswith("USER ")]
    assert users and users[-1].isdigit(), f"USER must be numeric for runAsNonRoot to be checked: {users}"
    for kind, name in (
        ("Job", "compliance-loadtest-gate"),
        ("Job", "compliance-loadtest-gate-workers"),
    ):
        security = pod_spec(find(GATE, kind, name))["securityContext"]
        assert security["runAsNonRoot"] is True and str(security["runAsUser"]) == users[-1], name
    fetch = find(GATE / "fetch", "Pod", "compliance-loadtest-fetch")
    assert str(pod_spec(fetch)["securityContext"]["runAsUser"]) == users[-1]
