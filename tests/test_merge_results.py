"""``mnprof merge`` of results files (``mnprof table --results``, one per shard or host): every measurement kept
with its provenance, the joined file shown as the files are shown together; and a shard's progress bar counts the
shard's configurations."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_run import refused, run
from factories import edited, results_file, timing_record

from mnprof.model.config import ModelConfig, UserFamily
from mnprof.timing.store import ResultsStore, read_results
from mnprof.views.plot_inputs import provenance_lines

ENV_A = {"host_fingerprint": "aaaa", "cpu_model": "CPU A", "torch": "2.3.0", "date": "2026-01-01", "mnprof": "0.1"}
ENV_B = {"host_fingerprint": "bbbb", "cpu_model": "CPU B", "torch": "2.3.0", "date": "2026-01-02", "mnprof": "0.1"}


NET = ModelConfig(1.0, 32, family=UserFamily("net", "tests.regression_models:tiny"))  # quick to count
NET_GRID = ["--model", "net=tests.regression_models:tiny", "--alpha", "1.0", "--resolution", "32"]
NET_MACS = 184_576  # its analytic MACs: a timing is shown only beside the counts of the model it timed


def _row(host: str, run: str, cpu_model: str | None = None, **options) -> dict:
    row = timing_record(NET, host=host, cpu_model=cpu_model, **options).to_row()
    return dict(row, run_id=run, macs_analytic=NET_MACS)


@pytest.fixture
def hosts(tmp_path) -> tuple[Path, Path]:
    """Two hosts' results files of the tiny grid: host A timed batch 1 and 8, host B batch 1 and one that failed;
    B's rows leave the processor to the file's environment, as an older mnprof's did."""
    a = results_file(
        tmp_path / "a.json",
        [_row("aaaa", "run-a", "CPU A"), _row("aaaa", "run-a", "CPU A", batch=8, samples_ms=(3.0, 3.3))],
        environment=ENV_A,
    )
    b_rows = [_row("bbbb", "run-b", samples_ms=(2.0, 2.4)), _row("bbbb", "run-b", backend="fused", error="boom")]
    for row in b_rows:
        del row["cpu_model"]
    b = results_file(tmp_path / "b.json", b_rows, environment=ENV_B)
    return a, b


def _table(capsys, fmt: str, *files: Path) -> str:
    sources = [arg for path in files for arg in ("--from-results", str(path))]
    code, out, err = run(capsys, "table", "-q", *NET_GRID, *sources, "--format", fmt)
    assert code == 0, err
    return out


@pytest.mark.usefixtures("at_repo_root")  # the family's module is imported relative to it
def test_merged_results_show_what_the_files_show_together(capsys, tmp_path, hosts):
    merged = tmp_path / "merged.json"
    code, _, err = run(capsys, "merge", *map(str, hosts), "--out", str(merged))
    assert code == 0, err
    assert "wrote 4 measurements (2 sources) from 2 files" in err
    together = _table(capsys, "json", *hosts)  # every column of every row, each host's and run's
    assert _table(capsys, "json", merged) == together
    assert "CPU B" in together  # B's processor, which its rows left to its environment, is still B's
    document = read_results(merged)  # valid as a results file
    assert [(row["host"], row["run_id"], row["cpu_model"]) for row in document["measurements"]] == [
        ("aaaa", "run-a", "CPU A"), ("aaaa", "run-a", "CPU A"), ("bbbb", "run-b", "CPU B"), ("bbbb", "run-b", "CPU B"),
    ]  # fmt: skip
    assert document["sources"] == [
        {"file": str(hosts[0]), "environment": ENV_A, "gemm_peaks": [], "runs": ["run-a"]},
        {"file": str(hosts[1]), "environment": ENV_B, "gemm_peaks": [], "runs": ["run-b"]},
    ]
    assert document["environment"] == {"torch": "2.3.0", "mnprof": "0.1"}  # what every host shares, no fingerprint


def test_a_plot_of_merged_results_names_each_file_joined(capsys, tmp_path, hosts):
    merged = tmp_path / "merged.json"
    assert run(capsys, "merge", *map(str, hosts), "--out", str(merged))[0] == 0
    lines = provenance_lines([read_results(merged)], [merged])[:-1]  # the last: where the accuracy comes from
    assert [line.split(": measured")[0] for line in lines] == ["a.json (in merged.json)", "b.json (in merged.json)"]
    assert "on CPU A" in lines[0] and "2 measurements" in lines[0]
    assert "on CPU B" in lines[1] and "1 measurements" in lines[1]  # its failed one is not a measurement shown


def test_merging_again_keeps_each_measurement_and_source_once(capsys, tmp_path, hosts):
    merged, again = tmp_path / "merged.json", tmp_path / "again.json"
    assert run(capsys, "merge", *map(str, hosts), "--out", str(merged))[0] == 0
    code, _, err = run(capsys, "merge", str(merged), str(hosts[1]), "--out", str(again))  # B a second time
    assert code == 0, err
    first, second = read_results(merged), read_results(again)
    assert second["measurements"] == first["measurements"] and second["sources"] == first["sources"]


def test_a_merged_file_is_not_resumed_as_one_sweep(capsys, tmp_path):
    one = [results_file(tmp_path / f"{name}.json", [_row("aaaa", f"run-{name}", "CPU A")], environment=ENV_A)
           for name in ("x", "y")]  # fmt: skip
    merged = tmp_path / "merged.json"
    assert run(capsys, "merge", *map(str, one), "--out", str(merged))[0] == 0
    assert read_results(merged)["environment"]["host_fingerprint"] == "aaaa"  # one host: its fingerprint stays
    assert len(read_results(merged)["measurements"]) == 2  # one configuration, once per run
    with pytest.raises(Exception, match="was joined by mnprof merge from 2 files"):
        ResultsStore.open(merged, ENV_A, resume=True)
    assert not list(tmp_path.glob(".*.lock"))


def _slower(document: dict) -> None:
    document["measurements"][0]["latency_ms_p5"] *= 2


BASELINE = {"kind": "mnprof.baseline", "schema_version": 1, "entries": {}}


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (lambda t, a, b: [a, edited(a, t / "base.json", lambda d: d.clear() or d.update(BASELINE))],
         "is a 'mnprof.results' file and"),
        (lambda t, a, b: [a, edited(b, t / "v3.json", lambda d: d.update(schema_version=3))], "schema version 4 and"),
        (lambda t, a, b: [edited(a, t / "v3a.json", lambda d: d.update(schema_version=3)),
                          edited(b, t / "v3b.json", lambda d: d.update(schema_version=3))], "has schema version 3"),
        (lambda t, a, b: [a, edited(a, t / "slower.json", _slower)], "with different values"),
        (lambda t, a, b: [a, edited(b, t / "bad.json", lambda d: d["measurements"][0].update(threads=0))],
         "bad.json is corrupt"),
        (lambda t, a, b: [a, (t / "cut.json").write_text('{"kind": "mnprof.results",') and t / "cut.json"],
         "cut.json"),
        (lambda t, a, b: [a, b, a], "is named twice"),
    ],
)  # fmt: skip
def test_bad_results_merges_are_one_line_exit_2_and_leave_out_alone(capsys, tmp_path, hosts, files, message):
    out = tmp_path / "merged.json"
    out.write_text("before", encoding="utf-8")
    assert message in refused(capsys, "merge", *map(str, files(tmp_path, *hosts)), "--out", str(out))
    assert out.read_text(encoding="utf-8") == "before"


def test_out_naming_an_input_is_refused_and_the_input_kept(capsys, hosts):
    kept = hosts[0].read_bytes()
    assert "one of the files merged" in refused(capsys, "merge", *map(str, hosts), "--out", str(hosts[0]))
    assert hosts[0].read_bytes() == kept


# ------------------------------------------------------------------ a shard's progress bar


class _Bar:
    """A progress bar that keeps the total of each task it is given."""

    totals: list[tuple[str, float]]

    def __init__(self, quiet: bool) -> None:
        del quiet

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def start(self) -> None:  # rich's Progress, opened and closed without a with block
        return None

    def stop(self) -> None:
        return None

    def add_task(self, description: str, total: float, **_: object) -> int:
        _Bar.totals.append((description, total))
        return 0

    def update(self, *_: object, **__: object) -> None:
        return None


SHARDED = [
    "--model", "net=tests.regression_models:tiny", "--model", "wide=tests.regression_models:tiny_widened",
    "--alpha", "1.0,0.5", "--resolution", "64,32", "--shard", "1/3",
]  # fmt: skip  # 8 configurations; shard 1/3 holds 3


@pytest.fixture
def bars(monkeypatch, at_repo_root):
    _Bar.totals = []
    monkeypatch.setattr("mnprof.cli.work.progress", _Bar)
    monkeypatch.setattr("mnprof.cli.check.progress", _Bar)
    return _Bar.totals


def test_a_table_shards_progress_counts_the_shards_configurations(capsys, bars):
    code, _, err = run(capsys, "table", "--no-timing", *SHARDED, "--format", "csv")
    assert code == 0, err
    assert bars == [("counting", 3)]


def test_a_baseline_shards_progress_counts_the_shards_configurations(capsys, tmp_path, bars):
    code, _, err = run(capsys, "baseline", *SHARDED, "--out", str(tmp_path / "b.json"))
    assert code == 0, err
    assert bars == [("counting", 3)]
