"""The instructions gate: mnprof baseline --instructions records them, mnprof check --instructions compares.

The fast tests run no Valgrind: ``mnprof.timing.instructions``' check and count are replaced by stand-ins that say
what a run would have counted, so the recording, refusals, comparison and reports are tested as they run. The test
marked slow counts under Valgrind, end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_run import ROOT, TINY_GRID, refused, run

from mnprof.check.findings import INSTRUCTIONS_COUNTER, compare
from mnprof.check.instructions import add_instructions, usable_instructions
from mnprof.errors import MnprofError
from mnprof.files.schemas import schema_problem
from mnprof.model.config import default_grid
from mnprof.timing import instructions as callgrind

CHECK_AVAILABLE = callgrind.check_available  # the real one, before any stand-in
COUNTED = 5_000_000  # the stand-in's instructions per forward pass of 0.25-32
KEY = "mobilenetv1@0.25-32"


class FakeValgrind:
    """What a Valgrind run would count: ``COUNTED`` times ``growth``, and every call's arguments."""

    def __init__(self) -> None:
        self.growth = 1.0
        self.calls: list[dict] = []

    def count(self, configs, **how):
        self.calls.append(how)
        counted = round(COUNTED * self.growth)
        return callgrind.InstructionRun(
            tuple(callgrind.InstructionCount(config.id, (counted,) * how.get("passes", 1)) for config in configs),
            "3.19.0",
            callgrind.torch.__version__,
            1.0,
            torch_git=str(callgrind.torch.version.git_version),
            **how,
        )


@pytest.fixture
def valgrind(monkeypatch):
    fake = FakeValgrind()
    monkeypatch.setattr(callgrind, "check_available", lambda device="cpu": "3.19.0")
    monkeypatch.setattr(
        callgrind, "count_instructions", lambda configs, on_event=None, **how: fake.count(configs, **how)
    )
    return fake


@pytest.fixture
def recorded(capsys, tmp_path, valgrind) -> Path:
    """A baseline of the tiny grid with instructions (as the stand-in counted them)."""
    path = tmp_path / "baseline.json"
    code, _, err = run(capsys, "baseline", *TINY_GRID, "-q", "--instructions", "--out", str(path))
    assert code == 0, err
    return path


def check(capsys, baseline: Path, *args: str) -> tuple[int, str, str]:
    return run(capsys, "check", *TINY_GRID, "-q", "--baseline", str(baseline), *args)


def edit(path: Path, **section) -> None:
    document = json.loads(path.read_text())
    document["instructions"].update(section)
    path.write_text(json.dumps(document))


def test_baseline_records_instructions_with_the_software_that_decides_them(recorded, valgrind):
    document = json.loads(recorded.read_text())
    assert schema_problem(document, "baseline") is None
    section = document["instructions"]
    assert section["entries"] == {KEY: {"instructions": COUNTED, "passes": [COUNTED] * callgrind.PASSES}}
    assert section["valgrind"] == "3.19.0" and section["torch"] == callgrind.torch.__version__
    assert section["torch_git"] and section["python"] and section["machine"]
    assert (section["passes"], section["warmup"]) == (callgrind.PASSES, callgrind.WARMUP)
    assert valgrind.calls == [{"passes": callgrind.PASSES, "warmup": callgrind.WARMUP,
                               "warm_first": callgrind.WARM_FIRST, "processes": callgrind.PROCESSES}]  # fmt: skip


def test_unchanged_instructions_pass_and_are_compared(capsys, recorded):
    code, out, _ = check(capsys, recorded, "--instructions")
    assert code == 0, out
    assert "passed" in out and "instructions tolerance 1%" in out


def test_instructions_grown_beyond_the_tolerance_fail_as_counts_do(capsys, recorded, valgrind):
    valgrind.growth = 1.05
    code, out, _ = check(capsys, recorded, "--instructions")
    assert code == 1
    grown = round(COUNTED * 1.05)
    assert f"FAIL      {KEY} callgrind instructions: {COUNTED:,} -> {grown:,} (+{grown - COUNTED:,}, +5.00%)" in out
    assert "1 grew" in out and "FAILED" in out
    code, out, _ = check(capsys, recorded, "--instructions", "--format", "github")
    assert code == 1 and f"::error title=mnprof%3A {KEY} grew::{KEY} callgrind instructions" in out
    code, out, _ = check(capsys, recorded, "--instructions", "--format", "markdown")
    assert code == 1 and f"| FAIL | `{KEY}` | callgrind | `instructions` | 5,000,000 | 5,250,000 |" in out
    code, out, _ = check(capsys, recorded, "--instructions", "--format", "junit")
    assert code == 1 and 'name="callgrind instructions"' in out and "instructions tolerance 1%" in out
    code, out, _ = check(capsys, recorded, "--instructions", "--format", "json")
    report = json.loads(out)
    assert code == 1 and report["instructions_tolerance_pct"] == 1.0
    (finding,) = [f for f in report["findings"] if f["counter"] == INSTRUCTIONS_COUNTER]
    assert finding["fails"] and finding["baseline"] == COUNTED and finding["now"] == grown


def test_growth_within_the_tolerance_passes_and_the_tolerance_is_its_own(capsys, recorded, valgrind):
    valgrind.growth = 1.005  # within the default 1%
    code, out, _ = check(capsys, recorded, "--instructions")
    assert code == 0 and "grew" in out and "FAIL" not in out
    valgrind.growth = 1.05
    code, out, _ = check(capsys, recorded, "--instructions-tolerance", "6%")  # implies --instructions
    assert code == 0 and "instructions tolerance 6%" in out
    code, _, _ = check(capsys, recorded, "--instructions", "--tolerance", "10%")  # the counts' tolerance is not it
    assert code == 1


def test_the_tolerance_is_read_from_pyproject(capsys, recorded, valgrind, tmp_path):
    config = tmp_path / "pyproject.toml"
    config.write_text('[tool.mnprof]\ninstructions_tolerance = "6%"\n')
    valgrind.growth = 1.05
    code, out, _ = check(capsys, recorded, "--instructions", "--config", str(config))
    assert code == 0 and "instructions tolerance 6%" in out
    code, _, _ = check(capsys, recorded, "--instructions", "--config", str(config), "--instructions-tolerance", "1")
    assert code == 1


def test_check_counts_as_the_baseline_counted(capsys, recorded, valgrind):
    edit(recorded, passes=2, warmup=3, warm_first=True, processes=1)
    code, _, _ = check(capsys, recorded, "--instructions")
    assert code == 0
    assert valgrind.calls[-1] == {"passes": 2, "warmup": 3, "warm_first": True, "processes": 1}


def test_a_counts_only_check_ignores_the_instructions_and_starts_no_valgrind(capsys, recorded, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("Valgrind started without --instructions")

    monkeypatch.setattr(callgrind, "count_instructions", refuse)
    monkeypatch.setattr(callgrind, "check_available", refuse)
    code, out, _ = check(capsys, recorded)
    assert code == 0 and "callgrind" not in out and "instructions" not in out


@pytest.mark.parametrize("tolerance", ["-1%", "abc", "1_0"])
def test_a_bad_tolerance_is_one_line(capsys, recorded, tolerance):
    args = ("check", *TINY_GRID, "-q", "--baseline", str(recorded), f"--instructions-tolerance={tolerance}")
    err = refused(capsys, *args)
    assert "accepted: a percentage >= 0" in err


def test_a_bad_tolerance_in_pyproject_is_one_line(capsys, recorded, tmp_path):
    config = tmp_path / "pyproject.toml"
    config.write_text('[tool.mnprof]\ninstructions_tolerance = "abc"\n')
    err = refused(capsys, "check", *TINY_GRID, "-q", "--baseline", str(recorded), "--config", str(config))
    assert "instructions_tolerance" in err


def test_a_baseline_without_instructions_is_refused_before_any_work(capsys, tmp_path, valgrind):
    path = tmp_path / "counts.json"
    assert run(capsys, "baseline", *TINY_GRID, "-q", "--out", str(path))[0] == 0
    assert run(capsys, "check", *TINY_GRID, "-q", "--baseline", str(path))[0] == 0  # counts only: still fine
    err = refused(capsys, "check", *TINY_GRID, "-q", "--baseline", str(path), "--instructions")
    assert "has no instructions" in err and f"mnprof baseline --instructions --out {path}" in err
    assert valgrind.calls == []


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [("torch", "2.0.0+cpu", "torch 2.0.0+cpu"), ("valgrind", "3.15.0", "Valgrind 3.15.0"),
     ("torch_git", "0123abc", "torch commit 0123abc")],
)  # fmt: skip
def test_a_baseline_of_other_software_is_refused_or_compared_with_force(capsys, recorded, valgrind, key, value, named):
    edit(recorded, **{key: value})
    valgrind.calls.clear()
    err = refused(capsys, "check", *TINY_GRID, "-q", "--baseline", str(recorded), "--instructions")
    here = {"torch": f"torch {callgrind.torch.__version__}", "valgrind": "Valgrind 3.19.0",
            "torch_git": f"torch commit {callgrind.torch.version.git_version}"}[key]  # fmt: skip
    assert f"counted with {named}, this check counts with {here}" in err and "--force" in err
    assert valgrind.calls == []  # refused before any work
    code, out, _ = check(capsys, recorded, "--instructions", "--force")
    assert code == 0 and out.startswith(f"WARNING   --force: instructions compared across software (baseline: {named}")
    valgrind.growth = 1.05
    code, out, _ = check(capsys, recorded, "--instructions", "--force", "--format", "github")
    assert code == 1 and out.startswith("::warning title=mnprof check::--force: instructions compared")
    code, out, _ = check(capsys, recorded, "--instructions", "--force", "--format", "json")
    assert json.loads(out)["warnings"][0].startswith("--force")


def test_merge_refuses_a_baseline_with_instructions(capsys, recorded, tmp_path):
    other = tmp_path / "other.json"
    assert run(capsys, "baseline", "--alpha", "0.5", "--resolution", "32", "-q", "--out", str(other))[0] == 0
    err = refused(capsys, "merge", str(recorded), str(other), "--out", str(tmp_path / "merged.json"))
    assert "holds instructions" in err and not (tmp_path / "merged.json").exists()


def test_force_without_instructions_is_refused(capsys, recorded):
    err = refused(capsys, "check", *TINY_GRID, "-q", "--baseline", str(recorded), "--force")
    assert "accepted with --instructions" in err


def test_no_valgrind_is_one_line_naming_how_to_install_it(capsys, recorded, monkeypatch, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(callgrind, "check_available", CHECK_AVAILABLE)  # the real check, finding no Valgrind
    err = refused(capsys, "check", *TINY_GRID, "-q", "--baseline", str(recorded), "--instructions")
    assert "apt-get install valgrind" in err
    err = refused(capsys, "baseline", *TINY_GRID, "-q", "--instructions", "--out", str(tmp_path / "b.json"))
    assert "apt-get install valgrind" in err and not (tmp_path / "b.json").exists()


def test_cuda_is_refused_naming_what_can_run():
    with pytest.raises(Exception, match=r"cannot run with --device cuda: accepted: --device cpu"):
        callgrind.check_available("cuda")


def test_the_comparison_with_recorded_values():
    """The comparison alone, on hand-made entries: growth beyond the instructions tolerance fails, within passes,
    shrinkage passes with a notice, and the counts' own tolerance does not apply to instructions."""
    section = {"entries": {"m@1.0-224": {"instructions": 1_000_000}, "m@0.5-224": {"instructions": 1_000_000}}}
    baseline = {key: {"counts": {"pytorch": {"params": 10}}} for key in ("m@1.0-224", "m@0.5-224")}
    now = {key: {"counts": {"pytorch": {"params": 10}}} for key in ("m@1.0-224", "m@0.5-224")}
    add_instructions(baseline, section)
    counted = {"m@1.0-224": {"instructions": 1_020_000}, "m@0.5-224": {"instructions": 995_000}}
    add_instructions(now, {"entries": counted})
    assert "callgrind" not in section  # copies
    result = compare(baseline, now, tolerance_pct=50.0, instructions_tolerance_pct=1.0)
    assert [(f.entry, f.status) for f in result.failures] == [("m@1.0-224", "grew")]
    assert [(f.entry, f.status) for f in result.findings] == [("m@0.5-224", "shrank"), ("m@1.0-224", "grew")]
    assert compare(baseline, now, tolerance_pct=0.0, instructions_tolerance_pct=2.5).passed


def test_usable_instructions_names_every_software_that_differs(tmp_path):
    here = {"torch": "2.13.0+cpu", "torch_git": "abc", "valgrind": "3.19.0", "python": "3.11.7", "machine": "x86_64"}
    section = {"method": "callgrind-forward-batch1", **here}
    assert usable_instructions(section, here, tmp_path / "b.json", force=False) == ()
    with pytest.raises(Exception, match=r"counted with Python 3\.12\.1, machine aarch64, this check counts with "
                                        r"Python 3\.11\.7, machine x86_64"):  # fmt: skip
        usable_instructions({**section, "python": "3.12.1", "machine": "aarch64"}, here, tmp_path / "b.json", False)
    with pytest.raises(Exception, match="counted another way"):
        usable_instructions({**section, "method": "x"}, here, tmp_path / "b.json", False)


def test_a_counts_only_check_imports_no_instruction_code(tmp_path):
    """Nothing of the instructions gate is imported without --instructions (a counts-only check stays as fast)."""
    baseline = tmp_path / "b.json"
    code = f"""
import sys
from mnprof.cli import main
assert main(['baseline', '--alpha', '0.25', '--resolution', '32', '-q', '--out', {str(baseline)!r}]) == 0
assert main(['check', '--alpha', '0.25', '--resolution', '32', '-q', '--baseline', {str(baseline)!r}]) == 0
print(sorted(name for name in sys.modules if 'instructions' in name or 'callgrind' in name))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"


needs_valgrind = pytest.mark.skipif(
    shutil.which("valgrind") is None, reason="Valgrind is not installed (apt-get install valgrind; CI installs it)"
)


@pytest.mark.slow
@needs_valgrind
def test_the_gate_end_to_end_under_valgrind(tmp_path):
    """baseline --instructions, then check --instructions: the same model passes; the model doing more elementwise
    work at the same MACs fails on its instructions."""
    baseline = tmp_path / "baseline.json"
    model = ["--model", "net=tests.grown_family:mobilenet", "--alpha", "0.25", "--resolution", "32", "-q"]

    def mnprof(*args: str, grown: bool = False) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, MNPROF_TEST_GROWN="1" if grown else "0", PYTHONPATH=str(ROOT))
        return subprocess.run([sys.executable, "-m", "mnprof", *args], capture_output=True, text=True, env=env,
                              cwd=ROOT, check=False)  # fmt: skip

    done = mnprof("baseline", *model, "--instructions", "--out", str(baseline))
    assert done.returncode == 0, done.stderr
    section = json.loads(baseline.read_text())["instructions"]
    assert section["entries"]["net@0.25-32"]["instructions"] > 1_000_000
    done = mnprof("check", *model, "--baseline", str(baseline), "--instructions", "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    done = mnprof("check", *model, "--baseline", str(baseline), "--instructions", "--format", "json", grown=True)
    assert done.returncode == 1, done.stdout + done.stderr
    (grew,) = [f for f in json.loads(done.stdout)["findings"] if f["counter"] == INSTRUCTIONS_COUNTER]
    assert grew["fails"] and grew["percent"] > 1.0


def test_the_grid_is_dealt_to_the_processes_by_size_the_same_way_every_time():
    grid = default_grid()
    parts = callgrind.split_grid(grid, 2)
    assert parts == callgrind.split_grid(list(grid), 2)  # the grid alone decides
    assert sorted(config.id for part in parts for config in part) == sorted(config.id for config in grid)
    for part in parts:  # each part in the grid's order
        assert [grid.index(config) for config in part] == sorted(grid.index(config) for config in part)
    work = [sum((config.alpha * config.resolution) ** 2 for config in part) for part in parts]
    assert max(work) / min(work) < 1.1
    assert callgrind.split_grid(grid[:1], 2) == [grid[:1]]  # one configuration: one process


def test_a_failing_process_of_two_is_one_line_and_stops_the_other(monkeypatch, tmp_path):
    """Two processes share the grid; the one that fails is named by its last word, the other is stopped."""
    for name, body in (
        ("valgrind", 'if [ "$1" = --version ]; then echo valgrind-3.19.0; exit 0; fi\n'
                     'case "$*" in *part0*) sleep 60;; *) echo "valgrind: part 1 failed" >&2; exit 1;; esac\n'),
        ("callgrind_control", "exit 0\n"),
    ):  # fmt: skip
        path = tmp_path / name
        path.write_text(f"#!/bin/sh\n{body}")
        path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    configs = default_grid()[-2:]
    started = time.monotonic()
    with pytest.raises(MnprofError, match=r"under Valgrind failed: valgrind: part 1 failed$"):
        callgrind.count_instructions(configs, processes=2)
    assert time.monotonic() - started < 50  # the sleeping process was not waited for
