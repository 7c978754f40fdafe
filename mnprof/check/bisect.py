"""``mnprof bisect``: the first commit between GOOD and BAD where a count grew versus GOOD's counts.

GOOD's counts are recorded with ``mnprof baseline`` in a copy of GOOD's tree (``git archive``: the repository
and its working tree are not touched for it); then ``git bisect run`` checks each commit it picks with
``mnprof check --tolerance 0`` against them (counts only: params, MACs, activations, peak activation memory,
fvcore's operators). A commit where the models cannot be counted is skipped (exit 125), as ``git bisect skip``.
Where git names BAD itself without having checked it, BAD is checked (in a copy of its tree) before it is named.

Everything that would make the search wrong or leave the repository changed is refused first, in one line: not a
git repository, an unknown commit, GOOD not an ancestor of BAD, a bisection already under way, a working tree
with changes to tracked files. ``git bisect reset`` runs whatever happens once the bisection has started (an
error, Ctrl-C, SIGTERM), which puts the repository back on the branch or commit it was on.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from mnprof.errors import MnprofError

__all__ = ["BisectResult", "bisect"]

SKIP = 125  # git bisect run: this commit cannot be tested
ACCEPTED_REPO = "accepted: run mnprof bisect inside a git checkout"


@dataclass(frozen=True)
class BisectResult:
    """The first commit whose counts grew (``commit``, its one-line ``subject``), and the commits checked (each with
    ``mnprof check``'s exit code: 0 passed, 1 grew, 2 could not be counted there)."""

    commit: str
    subject: str
    checks: tuple[tuple[str, int], ...]
    good: str
    bad: str


def _git(args: Sequence[str], cwd: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise MnprofError("git is not installed; accepted: a system with git on PATH") from None
    if check and done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise MnprofError(f"git {' '.join(args)} failed: {last}")
    return done


def _resolve(name: str, what: str, top: Path) -> str:
    if not name or name.startswith("-"):
        raise MnprofError(f"{what} {name!r} is not a commit; accepted: a commit, branch or tag of this repository")
    done = _git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{name}^{{commit}}"], top, check=False)
    if done.returncode != 0:
        raise MnprofError(f"{what} {name!r} is not a commit of this repository; accepted: a commit, branch or tag")
    return done.stdout.strip()


def preflight(good: str, bad: str, cwd: Path) -> tuple[Path, str, str]:
    """The repository's top directory and GOOD's and BAD's full commits, or a one-line :class:`MnprofError`."""
    done = _git(["rev-parse", "--show-toplevel"], cwd, check=False)
    if done.returncode != 0 or not done.stdout.strip():
        raise MnprofError(f"{cwd} is not inside a git repository; {ACCEPTED_REPO}")
    top = Path(done.stdout.strip())
    if _git(["bisect", "log"], top, check=False).returncode == 0:
        raise MnprofError(
            "a git bisect is already under way in this repository; accepted: finish it first (git bisect reset)"
        )
    good_commit, bad_commit = _resolve(good, "GOOD", top), _resolve(bad, "BAD", top)
    if good_commit == bad_commit:
        raise MnprofError(f"GOOD {good} and BAD {bad} are the same commit; accepted: GOOD an ancestor of BAD")
    if _git(["merge-base", "--is-ancestor", good_commit, bad_commit], top, check=False).returncode != 0:
        raise MnprofError(f"GOOD {good} is not an ancestor of BAD {bad}; accepted: GOOD an ancestor of BAD")
    changed = _git(["status", "--porcelain", "--untracked-files=no"], top).stdout.strip().splitlines()
    if changed:
        raise MnprofError(
            f"the working tree has changes to {len(changed)} tracked files ({changed[0].strip()}"
            f"{', ...' if len(changed) > 1 else ''}); accepted: a clean working tree (commit or stash them)"
        )
    return top, good_commit, bad_commit


def _export(commit: str, top: Path, into: Path) -> None:
    """GOOD's (or BAD's) tree as files in ``into``, without touching the repository's working tree or index."""
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=top, capture_output=True, check=False)
    if archive.returncode != 0:
        raise MnprofError(f"git archive {commit[:12]} failed: {archive.stderr.decode(errors='replace').strip()}")
    into.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")


def _last_error(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    line = next((line for line in reversed(lines) if line.startswith("mnprof: error: ")), lines[-1] if lines else "")
    return line.removeprefix("mnprof: error: ") or "(no message)"


def _mnprof(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mnprof", *args], cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )


STEP_SCRIPT = """\
import os, subprocess, sys
os.chdir({cwd!r})
code = subprocess.run({command!r}, stdin=subprocess.DEVNULL).returncode
head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
with open({steps!r}, "a") as steps:
    steps.write(f"{{head}} {{code}}\\n")
sys.exit({skip} if code == 2 else code)
"""


def _run_bisect(top: Path, script: Path, log: Path) -> int:
    """``git bisect run`` in its own process group, ended with everything it started if we are interrupted."""
    with log.open("w") as output:
        process = subprocess.Popen(
            ["git", "bisect", "run", sys.executable, str(script)],
            cwd=top,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            return process.wait()
        except BaseException:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            raise


def _reset(top: Path) -> None:
    """``git bisect reset``, which a second Ctrl-C must not cut short: the interrupts wait until it is done (and are
    then delivered: the command still ends as interrupted). Harmless where the bisection never started, since
    :func:`preflight` refused one under way."""
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, ValueError, OSError):  # a system without it
        previous = None
    try:
        _git(["bisect", "reset"], top, check=False)
    finally:
        if previous is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def bisect(
    good: str,
    bad: str,
    check_args: Sequence[str],
    *,
    cwd: Path | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> BisectResult:
    """Find the first commit after ``good`` up to ``bad`` where ``mnprof check`` against ``good``'s counts fails.

    ``check_args``: the options that choose the models and grid (``--model``, ``--alpha``, ...), given to both
    ``mnprof baseline`` at GOOD and ``mnprof check`` at each commit. A one-line :class:`MnprofError` for anything
    refused or failed; the repository is always left on the branch or commit it was on.
    """
    cwd = Path.cwd() if cwd is None else cwd
    say = on_stage or (lambda _: None)
    top, good_commit, bad_commit = preflight(good, bad, cwd)
    inside = cwd.resolve().relative_to(top.resolve())  # where mnprof runs, in each copy of the tree as here
    with tempfile.TemporaryDirectory(prefix="mnprof-bisect-") as temporary:
        work = Path(temporary)
        say(f"counting GOOD {good_commit[:12]}")
        baseline = _count_good(good_commit, top, work, inside, check_args)
        check = [sys.executable, "-m", "mnprof", "check", "-q", "--baseline", str(baseline), "--tolerance", "0"]
        check += list(check_args)
        found, checks = _run_steps(top, work, cwd, check, (good_commit, bad_commit), say)
        if found == bad_commit and bad_commit not in {commit for commit, _ in checks}:
            say(f"checking BAD {bad_commit[:12]}")
            checks += ((bad_commit, _check_bad(bad_commit, top, work, inside, check[3:], (good, bad))),)
    subject = _git(["log", "-1", "--format=%s", found], top).stdout.strip()
    return BisectResult(found, subject, checks, good_commit, bad_commit)


def _count_good(good_commit: str, top: Path, work: Path, inside: Path, check_args: Sequence[str]) -> Path:
    """GOOD's counts, recorded with ``mnprof baseline`` in a copy of GOOD's tree: the baseline file."""
    baseline = work / "good-baseline.json"
    _export(good_commit, top, work / "good")
    recorded = _mnprof(["baseline", "-q", "--out", str(baseline), *check_args], work / "good" / inside)
    if recorded.returncode != 0:
        raise MnprofError(f"counting GOOD {good_commit[:12]} failed: {_last_error(recorded.stderr)}")
    return baseline


def _run_steps(
    top: Path, work: Path, cwd: Path, check: list[str], commits: tuple[str, str], say: Callable[[str], None]
) -> tuple[str, tuple[tuple[str, int], ...]]:
    """``git bisect run`` with ``check`` at each commit it picks, and ``git bisect reset`` whatever happens: the
    first bad commit git names, and the commits checked with their exit codes."""
    good_commit, bad_commit = commits
    steps = work / "steps"
    script = work / "step.py"
    script.write_text(STEP_SCRIPT.format(cwd=str(cwd), command=check, steps=str(steps), skip=SKIP))
    log = work / "bisect.log"
    say(f"bisecting {good_commit[:12]}..{bad_commit[:12]}")
    try:
        _git(["bisect", "start", bad_commit, good_commit], top)
        code = _run_bisect(top, script, log)
        # the bisection's own log says how it ended, in words git does not translate (its output it may)
        ended = _git(["bisect", "log"], top, check=False).stdout
    finally:
        _reset(top)
    text = log.read_text(errors="replace")
    checks = tuple(
        (commit, int(result))
        for commit, _, result in (line.partition(" ") for line in steps.read_text().splitlines())
    ) if steps.exists() else ()  # fmt: skip
    first = re.search(r"^# first bad commit: \[([0-9a-f]+)\]", ended, re.MULTILINE)
    if first is None:
        if "# only skipped commits left to test" in ended:
            raise MnprofError(
                "the models could not be counted at the commits left to decide between; accepted: commits where "
                f"mnprof check runs (try it at one: {_last_error(text)})"
            )
        raise MnprofError(f"git bisect run failed (exit {code}): {_last_error(text)}")
    return first.group(1), checks


def _check_bad(
    bad_commit: str, top: Path, work: Path, inside: Path, check_args: list[str], given: tuple[str, str]
) -> int:
    """BAD checked in a copy of its tree, where git named it without checking it: its ``mnprof check`` exit code,
    which must say that a count grew."""
    good, bad = given
    _export(bad_commit, top, work / "bad")
    checked = _mnprof(check_args, work / "bad" / inside)
    if checked.returncode == 0:
        raise MnprofError(
            f"no count grew from GOOD {good} to BAD {bad} (mnprof check passes at BAD against GOOD's counts); "
            "accepted: a BAD commit whose counts grew"
        )
    if checked.returncode != 1:
        raise MnprofError(f"checking BAD {bad_commit[:12]} failed: {_last_error(checked.stderr)}")
    return checked.returncode
