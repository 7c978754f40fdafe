"""The ``mnprof-check`` pre-commit hook (``.pre-commit-hooks.yaml``), run by the real pre-commit in a user's git
repository: it passes on an unchanged model and fails a commit whose model grew.

pre-commit builds the hook's environment itself (``language: python``: a virtualenv and ``pip install`` of this
repository at a commit), so the test also checks that the pin in pyproject.toml gives that environment the CPU-only
torch. The environment takes a minute or two to build, once for both runs: the test is marked slow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_run import ROOT
from user_project import NETS, grown

pytestmark = pytest.mark.slow

GIT = ["git", "-c", "user.name=mnprof tests", "-c", "user.email=tests@mnprof.invalid", "-c", "commit.gpgsign=false"]


SETTINGS = """\
[project]
name = "user-project"
version = "0"

[tool.mnprof]
models = ["tiny=nets:tiny"]
alphas = [1.0]
resolutions = [32]
num_classes = 10
"""


def _commit_all(repo: Path, message: str) -> str:
    subprocess.run([*GIT, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-q", "-m", message], cwd=repo, check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True).stdout


def _hook_repository(tmp_path: Path) -> tuple[Path, str]:
    """This repository's hook and package (as they are in the working tree) as a git repository at one commit."""
    source = tmp_path / "mnprof-src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "mnprof", source / "mnprof", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["git", "init", "-q"], cwd=source, check=True)
    return source, _commit_all(source, "mnprof").strip()


def _pre_commit(repo: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "run", "mnprof-check", "--all-files", "--color", "never"],
        cwd=repo,
        env={**_environment(), "PRE_COMMIT_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=900,
    )


def _environment() -> dict[str, str]:
    """This process's environment without its Python settings: pre-commit's hook runs in an environment of its own."""
    return {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}


def test_the_hook_passes_an_unchanged_model_and_fails_one_that_grew(tmp_path):
    source, rev = _hook_repository(tmp_path)
    user = tmp_path / "user"
    user.mkdir()
    (user / "nets.py").write_text(NETS, encoding="utf-8")
    (user / "pyproject.toml").write_text(SETTINGS, encoding="utf-8")
    (user / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {source}\n    rev: {rev}\n    hooks:\n      - id: mnprof-check\n", encoding="utf-8"
    )
    recorded = subprocess.run(  # this repository's mnprof, as the hook's is
        [sys.executable, "-m", "mnprof", "baseline", "--quiet"],
        cwd=user,
        env={**_environment(), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    assert recorded.returncode == 0, recorded.stderr
    assert (user / "reports" / "baseline.json").is_file()  # mnprof's default place, created in a fresh project
    subprocess.run(["git", "init", "-q"], cwd=user, check=True)
    _commit_all(user, "a model and its baseline")

    home = tmp_path / "pre-commit-home"
    passed = _pre_commit(user, home)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "mnprof check" in passed.stdout and "Passed" in passed.stdout

    # the environment pre-commit built holds the CPU-only torch the pin selects, and no CUDA libraries
    site = list(home.glob("repo*/py_env-*/lib/python*/site-packages"))
    assert len(site) == 1, site
    (torch,) = site[0].glob("torch-*.dist-info")
    assert torch.name.removesuffix(".dist-info").endswith("+cpu"), torch.name
    assert not list(site[0].glob("nvidia*")), "CUDA libraries were installed into the hook's environment"

    (user / "nets.py").write_text(grown(), encoding="utf-8")
    grew = _pre_commit(user, home)
    assert grew.returncode == 1, grew.stdout + grew.stderr
    assert "Failed" in grew.stdout and "exit code: 1" in grew.stdout
    # 16 -> 24 channels: conv 3*3*3*c, BatchNorm 2c, linear c*10 + 10 params
    assert "FAIL      tiny@1.0-32 pytorch params: 634 -> 946 (+312, +49.21%)" in grew.stdout
    assert "mnprof check FAILED: 1 configurations compared" in grew.stdout
