from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from cli_run import run

from mnprof.errors import MnprofError

SMALL = ["--alpha", "0.25", "--resolution", "128", "--quiet", "--no-timing"]


def test_table_json_to_stdout(capsys):
    code, out, err = run(capsys, "table", *SMALL, "--format", "json")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert [row["id"] for row in rows] == ["0.25-128"]
    assert rows[0]["macs_analytic"] == 13_570_048


def test_out_suffix_picks_the_format_and_writes_atomically(capsys, tmp_path):
    out = tmp_path / "table.csv"
    code, stdout, _ = run(capsys, "table", *SMALL, "--out", str(out))
    assert code == 0 and stdout == ""
    assert out.read_text().splitlines()[0].startswith("id,alpha,resolution")
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]  # no temporary file left behind


def test_text_table_written_to_a_file_has_no_terminal_codes(capsys, tmp_path):
    out = tmp_path / "table.txt"
    assert run(capsys, "table", *SMALL, "--out", str(out))[0] == 0
    text = out.read_text()
    assert "0.25-128" in text and "\x1b[" not in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--alpha", "0"], "alpha 0 is out of range; accepted: numbers in (0, 4]"),
        (["--alpha", "-1"], "alpha -1 is out of range"),
        (["--alpha", "4.5"], "alpha 4.5 is out of range"),
        (["--alpha", "wide"], "alpha 'wide' is not a number"),
        (["--alpha", ""], "empty"),
        (["--resolution", "16"], "resolution 16 is too small; accepted: integers in [32, 2048]"),
        (["--resolution", "224.5"], "resolution '224.5' is not an integer"),
        (["--variant", "tall"], "'tall' is not one of 'standard', 'full', 'shallow', 'seed'"),
        (["--format", "xml"], "'xml' is not one of 'table', 'markdown', 'csv', 'json'"),
        (["--unit", "ops"], "'ops' is not one of 'macs', 'flops'"),
        (["--frobnicate"], "No such option '--frobnicate'"),
        (["--out", "/nonexistent-dir/t.json"], "directory /nonexistent-dir does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, args, message):
    code, out, err = run(capsys, "table", *args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("mnprof: error: ")
    assert message in err


def test_bad_input_leaves_an_existing_output_untouched(capsys, tmp_path):
    out = tmp_path / "keep.json"
    out.write_text("precious")
    assert run(capsys, "table", "--alpha", "0", "--out", str(out))[0] == 2
    assert out.read_text() == "precious"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_directory_is_rejected(capsys, tmp_path):
    tmp_path.chmod(0o500)
    try:
        code, _, err = run(capsys, "table", *SMALL, "--out", str(tmp_path / "t.json"))
    finally:
        tmp_path.chmod(0o700)
    assert code == 2 and "not writable" in err


def test_out_under_a_file_is_rejected(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run(capsys, "table", *SMALL, "--out", str(blocker / "t.json"))
    assert code == 2 and "does not exist" in err


def test_failed_write_keeps_the_old_file(tmp_path):
    from mnprof.files import write as results

    out = tmp_path / "keep.json"
    out.write_text("precious")

    def write_half_then_fail(handle):
        handle.write(b"half")
        raise OSError("disk full")

    with pytest.raises(MnprofError, match="cannot write .*disk full"):  # one line, not an OSError traceback
        results.atomic_write(out, write_half_then_fail)
    assert out.read_text() == "precious"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.json"]


def test_help_explains_options(capsys):
    code, out, _ = run(capsys, "table", "--help")
    assert code == 0
    for words in ("--alpha", "(0, 4]", "--resolution", "[32, 2048]", "--unit", "2 x MACs", "atomically", "--view"):
        assert words in out


def test_module_entry_point_and_no_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "mnprof", "table", "--alpha", "0"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "mnprof: error: alpha 0 is out of range; accepted: numbers in (0, 4]"
    assert "Traceback" not in result.stderr
    version = subprocess.run([sys.executable, "-m", "mnprof", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "mnprof" in version.stdout


@pytest.mark.parametrize("view", ["paper", "seed", "reconcile"])
def test_views_render(capsys, view):
    code, out, err = run(capsys, "table", "--view", view, "--format", "markdown", "--quiet")
    assert code == 0, err
    assert out.startswith("### ")
