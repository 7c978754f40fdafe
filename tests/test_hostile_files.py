"""Files mnprof creates beside the ones it was asked for never follow links, and sizes are checked before use.

Each test asserts the promise: one line and exit 2, nothing created outside the directory asked for, nothing
already there lost or replaced.
"""

from __future__ import annotations

import os

import pytest
from cli_run import ROOT, refused, run
from cli_run import TINY_GRID as TINY

from mnprof.errors import MnprofError
from mnprof.timing.store import ResultsStore


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_a_dangling_link_where_the_lock_goes_is_refused_and_nothing_is_created_at_its_target(capsys, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    target = elsewhere / "created-by-mnprof"
    (work / ".r.json.lock").symlink_to(target)
    err = refused(capsys, "table", "-q", *TINY, "--results", str(work / "r.json"))
    assert "its lock" in err and "a symbolic link" in err
    assert not target.exists()  # an O_CREAT that followed the link made this file
    assert os.readlink(work / ".r.json.lock") == str(target)  # the link itself is left as it was
    assert sorted(p.name for p in work.iterdir()) == [".r.json.lock"]


def test_a_link_to_an_existing_file_where_the_lock_goes_is_refused_and_the_file_is_untouched(tmp_path):
    target = tmp_path / "precious"
    target.write_text("keep me")
    (tmp_path / ".r.json.lock").symlink_to(target)
    with pytest.raises(MnprofError, match="a symbolic link"):
        ResultsStore.open(tmp_path / "r.json", {}, resume=False)
    assert target.read_text() == "keep me"
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_anything_but_a_regular_file_where_the_lock_goes_is_one_line(tmp_path, kind):
    lock = tmp_path / ".r.json.lock"
    os.mkfifo(lock) if kind == "fifo" else lock.mkdir()
    with pytest.raises(MnprofError, match="its lock") as refused_:
        ResultsStore.open(tmp_path / "r.json", {}, resume=False)  # a FIFO opened to read or write could block
    assert "\n" not in str(refused_.value)
    assert not (tmp_path / "r.json").exists()


def test_an_integer_of_thousands_of_digits_in_the_settings_is_one_line(capsys, tmp_path, monkeypatch):
    settings = tmp_path / "pyproject.toml"
    settings.write_text("[tool.mnprof]\nnum_classes = " + "9" * 5000 + "\n")  # beyond Python's int() of text
    monkeypatch.chdir(tmp_path)
    err = refused(capsys, "table", "--no-timing", "-q", *TINY)
    assert "pyproject.toml holds a number mnprof cannot read" in err and "5000 digits" in err


@pytest.mark.slow
def test_a_results_file_whose_path_is_not_utf8_is_plotted(capsys, tmp_path):
    from test_plot_cli import results_document, write

    name = os.fsdecode(b"r\xff.json")  # what the command line makes of such a path: a lone surrogate
    results = write(tmp_path / name, results_document([(1.0, 224), (0.5, 160)]))
    out = tmp_path / "p.html"
    code, _, err = run(capsys, "plot", "--results", str(results), "--out", str(out), "-q")
    assert code == 0, err
    assert "r\\udcff.json" in out.read_text(encoding="utf-8")  # shown as JSON would write it, the page stays UTF-8


def test_the_schemas_bound_what_mnprof_itself_accepts():
    from mnprof.files.schemas import schema
    from mnprof.model.config import MAX_CLASSES
    from mnprof.timing.sweep import MAX_BATCH_SIZE, MAX_THREADS

    measurement = schema("results")["$defs"]["measurement"]["properties"]
    assert measurement["batch_size"]["maximum"] == MAX_BATCH_SIZE
    assert measurement["threads"]["maximum"] == MAX_THREADS
    assert measurement["num_classes"]["maximum"] == MAX_CLASSES
    baseline = schema("baseline")["$defs"]
    assert baseline["entry"]["properties"]["num_classes"]["maximum"] == MAX_CLASSES


def test_two_models_whose_report_files_would_be_one_are_refused(capsys, tmp_path):
    out = tmp_path / "reports"
    models = ["--model", "a:b=tests.regression_models:tiny", "--model", "a_b=tests.regression_models:tiny_widened"]
    err = refused(capsys, "report", "--no-timing", "-q", "--out", str(out), *models)
    assert "models a:b and a_b would share the layer table layers-a_b-1.0-224-counts.md" in err
    assert not out.exists()


def test_a_long_results_name_that_is_not_utf8_gets_its_lock(tmp_path):
    name = os.fsdecode(b"r" * 70 + b"\xff.json")  # over 64 characters: the lock's name is shortened by a digest
    store = ResultsStore.open(tmp_path / name, {}, resume=False)
    assert store.path.name == name
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".lock")] != []  # held until the process ends


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
def test_a_stdout_that_cannot_encode_a_delta_gets_a_question_mark_not_a_traceback(tmp_path, encoding):
    import subprocess
    import sys

    command = [sys.executable, "-m", "mnprof", "table", "--no-timing", "-q", *TINY, "--format", "markdown"]
    environment = {**os.environ, "PYTHONIOENCODING": encoding}
    done = subprocess.run(command, capture_output=True, env=environment, cwd=tmp_path, timeout=300)
    assert done.returncode == 0 and done.stderr == b"", done.stderr.decode(errors="replace")[-2000:]
    assert b"(?)" in done.stdout and b"| 0.25-32 |" in done.stdout  # the header's delta, replaced
