"""reports/ holds exactly what `mnprof report` writes: count-only parts are regenerated and compared byte for byte."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from factories import drifting_records

from mnprof.cli import main
from mnprof.reports.catalogue import COUNT_FILES, TIMING_FILES
from mnprof.timing.store import RESULTS_KIND, RESULTS_SCHEMA_VERSION

REPORTS = Path(__file__).resolve().parent.parent / "reports"


@pytest.mark.slow
def test_count_only_reports_are_byte_identical_to_a_fresh_run(tmp_path, capsys):
    out = tmp_path / "reports"
    out.mkdir()
    for item in TIMING_FILES:  # timing parts are host-specific: carried over, then indexed
        if (REPORTS / item.name).exists():
            shutil.copy2(REPORTS / item.name, out / item.name)
    assert main(["report", "--no-timing", "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
    for item in [*COUNT_FILES, *[f for f in TIMING_FILES if (REPORTS / f.name).exists()]]:
        assert (out / item.name).read_bytes() == (REPORTS / item.name).read_bytes(), f"reports/{item.name} is stale"
    assert (out / "README.md").read_text() == (REPORTS / "README.md").read_text(), "reports/README.md is stale"
    expected = {f.name for f in (*COUNT_FILES, *TIMING_FILES) if (REPORTS / f.name).exists()} | {"README.md"}
    written = {p.name for p in REPORTS.iterdir() if not (p.name.startswith(".") and p.name.endswith(".lock"))}
    assert written == expected, "reports/ holds files mnprof report does not write (its results lock aside)"


def test_report_into_a_file_path_is_rejected(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("keep")
    assert main(["report", "--no-timing", "--out", str(target), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file" in err
    assert target.read_text() == "keep"


def test_the_index_says_how_much_the_host_drifted_while_timing(tmp_path):
    from mnprof.reports.index import timing_provenance

    environment = {"cpu_model": "Test CPU", "available_cores": 2, "date": "2026-01-01"}
    records = drifting_records(0.2)  # 30 s of turns, the host 20% slower after 15 s

    def write(rows: list[dict]) -> None:
        document = {"schema_version": RESULTS_SCHEMA_VERSION, "kind": RESULTS_KIND, "environment": environment,
                    "gemm_peaks": [], "measurements": rows}  # fmt: skip
        (tmp_path / "results.json").write_text(json.dumps(document))

    write([record.to_row() for record in records])
    assert timing_provenance(tmp_path).startswith("Test CPU, 2 cores available")
    assert timing_provenance(tmp_path).endswith("; the host's speed varied by 20% during the sweep")
    rows = [record.to_row() for record in records]
    for row in rows:  # files written before turn times were kept: no drift claimed
        del row["turn_started_unix"]
    write(rows)
    assert "varied" not in timing_provenance(tmp_path)
    (tmp_path / "results.json").write_text("{corrupt")
    assert timing_provenance(tmp_path) is None
