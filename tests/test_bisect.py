"""mnprof bisect in temporary git repositories: the commit that grew found in few checks, refusals in one line, and
the repository always left on the branch it was on."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_run import run

from mnprof.check import bisect as bisect_module

NETS = """from torch import nn
WIDTH = {width}
def tiny(alpha, num_classes):
    c = max(1, int(WIDTH * alpha))
    return nn.Sequential(nn.Conv2d(3, c, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(c, num_classes))
"""
GRID = ("--model", "tiny=nets:tiny", "--alpha", "1.0", "--resolution", "64", "--classes", "10")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def make_repo(path: Path, commits: int, grow_at: int | None) -> list[str]:
    """``commits`` commits of a tiny family whose width grows from 8 to 12 at commit ``grow_at`` (1-based); every
    commit also changes a note, so each is a commit of its own. Returns the commits, oldest first."""
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "test@example.com")
    git(path, "config", "user.name", "test")
    for index in range(1, commits + 1):
        width = 12 if grow_at is not None and index >= grow_at else 8
        (path / "nets.py").write_text(NETS.format(width=width))
        (path / "notes.txt").write_text(f"change {index}\n")
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", f"commit {index}")
    return git(path, "rev-list", "--reverse", "HEAD").splitlines()


def state(repo: Path) -> tuple[str, str, str]:
    """The branch, the commit and the tracked changes: what mnprof bisect must leave as it found them."""
    return git(repo, "symbolic-ref", "-q", "HEAD"), git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain")


def not_bisecting(repo: Path) -> bool:
    return subprocess.run(["git", "bisect", "log"], cwd=repo, capture_output=True).returncode != 0


@pytest.fixture
def repo(tmp_path, monkeypatch) -> tuple[Path, list[str]]:
    path = tmp_path / "repo"
    commits = make_repo(path, 4, grow_at=3)
    monkeypatch.chdir(path)
    return path, commits


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope", "HEAD"), "GOOD 'nope' is not a commit of this repository"),
        (("HEAD~1", "0123456789abcdef0123"), "BAD '0123456789abcdef0123' is not a commit"),
        (("HEAD", "HEAD~2"), "is not an ancestor of BAD"),
        (("HEAD", "HEAD"), "are the same commit"),
        (("--", "-x", "HEAD"), "GOOD '-x' is not a commit"),
        (("HEAD~2", "HEAD", "--alpha", "9"), "alpha 9 is out of range"),
    ],
)
def test_refusals_are_one_line_exit_2_and_change_nothing(capsys, repo, args, message):
    path, _ = repo
    before = state(path)
    code, out, err = run(capsys, "bisect", *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("mnprof: error: ") and message in err and "accepted" in err
    assert state(path) == before and not_bisecting(path)


def test_a_dirty_tree_and_a_bisection_under_way_are_refused(capsys, repo):
    path, commits = repo
    (path / "nets.py").write_text("changed\n")
    code, _, err = run(capsys, "bisect", "HEAD~3", "HEAD")
    assert code == 2 and "working tree has changes to 1 tracked files (M nets.py)" in err
    git(path, "checkout", "-q", "nets.py")
    git(path, "bisect", "start", "HEAD", commits[0])
    try:
        code, _, err = run(capsys, "bisect", "HEAD~3", "HEAD")
        assert code == 2 and "already under way" in err
        assert git(path, "bisect", "log")  # the user's own bisection is left alone
    finally:
        git(path, "bisect", "reset")


def test_outside_a_repository(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "bisect", "a", "b")
    assert code == 2 and out == "" and "is not inside a git repository" in err and err.count("\n") == 1


def test_interrupted_bisection_is_reset_to_the_branch(capsys, repo, monkeypatch):
    path, _ = repo
    before = state(path)
    done = subprocess.CompletedProcess([], 0, "", "")
    monkeypatch.setattr(bisect_module, "_mnprof", lambda args, cwd: done)  # GOOD's counts "recorded"
    seen = []

    def interrupted(top, script, log):
        seen.append(git(path, "bisect", "log"))  # it was bisecting, on a commit between GOOD and BAD
        raise KeyboardInterrupt

    monkeypatch.setattr(bisect_module, "_run_bisect", interrupted)
    code, out, err = run(capsys, "bisect", "HEAD~3", "HEAD", "-q")
    assert seen and code == 130 and "interrupted" in err
    assert state(path) == before and not_bisecting(path)


@pytest.mark.slow
def test_finds_the_commit_that_grew_macs_in_twenty_commits_within_six_checks(capsys, tmp_path, monkeypatch):
    path = tmp_path / "repo"
    commits = make_repo(path, 20, grow_at=13)
    monkeypatch.chdir(path)
    before = state(path)
    code, out, err = run(capsys, "bisect", commits[0], commits[-1], *GRID)
    assert code == 0, err
    first, summary = out.splitlines()
    assert first == f"{commits[12]} is the first commit whose counts grew: commit 13"
    checks = int(summary.split(":")[1].split()[0])
    assert checks <= 6, summary
    assert state(path) == before and not_bisecting(path)


@pytest.mark.slow
def test_bad_whose_counts_did_not_grow_is_one_line(capsys, tmp_path, monkeypatch):
    path = tmp_path / "repo"
    commits = make_repo(path, 3, grow_at=None)
    monkeypatch.chdir(path)
    before = state(path)
    code, out, err = run(capsys, "bisect", commits[0], commits[-1], "-q", *GRID)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "no count grew from GOOD" in err
    assert state(path) == before and not_bisecting(path)


@pytest.mark.slow
def test_ctrl_c_while_bisecting_resets_to_the_branch(tmp_path):
    path = tmp_path / "repo"
    commits = make_repo(path, 8, grow_at=5)
    before = state(path)
    command = [sys.executable, "-m", "mnprof", "bisect", commits[0], commits[-1], *GRID]
    process = subprocess.Popen(  # SIGINT as a terminal sends it (a background job of a script starts ignoring it)
        command, cwd=path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not_bisecting(path) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not not_bisecting(path), "never started bisecting"
        time.sleep(3)  # a check is running
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert err.splitlines()[-1].startswith("mnprof: error: interrupted")
    assert state(path) == before and not_bisecting(path)
