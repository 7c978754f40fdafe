"""mnprof history: results files and baselines per commit read in commit order, steps marked, one page of charts."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cli_run import run

from mnprof.timing.store import RESULTS_KIND, RESULTS_SCHEMA_VERSION
from mnprof.views.history import history_figures, steps
from mnprof.views.history_inputs import read_snapshot, read_snapshots

CONFIGS = [(1.0, 224), (0.5, 160), (0.25, 128)]


def commit_of(index: int) -> str:
    return f"{index:02d}c0ffee".ljust(40, "a")


def config_id(alpha: float, resolution: int) -> str:
    return f"{alpha:g}{'.0' if float(alpha).is_integer() else ''}-{resolution}"


def baseline_document(macs_growth: int = 0, params_growth: int = 0) -> dict:
    entries = {}
    for alpha, resolution in CONFIGS:
        macs = int(500_000_000 * alpha * alpha * (resolution / 224) ** 2) + macs_growth
        params = int(4_000_000 * alpha * alpha) + params_growth
        entries[f"mobilenetv1@{config_id(alpha, resolution)}"] = {
            "model": "mobilenetv1", "alpha": alpha, "resolution": resolution, "num_classes": 1000,
            "counts": {
                "analytic": {"macs": macs, "params": params},
                "pytorch": {"params": params},
                "fvcore": {"macs": macs, "macs_by_operator": {"conv": macs}, "unsupported_ops": {}},
                "thop": {"macs": macs, "params": params},
            },
        }  # fmt: skip
    return {"kind": "mnprof.baseline", "schema_version": 1, "provenance": {"mnprof": "0.1.0"}, "entries": entries}


def results_document(index: int, *, scale: float = 1.0, halfwidth: float = 0.01, host: str = "h1") -> dict:
    rows = []
    for alpha, resolution in CONFIGS:
        latency = alpha * alpha * resolution * resolution / 1500.0 * scale
        rows.append({
            "id": config_id(alpha, resolution), "family": "mobilenetv1", "alpha": alpha, "resolution": resolution,
            "num_classes": 1000, "variant": "standard", "rounding": "floor", "backend": "eager", "batch_size": 1,
            "threads": 2, "device": "cpu", "host": host, "run_id": f"run{index}", "error": None,
            "latency_ms_p5": latency, "latency_ms_adjusted": latency, "latency_ms_median": latency,
            "latency_ms_ci_low": latency * (1 - halfwidth), "latency_ms_ci_high": latency * (1 + halfwidth),
            "ci_halfwidth_pct": 100 * halfwidth, "rel_ci_halfwidth_pct": 100 * halfwidth,
            "macs_analytic": int(500_000_000 * alpha * alpha * (resolution / 224) ** 2),
        })  # fmt: skip
    environment = {
        "host_fingerprint": host,
        "git_commit": commit_of(index),
        "date": f"2026-11-{1 + index // 24:02d}T{index % 24:02d}:00:00+00:00",
    }
    return {"schema_version": RESULTS_SCHEMA_VERSION, "kind": RESULTS_KIND, "environment": environment,
            "gemm_peaks": [], "measurements": rows}  # fmt: skip


def write(path: Path, document: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


def history_dir(tmp_path: Path, commits: int = 6, *, grow_at: int = 3, slow_at: int = 4) -> Path:
    """Per commit a baseline named by its commit (``baselines/<commit>.json``, no date inside: the results file of
    the same commit dates it) and a results file; MACs grow at ``grow_at``, latency by 30% at ``slow_at``."""
    directory = tmp_path / "history"
    for index in range(commits):
        grown = 1000 if index >= grow_at else 0
        write(directory / "baselines" / f"{commit_of(index)[:10]}.json", baseline_document(macs_growth=grown))
        write(directory / "results" / f"r{index}.json", results_document(index, scale=1.3 if index >= slow_at else 1))
    return directory


def test_files_of_one_commit_are_joined_in_date_order_with_the_steps(tmp_path):
    directory = history_dir(tmp_path)
    paths = sorted(directory.rglob("*.json"), reverse=True)  # the order given does not matter
    snapshots, skipped = read_snapshots(paths)
    assert skipped == []
    assert [s.commit for s in snapshots] == [commit_of(i) for i in range(6)]
    assert all(s.kind == "baseline+results" and len(s.paths) == 2 for s in snapshots)
    found = steps(snapshots)
    macs = {(s.index, s.series[0]) for s in found if s.metric == "macs"}
    assert macs == {(3, f"mobilenetv1@{config_id(*c)}") for c in CONFIGS}
    latency = [s for s in found if s.metric == "latency_ms"]
    assert {s.index for s in latency} == {4} and len(latency) == 3 and all(s.kind == "step" for s in latency)
    assert not [s for s in found if s.metric == "params"]
    assert not [s for s in found if s.metric == "rel"]  # every configuration slowed alike: relative unchanged


def test_a_latency_change_within_the_intervals_is_no_step_and_another_host_is_marked(tmp_path):
    files = [
        write(tmp_path / "a.json", results_document(0, halfwidth=0.05)),
        write(tmp_path / "b.json", results_document(1, scale=1.08, halfwidth=0.05)),  # 8% < 5% + 5%
        write(tmp_path / "c.json", results_document(2, scale=1.2, halfwidth=0.01)),  # beyond 5.4% + 1.2%
        write(tmp_path / "d.json", results_document(3, scale=1.2, host="h2")),
    ]
    found = steps(read_snapshots(files)[0])
    latency = {(s.index, s.kind) for s in found if s.metric == "latency_ms"}
    assert latency == {(2, "step"), (3, "host")}


def test_trend_table_formats(capsys, tmp_path, monkeypatch):
    directory = history_dir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = run(capsys, "history", str(directory))
    assert code == 0 and err == ""
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "MACs +" in out and "latency +30%" in out and "03c0ffee" in out
    code, out, _ = run(capsys, "history", str(directory), "--format", "json")
    document = json.loads(out)
    assert document["kind"] == "mnprof.history" and len(document["files"]) == 6
    assert len(document["rows"]) == 18
    assert {(s["file_index"], s["metric"]) for s in document["steps"]} == {(3, "macs"), (4, "latency_ms")}
    out_csv = tmp_path / "h.csv"
    code, out, _ = run(capsys, "history", str(directory), "--out", str(out_csv))
    assert code == 0 and out == ""
    header = out_csv.read_text().splitlines()[0].split(",")
    assert {"commit", "config", "params", "macs", "latency_ms", "latency_relative", "changes"} <= set(header)
    code, out, _ = run(capsys, "history", str(directory), "--format", "markdown")
    assert out.startswith("### mnprof history") and "| commit |" in out


def test_page_has_one_chart_per_metric_and_one_trace_per_configuration(capsys, tmp_path):
    directory = history_dir(tmp_path)
    snapshots, _ = read_snapshots(sorted(directory.rglob("*.json")))
    figures = history_figures(snapshots, steps(snapshots))
    assert [f.key for f in figures] == ["history-params", "history-macs", "history-latency_ms", "history-rel"]
    assert all(len(f.figure.data) == len(CONFIGS) for f in figures)
    page = tmp_path / "h.html"
    code, out, err = run(capsys, "history", str(directory), "--out", str(page))
    assert code == 0 and out == "" and "wrote" in err
    text = page.read_text()
    assert text.count('class="figure"') == 4 and '<script src="http' not in text


def test_foreign_and_corrupt_files_are_named_and_skipped(capsys, tmp_path):
    directory = history_dir(tmp_path, commits=3)
    write(directory / "notes.json", {"kind": "something else"})
    (directory / "broken.json").write_text('{"kind": "mnprof.results", ')
    bad = results_document(9)
    bad["measurements"][0]["latency_ms_p5"] = "fast"
    write(directory / "bad-results.json", bad)
    code, out, err = run(capsys, "history", str(directory), "--format", "csv")
    assert code == 0 and len(out.splitlines()) == 1 + 9
    lines = err.splitlines()
    assert len(lines) == 3 and all(line.startswith("mnprof: warning: skipped") for line in lines)
    assert all(name in err for name in ("notes.json", "broken.json", "bad-results.json"))
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "no usable file (2 read, 2 skipped)"),
        (("missing",), "missing does not exist"),
        (("--out", "x.html", "--format", "csv"), "is the page"),
        (("--out", "h.csv", "--html", "h.csv"), "--out and --html are both"),
        (("--out", "OWN"), "which this run reads"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "d" / "notes.json", {"kind": "other"})
    (tmp_path / "d" / "broken.json").write_text("[")
    if args and args[0] not in ("missing",):
        write(tmp_path / "d" / "b.json", baseline_document())
    args = tuple(str(tmp_path / "d" / "b.json") if a == "OWN" else a for a in args)
    code, out, err = run(capsys, "history", *(("missing",) if args == ("missing",) else ("d", *args)))
    assert code == 2 and out == ""
    assert err.splitlines()[-1].startswith("mnprof: error: ") and message in err.splitlines()[-1]
    assert "accepted" in err.splitlines()[-1] or "missing" in err


def test_fifty_commits_of_counts_render_within_two_seconds(capsys, tmp_path):
    """Reading, validating and rendering 50 baselines, the table and the page: the CPU time of this process (the
    wall time on a shared two-core machine doubles with its load; benchmarks/RESULTS.md has both)."""
    directory = tmp_path / "baselines"
    for index in range(50):
        write(directory / f"{index:03d}-{commit_of(index)[:10]}.json", baseline_document(macs_growth=index // 10))
    started = time.process_time()
    code, out, _ = run(capsys, "history", str(directory), "--html", str(tmp_path / "h.html"))
    elapsed = time.process_time() - started
    assert code == 0 and out.count("MACs +") == 4 * len(CONFIGS)
    assert "±CI" not in out and " date " not in out  # baselines alone: no latency, no dates, no empty columns
    assert elapsed < 2.0, f"{elapsed:.2f} s of CPU"


def test_counts_stay_exact_integers_where_some_commits_have_none(capsys, tmp_path):
    directory = history_dir(tmp_path, commits=2)
    write(directory / "results" / "r9.json", results_document(9))  # a commit measured, its baseline not kept
    code, out, _ = run(capsys, "history", str(directory), "--format", "json")
    rows = json.loads(out)["rows"]
    assert code == 0 and [type(row["params"]) for row in rows] == [int] * 6 + [type(None)] * 3
    code, out, _ = run(capsys, "history", str(directory), "--format", "csv")
    assert ".0," not in out.split("\n", 1)[1].split("eager")[0]


def test_a_baselines_commit_is_read_from_its_name_or_its_directory_only(tmp_path):
    named = {
        "cafe1234/history/0001.json": None,  # a directory further up names no commit
        "h/3f2a1bc/baseline.json": "3f2a1bc",
        "h/baseline-3f2a1bc9.json": "3f2a1bc9",
        "h/20261207.json": None,  # digits alone are a date, not a commit
    }
    for name, commit in named.items():
        snapshot = read_snapshot(write(tmp_path / name, baseline_document()))
        assert snapshot.commit == commit, name
