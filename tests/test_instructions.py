"""Instructions per forward pass under Valgrind's Callgrind (mnprof.timing.instructions, mnprof table --instructions).

The parsing of Callgrind's dumps, the refusals and the table's columns run without Valgrind; the tests marked
slow run it (CI installs it in .ci/run)."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pandas as pd
import pytest
from cli_run import run

from mnprof.errors import MnprofError
from mnprof.model.config import ModelConfig
from mnprof.timing import instructions as callgrind
from mnprof.views.instructions import instruction_columns, with_instructions

DUMP = """# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 4242
cmd:  python callgrind_driver.py models.pt
part: {part}

desc: I1 cache:
desc: D1 cache:
desc: LL cache:
desc: Timerange: Basic block 30263474 - 39876420
desc: Trigger: Client Request

positions: line
events: Ir
summary: {count}

fn=(1) main
0 {count}

totals: {count}
"""


def test_instructions_are_read_from_the_totals_line():
    assert callgrind.instructions_of(DUMP.format(part=1, count=15_604_052)) == 15_604_052


def test_summary_is_read_when_there_is_no_totals_line_and_ir_is_found_among_several_events():
    text = "events: Dr Ir Dw\nsummary: 5 173802663 7\n"
    assert callgrind.instructions_of(text) == 173_802_663


@pytest.mark.parametrize("text", ["", "events: Dr\ntotals: 4\n", "events: Ir\n", "not a dump"])
def test_a_file_without_ir_totals_is_refused(text):
    with pytest.raises(MnprofError, match="no Ir totals"):
        callgrind.instructions_of(text)


def test_dumps_are_assigned_to_configurations_by_part(tmp_path):
    counts = {1: 100, 2: 102, 3: 101, 4: 200, 5: 200, 6: 201}
    for part, count in counts.items():  # file names in another order than the parts: the part decides
        (tmp_path / f"callgrind.out.{7 - part}").write_text(DUMP.format(part=part, count=count))
    (tmp_path / "callgrind.out").write_text(DUMP.format(part=7, count=0))  # the final dump at exit: not read
    first, second = callgrind.read_dumps(tmp_path, ["a", "b"], 3)
    assert first.id == "a" and first.passes == (100, 102, 101) and first.instructions == 101
    assert second.passes == (200, 200, 201) and second.instructions == 200
    assert first.spread_pct == pytest.approx(2.0)
    assert first.row() == {
        "id": "a",
        "instructions": 101,
        "instructions_spread_pct": pytest.approx(2.0),
        "instructions_passes": 3,
    }


def test_a_missing_dump_or_an_empty_count_is_an_error(tmp_path):
    (tmp_path / "callgrind.out.1").write_text(DUMP.format(part=1, count=10))
    with pytest.raises(MnprofError, match="1 dumps, 2 expected"):
        callgrind.read_dumps(tmp_path, ["a"], 2)
    (tmp_path / "callgrind.out.2").write_text(DUMP.format(part=2, count=0))
    with pytest.raises(MnprofError, match="no instructions for a"):
        callgrind.read_dumps(tmp_path, ["a"], 2)


@pytest.mark.parametrize(
    ("text", "version"),
    [("valgrind-3.19.0\n", (3, 19, 0)), ("valgrind-3.22.0.GIT", (3, 22, 0)), ("valgrind-3.15", (3, 15, 0))],
)
def test_valgrind_versions_are_parsed(text, version):
    assert callgrind.parse_valgrind_version(text) == version


@pytest.mark.parametrize("text", ["", "3.19.0", "valgrind: not found", "valgrind-x.y"])
def test_what_is_not_a_valgrind_version_is_none(text):
    assert callgrind.parse_valgrind_version(text) is None


def fake_valgrind(directory, version: str) -> None:
    """``valgrind`` and ``callgrind_control`` on a PATH of their own; valgrind says ``version``."""
    for name, said in (("valgrind", version), ("callgrind_control", "")):
        path = directory / name
        path.write_text(f"#!/bin/sh\necho '{said}'\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_cuda_is_refused_naming_what_can_run():
    with pytest.raises(MnprofError, match=r"cannot run with --device cuda: accepted: --device cpu"):
        callgrind.check_available("cuda")


def test_missing_valgrind_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MnprofError, match="apt-get install valgrind"):
        callgrind.check_available()


def test_too_old_valgrind_is_refused(monkeypatch, tmp_path):
    fake_valgrind(tmp_path, "valgrind-3.10.1")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MnprofError, match=r"needs Valgrind 3\.15 or later, found 'valgrind-3\.10\.1'.*apt-get"):
        callgrind.check_available()


def test_a_new_enough_valgrind_is_accepted(monkeypatch, tmp_path):
    fake_valgrind(tmp_path, "valgrind-3.19.0")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert callgrind.check_available() == "3.19.0"


def one_line_error(capsys, *args: str) -> str:
    code, out, err = run(capsys, "table", *args)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith("mnprof: error: ")
    return err


def test_table_refuses_instructions_on_cuda(capsys):
    err = one_line_error(capsys, "--no-timing", "--instructions", "--device", "cuda", "--alpha", "0.25")
    assert "--device cpu" in err


def test_table_refuses_instructions_without_valgrind(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    err = one_line_error(capsys, "--no-timing", "--instructions", "--alpha", "0.25", "--resolution", "128")
    assert "apt-get install valgrind" in err


def test_table_refuses_instructions_with_another_view(capsys):
    assert "--view grid" in one_line_error(capsys, "--view", "counts", "--instructions")


def test_the_default_table_starts_no_valgrind(capsys, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("Valgrind started without --instructions")

    monkeypatch.setattr(callgrind, "count_instructions", refuse)
    monkeypatch.setattr(callgrind, "check_available", refuse)
    code, out, _ = run(capsys, "table", "--no-timing", "--alpha", "0.25", "--resolution", "128", "--format", "json")
    assert code == 0 and "instructions" not in out


ROWS = [
    {
        "id": "0.25-128",
        "instructions": 15_604_052,
        "instructions_spread_pct": 0.04,
        "instructions_passes": 3,
        "valgrind": "3.19.0",
        "torch_instructions": "2.13.0+cpu",
    }
]


def test_instruction_columns_join_by_id_with_instructions_per_mac():
    frame = pd.DataFrame([{"id": "0.25-128", "macs_analytic": 13_570_000}, {"id": "1.0-224", "macs_analytic": 9}])
    joined = with_instructions(frame, ROWS)
    assert joined.loc[0, "instructions"] == 15_604_052
    assert joined.loc[0, "instructions_per_mac"] == pytest.approx(15_604_052 / 13_570_000)
    assert pd.isna(joined.loc[1, "instructions"])
    columns, notes = instruction_columns(joined, compact=True)
    assert [column.header for column in columns] == ["M instr", "instr/MAC"]
    assert columns[0].cell(joined.loc[0]) == "15.6" and columns[1].cell(joined.loc[0]) == "1.150"
    assert "Valgrind 3.19.0" in notes[0] and "median of 3 passes" in notes[0]
    assert instruction_columns(frame) == ((), ())


def test_table_shows_the_instruction_columns(capsys, monkeypatch):
    monkeypatch.setattr(callgrind, "check_available", lambda device="cpu": "3.19.0")
    monkeypatch.setattr(
        callgrind,
        "count_instructions",
        lambda configs, **_: callgrind.InstructionRun(
            tuple(callgrind.InstructionCount(c.id, (15_604_052, 15_610_044, 15_607_530)) for c in configs),
            "3.19.0",
            "2.13.0+cpu",
            1.0,
        ),
    )
    args = ("table", "--no-timing", "--instructions", "--alpha", "0.25", "--resolution", "128")
    code, out, _ = run(capsys, *args, "--format", "json")
    assert code == 0
    row = json.loads(out)["rows"][0]
    assert row["instructions"] == 15_607_530  # the median of the three passes
    assert row["instructions_per_mac"] == pytest.approx(15_607_530 / row["macs_analytic"])
    code, out, _ = run(capsys, *args)
    assert code == 0 and "M instr" in out and "instr/MAC" in out and "15.6" in out


needs_valgrind = pytest.mark.skipif(
    shutil.which("valgrind") is None, reason="Valgrind is not installed (apt-get install valgrind; CI installs it)"
)


@pytest.mark.slow
@needs_valgrind
def test_instructions_are_counted_under_valgrind_and_stable():
    configs = [ModelConfig(alpha=0.25, resolution=128), ModelConfig(alpha=0.25, resolution=160)]
    counted = callgrind.count_instructions(configs, passes=2)
    assert [count.id for count in counted.counts] == ["0.25-128", "0.25-160"]
    for count, config in zip(counted.counts, configs, strict=True):
        assert count.spread_pct < 0.5, count
        assert 0.3 < count.instructions / (13_570_000 if config.resolution == 128 else 21_100_000) < 5
    assert counted.counts[1].instructions > counted.counts[0].instructions
    assert counted.valgrind == callgrind.check_available()


def test_a_failing_valgrind_process_is_one_line(monkeypatch, tmp_path):
    fake_valgrind(tmp_path, "valgrind-3.19.0")
    (tmp_path / "valgrind").write_text(
        '#!/bin/sh\nif [ "$1" = --version ]; then echo valgrind-3.19.0; exit 0; fi\n'
        "echo 'first line' >&2; echo 'valgrind: the last word' >&2; exit 1\n"
    )
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(MnprofError, match=r"under Valgrind failed: valgrind: the last word$"):
        callgrind.count_instructions([ModelConfig(alpha=0.25, resolution=128)], passes=1)
