"""The application image, checked without Docker: the Dockerfile's shape (multi-stage, slim, non-root, no secrets),
the build context, the runtime requirements it installs, and that the project's package carries its data files."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from deploy.image.runtime_requirements import normalise, runtime_requirements
from tests.unit.test_deploy.deploy_files import DOCKERFILE, ROOT

PACKAGES = ["safeguard", "schemas", "producers", "streams", "sinks", "dashboards", "notify"]
NOT_RUNTIME_DATA = ("dashboards/json/", "dashboards/provisioning/")
"""Files inside the packages that no code reads at runtime: generated for Grafana, which mounts them from the
repository (docker-compose.yml); the code builds the same content itself for `dashboards push`."""


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_multi_stage_build_on_python_3_11_slim() -> None:
    args = {k: v for k, v in (a[1].split("=", 1) for a in _instructions() if a[0] == "ARG" and "=" in a[1])}
    stages = _stages()
    assert len(stages) >= 2, "build the wheel in one stage, copy the venv into a clean one"
    for stage in stages:
        base = stage[0][1].split()[0]
        base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], m[0]), base)
        assert re.fullmatch(r"python:3\.11-slim(-[a-z]+)?", base), f"base image {base} is not python:3.11-slim"
    final = stages[-1]
    copies_from_build = [a for k, a in final if k == "COPY" and a.startswith("--from=")]
    assert any("/opt/safeguard" in a for a in copies_from_build), "the runtime stage copies the built venv"
    assert not any(k == "RUN" and "pip install" in a for k, a in final), "nothing is pip-installed in the final stage"


def test_runs_as_an_unprivileged_user_with_the_safeguard_entrypoint() -> None:
    final = _stages()[-1]
    users = [a for k, a in final if k == "USER"]
    assert users, "the runtime stage must switch to an unprivileged user"
    uid = users[-1].split(":")[0]
    assert uid not in ("0", "root") and uid.isdigit() and int(uid) >= 1000, f"USER {users[-1]} (numeric, not root)"
    entrypoint = [a for k, a in final if k == "ENTRYPOINT"]
    assert entrypoint and entrypoint[-1] == '["safeguard"]', f"ENTRYPOINT {entrypoint}"


def test_no_secrets_or_dev_dependencies_are_baked_in() -> None:
    for keyword, arguments in _instructions():
        if keyword in ("ENV", "ARG", "LABEL"):
            assert not re.search(r"(PASSWORD|TOKEN|SECRET|PSEUDONYM_KEY)", arguments, re.I), arguments
        if keyword == "RUN":
            assert "[dev]" not in arguments and ".[dev" not in arguments, "dev extras do not belong in the image"
        if keyword in ("COPY", "ADD") and "--from=" not in arguments:
            sources = [s for s in arguments.split() if not s.startswith("--")][:-1]
            for source in sources:
                assert not source.startswith((".env", "tests", ".git")), f"{keyword} {source} must not be in the image"
                assert (ROOT / source).exists(), f"{keyword} {source}: no such file in the repository"


def test_the_build_context_leaves_out_secrets_state_and_tests() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().splitlines())
    for entry in (".env", ".git", ".venv", ".safeguard", "tests", "**/__pycache__"):
        assert entry in ignored, f".dockerignore must exclude {entry}"
    for needed in ("pyproject.toml", "README.md", "deploy", *PACKAGES):
        assert needed not in ignored, f".dockerignore excludes {needed}, which the Dockerfile copies"


def test_every_package_is_copied_into_the_build() -> None:
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = {a.split()[0].rstrip("/") for k, a in _instructions() if k == "COPY" and not a.startswith("--from")}
    for pattern in include:
        package = pattern.rstrip("*")
        assert package in copied, f"pyproject.toml packages {package}, but the Dockerfile does not COPY it"


def test_runtime_requirements_drop_dev_extras_chdb_and_testcontainers() -> None:
    requires = [
        "kafka-python<4,>=3.0",
        "clickhouse-connect[chdb]<2,>=1.6",
        "grafana-foundation-sdk==1769699379!11.6.0",
        "testcontainers<5,>=4.10",
        'pytest>=8; extra == "dev"',
        'tomli>=2; python_version < "3.11"',
    ]
    assert runtime_requirements(requires) == [
        "kafka-python<4,>=3.0",
        "clickhouse-connect<2,>=1.6",
        "grafana-foundation-sdk==1769699379!11.6.0",
        'tomli>=2; python_version < "3.11"',
    ]
    assert normalise("Clickhouse_Connect") == "clickhouse-connect"


def test_the_project_requirements_leave_the_image_without_chdb_but_with_everything_else() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    kept = {
        normalise(re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0]) for r in runtime_requirements(project["dependencies"])
    }
    declared = {normalise(re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0]) for r in project["dependencies"]}
    assert declared - kept == {"testcontainers"}
    assert not any("chdb" in r for r in runtime_requirements(project["dependencies"]))


@pytest.fixture(scope="module")
def built_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package tree setuptools puts into the wheel (build_py), built from a copy of the working tree."""
    source = tmp_path_factory.mktemp("source")
    files = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        if (ROOT / name).is_file() and name.split("/")[0] in {"pyproject.toml", "README.md", *PACKAGES}:
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("build")
    subprocess.run(
        [sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py", "--build-lib", str(out)],
        cwd=source,
        capture_output=True,
        check=True,
    )
    return out


def test_the_package_carries_every_data_file_the_code_reads(built_packages: Path) -> None:
    """In the image the code runs from the installed package, not the source tree: a data file left out of
    package-data (migrations, templates, schemas) would be missing there although every local test passes."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *PACKAGES],
        cwd=ROOT,
        capture_output=True,
        check=True,
        text=True,
    ).stdout.split()
    data = [f for f in files if not f.endswith((".py", ".md", ".pyc")) and not f.startswith(NOT_RUNTIME_DATA)]
    assert "sinks/migrations/0001_initial.sql" in data
    missing = [f for f in data if not (built_packages / f).exists()]
    assert not missing, f"not packaged (add them to [tool.setuptools.package-data] in pyproject.toml): {missing}"
