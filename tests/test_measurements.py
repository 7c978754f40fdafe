"""The results file: schema, validation with one-line errors, atomic writes, resume on the same host only."""

from __future__ import annotations

import json

import pytest
from cli_run import run
from factories import timing_record

from mnprof.errors import MnprofError
from mnprof.timing.records import TimingRecord, processor_of
from mnprof.timing.store import (
    RESULTS_KIND,
    RESULTS_SCHEMA_VERSION,
    ResultsStore,
    read_results,
    results_records,
)

ENV = {"host_fingerprint": "abc123", "cpu_model": "Test CPU"}


def row(config_id: str = "0.25-32", **extra) -> dict:
    return timing_record(config_id, **extra).to_row()


def write_document(path, **changes) -> None:
    document = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "kind": RESULTS_KIND,
        "environment": ENV,
        "gemm_peaks": [],
        "measurements": [row()],
    }
    document.update(changes)
    path.write_text(json.dumps(document))


def test_store_writes_a_valid_document_after_every_add(tmp_path):
    path = tmp_path / "results.json"
    store = ResultsStore.open(path, ENV, resume=False)
    assert not path.exists()  # nothing is written before the first measurement
    store.set_gemm_peak({"device": "cpu", "threads": 2, "gflops": 100.0})
    store.add(timing_record("0.25-32"))
    assert [r["id"] for r in read_results(path)["measurements"]] == ["0.25-32"]
    store.add(timing_record("0.25-64"))
    document = read_results(path)
    assert [r["id"] for r in document["measurements"]] == ["0.25-32", "0.25-64"]
    assert document["gemm_peaks"] == [{"device": "cpu", "threads": 2, "gflops": 100.0}]
    assert document["environment"] == ENV
    # no temporary file left behind; the writer lock's file stays while this process holds the lock
    assert sorted(p.name for p in tmp_path.iterdir()) == [".results.json.lock", "results.json"]


def test_adding_the_same_key_replaces_the_row(tmp_path):
    store = ResultsStore(tmp_path / "r.json", ENV)
    store.add(timing_record(error="failed"))
    assert store.done() == set()  # an error row is measured again
    store.add(timing_record())
    assert store.done() == {("0.25-32", "eager", 1, 2, "cpu")}
    assert len(read_results(tmp_path / "r.json")["measurements"]) == 1


def test_resume_keeps_rows_of_the_same_host(tmp_path):
    path = tmp_path / "r.json"
    write_document(path)
    store = ResultsStore.open(path, ENV, resume=True)
    assert store.done() == {timing_record().key.ident()}
    fresh = ResultsStore.open(path, ENV, resume=False)
    assert fresh.done() == set()
    assert read_results(path)["measurements"] == [row()]  # opening without resume changes nothing yet


def test_resume_refuses_another_hosts_file(tmp_path):
    path = tmp_path / "r.json"
    write_document(path)
    with pytest.raises(MnprofError, match="measured on another host .*fingerprint abc123, here other"):
        ResultsStore.open(path, {"host_fingerprint": "other"}, resume=True)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is corrupt \\(invalid JSON at line 1\\)"),
        ('{"kind": "mnprof.table", "schema_version": 1}', "is not a mnprof results file \\(kind 'mnprof.table'"),
        ("[1, 2]", "is not a mnprof results file \\(kind 'list'"),
        (
            json.dumps({"kind": RESULTS_KIND, "schema_version": 1, "environment": {}, "measurements": []}),
            "has schema version 1; this mnprof reads version 4",
        ),
        (
            json.dumps({"kind": RESULTS_KIND, "schema_version": 4}),
            "is corrupt \\(\\$ lacks environment; accepted: an object with kind, schema_version, environment",
        ),
        (
            json.dumps({"kind": RESULTS_KIND, "schema_version": 4, "environment": {}, "measurements": [{"id": "x"}]}),
            "measurements\\[0\\] lacks alpha; accepted: an object with id, alpha, resolution, backend",
        ),
        (
            json.dumps(
                {
                    "kind": RESULTS_KIND,
                    "schema_version": 4,
                    "environment": {},
                    "measurements": [dict(row(), alpha="wide")],
                }
            ),  # fmt: skip
            'is corrupt \\(\\$.measurements\\[0\\].alpha is "wide"; accepted: a number',
        ),
        (
            json.dumps(
                {
                    "kind": RESULTS_KIND,
                    "schema_version": 4,
                    "environment": {},
                    "measurements": [dict(row(), backend="tensorrt")],
                }
            ),  # fmt: skip
            'is corrupt \\(\\$.measurements\\[0\\].backend is "tensorrt"; accepted: one of "eager"',
        ),
    ],
)
def test_bad_files_are_one_line_errors_and_never_overwritten(tmp_path, content, message):
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(MnprofError, match=message) as raised:
        read_results(path)
    assert "\n" not in str(raised.value) and str(path) in str(raised.value)
    for resume in (False, True):  # a sweep never replaces what it cannot read
        with pytest.raises(MnprofError, match=message):
            ResultsStore.open(path, ENV, resume=resume)
    assert path.read_text() == content


def test_missing_file_is_an_error_to_read_but_fine_to_start(tmp_path):
    with pytest.raises(MnprofError, match="does not exist"):
        read_results(tmp_path / "none.json")
    assert ResultsStore.open(tmp_path / "none.json", ENV, resume=True).done() == set()


def test_unwritable_results_path_is_rejected_before_work(tmp_path):
    with pytest.raises(MnprofError, match="--results .* does not exist"):
        ResultsStore.open(tmp_path / "no-dir" / "r.json", ENV, resume=False)


def test_rows_for_tables_drop_raw_samples_and_name_the_cpu(tmp_path):
    path = tmp_path / "r.json"
    bare = {key: value for key, value in row().items() if key != "cpu_model"}  # an older row: the file names the CPU
    write_document(path, measurements=[bare])
    (record,) = results_records([read_results(path)])
    flat = record.to_row(with_samples=False)
    assert "latency_ms_samples" not in flat and flat["cpu_model"] == "Test CPU"
    assert record.to_row()["latency_ms_samples"] == [1.0, 1.1]


def test_a_row_reads_back_as_the_record_that_wrote_it():
    for record in (timing_record(), timing_record(error="failed"), timing_record(device="cuda", gpu="Test GPU")):
        assert TimingRecord.from_row(record.to_row()) == record


def test_a_row_whose_id_is_not_its_configuration_is_refused():
    """The id keys a measurement in the results file: an id edited apart from alpha and resolution would file
    one configuration's time under another's."""
    row = timing_record().to_row()
    with pytest.raises(MnprofError, match="is not that of its alpha, resolution and family"):
        TimingRecord.from_row({**row, "id": "0.25-128"})
    assert TimingRecord.from_row({key: value for key, value in row.items() if key != "id"}) == timing_record()


def test_gpu_rows_are_named_by_their_gpu_and_cpu_rows_by_their_cpu(tmp_path):
    path = tmp_path / "r.json"
    gpu_row = {key: value for key, value in row(device="cuda").items() if key != "gpu"}
    write_document(path, environment=dict(ENV, gpu="Test GPU"), measurements=[row(), gpu_row])
    cpu_record, gpu_record = results_records([read_results(path)])
    assert (cpu_record.processor, gpu_record.processor) == ("Test CPU", "Test GPU")
    assert cpu_record.provenance.gpu is None
    assert processor_of("cuda", None, None) == "an unidentified GPU"
    assert processor_of("cpu", None, None) == "an unidentified CPU"


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    store = ResultsStore(path, ENV)
    store.add(timing_record("0.25-32"))
    before = path.read_text()

    def fail(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("mnprof.files.write.os.fsync", fail)
    with pytest.raises(MnprofError, match=r"cannot write .*r\.json: disk full"):  # one line, no traceback
        store.add(timing_record("0.25-64"))
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_a_measurement_twice_in_a_file_or_a_file_given_twice_is_refused(tmp_path, capsys):
    """Each would be counted twice in every view."""
    path = tmp_path / "r.json"
    write_document(path, measurements=[row(), row()])
    with pytest.raises(MnprofError, match=r"measurements 0 and 1 are both 0\.25-32 eager batch 1, 2 threads, cpu"):
        read_results(path)
    write_document(path, measurements=[row()])
    code, out, err = run(capsys, "table", "--from-results", str(path), "--from-results", str(path))
    assert code == 2 and out == "" and f"--from-results {path.resolve()} is given twice" in err
