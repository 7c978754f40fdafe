"""Hostile inputs, continued: latency statistics and references, results files of another method, stdout and
paths the system refuses, outputs that would replace what a run reads, several files written all or none, and
signals. Each is one line on stderr, exit 2, no traceback, and no existing file changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_run import ROOT, refused
from cli_run import TINY_GRID as TINY
from factories import results_file, timing_record

from mnprof.cli import main
from mnprof.errors import MnprofError

# ---------------------------------------------------------------- latency statistic and reference (issue 10)


def test_an_unknown_statistic_or_reference_is_one_line_before_any_work(capsys, tmp_path):
    results = tmp_path / "r.json"
    assert "--statistic" in refused(capsys, "table", *TINY, "--statistic", "mean", "--results", str(results))
    err = refused(capsys, "table", *TINY, "--reference", "1.0-224", "--results", str(results))
    assert "--reference '1.0-224' is not a configuration of this grid; accepted: one of 0.25-32" in err
    assert not results.exists()  # refused before the sweep


def test_a_results_file_of_the_old_schema_is_refused_with_how_to_remeasure(capsys, tmp_path):
    path = results_file(tmp_path / "old.json", [timing_record().to_row()], version=1)
    before = path.read_bytes()
    err = refused(capsys, "table", *TINY, "--from-results", str(path))
    assert "has schema version 1; this mnprof reads version 4; re-measure with mnprof table --results NEW.json" in err
    err = refused(capsys, "table", *TINY, "--results", str(path))  # and a new sweep does not replace it
    assert "schema version 1" in err and path.read_bytes() == before


def test_a_plot_reference_that_was_not_measured_is_one_line(capsys, tmp_path):
    path = results_file(tmp_path / "r.json", [timing_record().to_row()])
    out = tmp_path / "p.html"
    err = refused(capsys, "plot", "-q", "--results", str(path), "--reference", "1.0-224", "--out", str(out))
    assert "--reference '1.0-224' was not measured in" in err and not out.exists()


def test_a_latency_baseline_of_the_old_method_is_refused_before_timing(capsys, tmp_path):
    path = tmp_path / "b.json"
    assert main(["baseline", "-q", *TINY, "--out", str(path)]) == 0
    document = json.loads(path.read_text())
    document["latency"] = {"host_fingerprint": "h", "threads": 1, "entries": {"mobilenetv1@0.25-32": {
        "latency_ms_median": 1.0}}}  # fmt: skip
    path.write_text(json.dumps(document))
    capsys.readouterr()
    assert main(["check", "-q", *TINY, "--baseline", str(path)]) == 0  # counts still compare
    capsys.readouterr()
    err = refused(capsys, "check", "-q", *TINY, "--baseline", str(path), "--latency")
    assert "recorded by an older mnprof (method None" in err and "mnprof baseline --latency" in err


def test_a_real_ctrl_c_in_user_code_interrupts_and_one_it_raises_is_its_error():
    import signal

    from mnprof.errors import sigint_noted
    from mnprof.user_code import user_code

    # Python's own handler, as the command line has it (another test's event loop may have left its own)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with sigint_noted():
            with pytest.raises(MnprofError, match="factory raised KeyboardInterrupt"), user_code("factory raised"):
                raise KeyboardInterrupt  # the user's code raised it: an error of that code (exit 2)
            with pytest.raises(KeyboardInterrupt), user_code("factory raised"):
                signal.raise_signal(signal.SIGINT)  # a real Ctrl-C, even inside the fence: an interruption (130)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.mark.parametrize("raised", [RuntimeError("no"), SystemExit(0)])  # the second would end mnprof with 0
def test_an_exception_whose_str_raises_is_still_one_line(raised):
    from mnprof.errors import one_line

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise raised

    name = type(raised).__name__
    assert one_line(Unprintable()) == f"Unprintable: (its message cannot be shown: its str() raised {name})"


def test_table_json_of_results_with_infinite_derived_figures_writes_null(capsys, tmp_path):
    row = dict(timing_record().to_row(), gemm_peak_gflops=0, theoretical_peak_gflops=0)  # fractions: x / 0
    row.update(latency_ms_p5=1e-310, latency_ms_ci_low=1e-310, latency_ms_ci_high=1e-310)  # throughput: inf
    path = results_file(tmp_path / "r.json", [row])
    assert main(["table", "-q", *TINY, "--from-results", str(path), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert rows[0]["throughput_ips"] is None  # JSON has no infinity


def test_a_latency_beyond_any_budget_is_refused(capsys, tmp_path):
    path = results_file(tmp_path / "r.json", [dict(timing_record().to_row(), latency_ms_p5=1e300)])
    assert "latency_ms_p5 is 1e+300; accepted: a number <= 1000000000.0" in refused(
        capsys, "table", "-q", *TINY, "--from-results", str(path)
    )


def test_runs_whose_headlines_are_floating_point_extremes_apart_warn_without_a_traceback(capsys, tmp_path):
    import dataclasses

    paths = []
    for run, scale in (("runA", 1e5), ("runB", 1e-300)):
        rows = []
        for alpha in (0.25, 0.5, 0.75):
            record = timing_record(f"{alpha:g}-32", headline_ms=scale, threads=1)
            when = "2026-01-01T00:00:00+00:00" if run == "runA" else "2026-01-02T00:00:00+00:00"
            rows.append(dataclasses.replace(record, provenance=dataclasses.replace(
                record.provenance, run_id=run, measured_at=when)).to_row())  # fmt: skip
        paths += ["--from-results", str(results_file(tmp_path / f"{run}.json", rows))]
    code = main(["table", "-q", "--alpha", "0.25,0.5,0.75", "--resolution", "32", *paths])
    assert code == 0
    assert "run runB (2026-01-02T00:00) measured -100.0% vs run runA" in capsys.readouterr().err


def test_a_plot_of_a_statistic_no_row_has_is_one_line(capsys, tmp_path):
    path = results_file(tmp_path / "r.json", [dict(timing_record().to_row(), latency_ms_adjusted=None)])
    err = refused(capsys, "plot", "-q", *TINY, "--results", str(path), "--statistic", "adjusted",
                  "--out", str(tmp_path / "p.html"))  # fmt: skip
    assert "holds no measured latency" in err and not (tmp_path / "p.html").exists()


def test_the_table_never_replaces_the_results_it_was_made_from(capsys, tmp_path):
    path = results_file(tmp_path / "r.json", [timing_record().to_row()])
    before = path.read_bytes()
    for option in ("--from-results", "--results"):
        err = refused(capsys, "table", "-q", *TINY, option, str(path), "--format", "json", "--out", str(path))
        assert "is the results file the measurements are kept in" in err and path.read_bytes() == before


def test_python_m_mnprof_is_not_shadowed_by_a_module_in_the_working_directory(tmp_path):
    import subprocess

    (tmp_path / "click.py").write_text("raise SystemExit('a scratch click.py was imported')\n")
    done = subprocess.run([sys.executable, "-m", "mnprof", "--version"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0 and "mnprof" in done.stdout, done.stderr


def test_a_stdout_the_system_refuses_is_one_line(capsys, monkeypatch):
    import errno

    import click

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(click, "echo", full)
    from mnprof.cli.output import emit

    with pytest.raises(MnprofError, match=r"standard output cannot be written \(No space left on device\)"):
        emit("a table", None)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("fmt", ["json", "table"])
def test_a_full_stdout_of_the_real_command_is_one_line(fmt):
    command = [sys.executable, "-m", "mnprof", "table", "--no-timing", "-q", *TINY, "--format", fmt]
    with open("/dev/full", "w") as full:  # its own process: the command keeps stdout on a descriptor of its own
        done = subprocess.run(command, cwd=ROOT, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 2, done
    assert done.stderr == (
        "mnprof: error: standard output cannot be written (No space left on device); accepted: a stdout with room, "
        "or --out FILE\n"
    )


# ---------------------------------------------------------------- 10. the second battery's findings


def test_a_path_the_system_refuses_as_too_long_is_one_line(capsys, tmp_path):
    err = refused(capsys, "report", "--no-timing", "-q", "--out", str(tmp_path / ("r" * 300)))
    assert "File name too long" in err
    err = refused(capsys, "check", "-q", "--config", str(tmp_path / ("d" * 300) / "pyproject.toml"))
    assert "File name too long" in err or "does not exist" in err


def test_an_output_name_near_the_limit_is_written(capsys, tmp_path):
    out = tmp_path / ("n" * 245 + ".json")  # 250 bytes: its temporary file's name must stay within 255
    assert main(["baseline", "-q", *TINY, "--out", str(out)]) == 0
    assert json.loads(out.read_text())["kind"] == "mnprof.baseline"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]
    from mnprof.timing.store import ResultsStore, _release

    results = tmp_path / ("r" * 245 + ".json")
    ResultsStore.open(results, {}, resume=False)  # its lock's name too
    _release(str(results.resolve()))


@pytest.mark.parametrize(
    ("value", "message"),
    [('"a\\u0000b.json"', "baseline is"), ("1979-05-27", 'baseline is "1979-05-27"; accepted: text')],
)
def test_a_baseline_setting_with_a_nul_or_a_toml_date_is_one_line(capsys, tmp_path, monkeypatch, value, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text(f"[tool.mnprof]\nbaseline = {value}\n")
    assert message in refused(capsys, "baseline", "-q", *TINY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pyproject.toml"]


def test_a_model_that_cannot_be_copied_is_one_line(capsys):
    err = refused(capsys, "table", "--no-timing", "-q", *TINY, "--model", "tests.tiny_family:unpicklable")
    assert "cannot be copied" in err and "cannot pickle" in err


def test_an_output_that_is_a_file_this_run_reads_is_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results = results_file(tmp_path / "r.html", [timing_record().to_row()])  # a results file named like a page
    kept = results.read_bytes()
    (tmp_path / "sub").mkdir()
    assert "a results file to plot" in refused(capsys, "plot", "-q", "--results", "./r.html", "--out", "sub/../r.html")
    (tmp_path / "pyproject.toml").write_text("[tool.mnprof]\nalphas = [0.25]\n")
    err = refused(capsys, "baseline", "-q", "--resolution", "32", "--out", "pyproject.toml")
    assert "the pyproject.toml the settings come from" in err
    assert results.read_bytes() == kept and (tmp_path / "pyproject.toml").read_text().startswith("[tool.mnprof]")


def test_two_copies_of_one_run_are_refused(capsys, tmp_path):
    row = dict(timing_record().to_row(), run_id="0123456789ab")
    first = results_file(tmp_path / "a.json", [row])
    second = tmp_path / "b.json"
    second.write_bytes(first.read_bytes())  # a copy (or a hard link): every row would be shown twice
    err = refused(capsys, "table", "-q", "--from-results", str(first), "--from-results", str(second))
    assert "holds run 0123456789ab" in err
    err = refused(
        capsys, "plot", "-q", "--results", str(first), "--results", str(second), "--out", str(tmp_path / "p.html")
    )
    assert "holds run 0123456789ab" in err and not (tmp_path / "p.html").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["table", "--no-timing", "-q", *TINY, "--classes", "１０"],
        ["table", "--no-timing", "-q", *TINY, "--classes", "1_000"],
        ["table", "-q", *TINY, "--threads", "١"],
        ["table", "-q", *TINY, "--budget", "٠.3"],
        ["table", "-q", *TINY, "--target-ci", "５"],
        ["layers", "-q", *TINY, "--repeats", "３"],
        ["layers", "-q", *TINY, "--warmup", "٠"],
    ],
)
def test_numbers_of_other_scripts_or_with_separators_are_refused(capsys, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    assert "is not a plain number" in refused(capsys, *args)
    assert list(tmp_path.iterdir()) == []


def test_report_checks_every_file_it_will_write_before_the_first(capsys, tmp_path):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "table.md").write_text("old")
    os.mkfifo(out / "baseline.json")  # one target of many is a FIFO: refused before table.md is replaced
    assert "baseline.json is not a regular file" in refused(capsys, "report", "--no-timing", "-q", "--out", str(out))
    assert (out / "table.md").read_text() == "old"
    assert sorted(p.name for p in out.iterdir()) == ["baseline.json", "table.md"]


def test_several_files_are_written_all_or_none(tmp_path, monkeypatch):
    import errno

    from mnprof.files import write as file_write

    first, second = tmp_path / "a.md", tmp_path / "b.md"
    first.write_text("old a")
    second.write_text("old b")
    real = file_write._staged

    def full_on_b(path, write):
        if path.name == "b.md":
            raise OSError(errno.EFBIG, "File too large", str(path))
        return real(path, write)

    monkeypatch.setattr(file_write, "_staged", full_on_b)
    with pytest.raises(MnprofError, match="cannot write .*b.md: File too large \\(nothing was replaced\\)"):
        file_write.atomic_write_all({first: "new a", second: "new b"})
    assert first.read_text() == "old a" and second.read_text() == "old b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.md", "b.md"]  # no temporary file left
    monkeypatch.setattr(file_write, "_staged", real)
    file_write.atomic_write_all({first: "new a", second: "new b"})
    assert first.read_text() == "new a" and second.read_text() == "new b"


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_sigterm_or_sighup_interrupts_like_ctrl_c_and_leaves_no_lock_or_temporary_file(tmp_path, name):
    import signal
    import time

    signum = getattr(signal, name)

    results = tmp_path / "r.json"
    command = [sys.executable, "-m", "mnprof", "table", "-q", "--alpha", "0.25,0.5", "--resolution", "32,64",
               "--budget", "5", "--results", str(results)]  # fmt: skip
    run = subprocess.Popen(command, cwd=Path(__file__).resolve().parent.parent, stderr=subprocess.PIPE, text=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / ".r.json.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # the sweep has begun once it holds the results file's lock
        run.send_signal(signum)
        _, err = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 128 + signum, err
    assert err.count("\n") == 1 and err.startswith(f"mnprof: error: interrupted ({name})")
    assert [p.name for p in tmp_path.iterdir() if p.name != "r.json"] == []  # no lock, no temporary file


def test_an_output_over_the_users_own_module_is_refused(capsys, tmp_path, monkeypatch):
    source = Path(__file__).resolve().parent / "tiny_family.py"
    module = tmp_path / "hostile_own_module.py"
    module.write_text(source.read_text())
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["layers", "--no-timing", "-q", *TINY, "--model", "t=hostile_own_module:tiny", "--out", str(module)]
    assert "the source of hostile_own_module" in refused(capsys, *args)
    assert module.read_text() == source.read_text()
