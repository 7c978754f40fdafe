"""Files mnprof creates beside the ones it was asked for never follow links, and sizes are checked before use.

Each test asserts the promise: one line and exit 2, nothing created outside the directory asked for, nothing
already there lost or replaced.
"""

from __future__ import annotations

import os

import pytest
from cli_run import ROOT, run

from mnprof.errors import MnprofError
from mnprof.timing.store import ResultsStore

TINY = ["--alpha", "0.25", "--resolution", "32"]


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def refused(capsys, *args: str) -> str:
    code, out, err = run(capsys, *args)
    assert code == 2, (out, err)
    assert out == "" and err.count("\n") == 1 and err.startswith("mnprof: error: ")
    return err


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
