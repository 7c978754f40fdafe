"""``mnprof table`` in the terminals people have: the default view fits 80, 100 and 120 columns, no cell wraps,
and what was left out is named. Golden files pin the rendered tables (timed from the committed results file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnprof.cli import main

RESULTS = Path(__file__).resolve().parent.parent / "reports" / "results.json"
CASES = {"counts": ["--no-timing"], "timed": ["--from-results", str(RESULTS)]}


def table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("│")]


@pytest.mark.parametrize("width", [80, 100, 120])
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.slow
def test_default_table_fits_the_terminal_and_no_cell_wraps(golden, capsys, monkeypatch, case, width):
    monkeypatch.setenv("COLUMNS", str(width))
    assert main(["table", "-q", *CASES[case]]) == 0
    out = capsys.readouterr().out
    golden(f"table_{case}_{width}.txt", out)
    assert max(len(line) for line in out.splitlines()) <= width
    rows = table_rows(out)
    assert len(rows) == (16 if case == "counts" else 32)  # one line per row: no cell wrapped onto a second line
    assert all(row.split("│")[1].strip() for row in rows)  # every row starts with its configuration id
    notes = [line for line in out.splitlines() if line.startswith("  ")]
    assert len(notes) < len(rows)  # footnotes shorter than the table


@pytest.mark.slow
def test_narrow_terminals_leave_out_columns_in_the_stated_order_and_say_so(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    assert main(["table", "-q", "--from-results", str(RESULTS)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("┃"))
    # typical median, speed-up, delta, throughput, top-1: in that order
    for gone in ("median (IQR)", "x eager", "MACs Δ*", "img/s", "top-1*"):
        assert gone not in header
    assert all(kept in header for kept in ("config", "params M", "backend", " ms ", " rel "))
    left_out = "left out to fit 60 columns: top-1*, MACs Δ*, median (IQR), img/s, x eager (--wide shows them)"
    assert left_out in " ".join(out.split())
    assert max(len(line) for line in out.splitlines() if line[:1] in "┏┃│└") <= 60


def test_wide_and_files_keep_every_column(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["table", "-q", "--no-timing", "--wide", "--alpha", "1.0", "--resolution", "224"]) == 0
    wide = capsys.readouterr().out
    assert "fvcore" in wide and "TF-slim" in wide
    assert main(["table", "-q", "--no-timing", "--format", "csv", "--alpha", "1.0", "--resolution", "224"]) == 0
    assert "macs_fvcore" in capsys.readouterr().out


def test_counts_view_sets_every_counter_side_by_side(capsys):
    assert (
        main(["table", "-q", "--view", "counts", "--format", "markdown", "--alpha", "1.0", "--resolution", "224"]) == 0
    )
    out = capsys.readouterr().out
    counts = "| 1.0-224 | 4.232 | 568.7 | 578.9 | 589.0 | 568.7 | 568.7 |"
    activations = " 5.044 | 5.044 | 4.8 | 10,135,552 | 20,221,952 | 0 |"
    assert counts + activations in out


def test_sweep_warnings_are_short_unless_verbose(capsys):
    from factories import timing_record

    from mnprof.cli.work import report_quality
    from mnprof.timing.plan import SweepOutcome

    configs = [
        f"{alpha}-{resolution}" for alpha in ("1.0", "0.75", "0.5", "0.25") for resolution in (224, 192, 160, 128)
    ]
    records = [timing_record(config, noisy=True) for config in configs]
    records += [timing_record("0.5-96", contended=True), timing_record("0.5-64", error="x failed: " + "why " * 80)]
    outcome = SweepOutcome(tuple(records), measured=True, cores=2)
    report_quality(outcome)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3 and all(line.startswith("mnprof: warning: ") for line in lines)
    assert all(len(line) <= 200 for line in lines)  # at most two short lines each
    assert lines[0].startswith("mnprof: warning: 1 of 18 measurements posted no time; first: 0.5-64 eager batch 1")
    assert "1 of 18 measurements never had the CPU to itself (latency inflated)" in lines[1]
    assert "16 of 18 measurements stayed noisy" in lines[2] and "--verbose lists them" in lines[2]
    report_quality(outcome, verbose=True)
    verbose = capsys.readouterr().err
    assert all(config in verbose for config in configs) and "why why" in verbose
