"""The typed values of mnprof.timing: each crosses the results file unchanged, and each limit has one owner."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mnprof.errors import MnprofError
from mnprof.model.config import ModelConfig
from mnprof.timing import sweep
from mnprof.timing.engine import Measurement, StopRule, budget_in_range, target_in_range
from mnprof.timing.layers import LayerTimingSettings
from mnprof.timing.measured import OutputAgreement, measured_record
from mnprof.timing.plan import TimingRequest, plan
from mnprof.timing.records import Backend, Device, GemmPeak, Stop, TimingKey, TimingRecord
from mnprof.timing.stats import Headline, quantile_ci
from mnprof.timing.store import ResultsStore, read_results, results_records
from mnprof.timing.sweep import TimingSettings, check_threads

ENV = {"host_fingerprint": "abc123", "cpu_model": "Test CPU"}
PEAK_ROW = {"device": "cpu", "threads": 2, "kernel": "mm n=2048", "gflops": 150.5,
            "gflops_by_kernel": {"mm n=2048": 150.5, "conv1x1 n=1024": 120.25}}  # fmt: skip
INT8_PEAK_ROW = {**PEAK_ROW, "int8_kernel": "torch_int8 n=1024", "int8_gops": 600.0}


def measurement(stop: Stop, turns: int = 8) -> Measurement:
    samples = tuple(0.001 + 1e-5 * ((7 * i) % 13) for i in range(5 * turns))
    return Measurement(key=None, samples=samples, warmup=(0.002,) * 3, warmup_settled=True, stop=stop, spent_s=1.5,
                       target_rel_ci=0.05, turn_sizes=(5,) * turns, discarded=(0.003,), cpu_shares=(0.9, 0.97),
                       turn_starts=tuple(0.25 * i for i in range(turns)), turn_factors=(1.0,) * turns,
                       turn_passes=tuple(range(turns)), relative_halfwidth=0.02)  # fmt: skip


def record(backend: Backend, stop: Stop, agreement: OutputAgreement | None) -> TimingRecord:
    key = TimingKey(ModelConfig(0.25, 32), backend, 2, 1, Device.CPU)
    return measured_record(key, measurement(stop), macs=1_000_000, gemm_peak_gflops=100.0, theoretical_peak=None,
                           check=(1e-6, 1e-4), rule=StopRule(), environment=ENV, unix_offset=1.8e9,
                           agreement=agreement, run_id="run-1")  # fmt: skip


# ------------------------------------------------------------------------------------------- the GEMM peak


@pytest.mark.parametrize("row", [PEAK_ROW, INT8_PEAK_ROW])
def test_a_gemm_peak_row_round_trips_byte_for_byte(row):
    peak = GemmPeak.from_row(json.loads(json.dumps(row)))
    assert peak.device is Device.CPU and peak.gflops == row["gflops"]
    assert json.dumps(peak.to_row()) == json.dumps(row)  # same keys, same order, int8 keys only where timed


def test_a_gemm_peak_in_the_results_file_is_the_row_the_sweep_kept(tmp_path):
    store = ResultsStore.open(tmp_path / "r.json", ENV, resume=False)
    store.set_gemm_peak(GemmPeak.from_row(INT8_PEAK_ROW).to_row())
    store.add(record(Backend.EAGER, Stop.CONVERGED, None))
    (kept,) = read_results(tmp_path / "r.json")["gemm_peaks"]
    assert GemmPeak.from_row(kept) == GemmPeak.from_row(INT8_PEAK_ROW)


def test_int8_rows_are_a_fraction_of_the_integer_roof_where_one_was_timed():
    floats, with_int8 = GemmPeak.from_row(PEAK_ROW), GemmPeak.from_row(INT8_PEAK_ROW)
    assert with_int8.roof(Backend.ONNXRUNTIME_INT8) == 600.0
    assert with_int8.roof(Backend.EAGER) == floats.roof(Backend.ONNXRUNTIME_INT8) == 150.5


def test_a_gemm_peak_without_a_key_is_one_line():
    with pytest.raises(MnprofError, match="^a GEMM peak lacks gflops$"):
        GemmPeak.from_row({key: value for key, value in PEAK_ROW.items() if key != "gflops"})


# ------------------------------------------------------------------------------ records, stop and agreement


@pytest.mark.parametrize(
    ("backend", "agreement"),
    [
        (Backend.EAGER, OutputAgreement(model_bytes=4096)),
        (Backend.ONNXRUNTIME_INT8, OutputAgreement(0.9991, 0.97, {"calibration": "minmax", "images": 8}, 1024)),
    ],
)
@pytest.mark.parametrize("stop", list(Stop))
def test_a_results_file_written_and_read_back_gives_equal_records(tmp_path, backend, agreement, stop):
    written = record(backend, stop, agreement)
    row = written.to_row()
    assert type(row["stop"]) is str and row["stop"] == stop.value  # the file holds the text
    assert row["model_bytes"] == agreement.model_bytes
    store = ResultsStore.open(tmp_path / "r.json", ENV, resume=False)
    store.add(written)
    (read,) = results_records([read_results(tmp_path / "r.json")])
    assert read == written and read.quality is not None and read.quality.stop is stop
    assert json.dumps(read.to_row()) == json.dumps(row)


def test_a_failed_record_keeps_its_agreement():
    key = TimingKey(ModelConfig(0.25, 32), Backend.ONNXRUNTIME_INT8, 1, 1, Device.CPU)
    agreed = OutputAgreement(0.5, 0.25, None, 77)
    failed = sweep._failed_record(key, "did not agree", ENV, (math.inf, None), agreed)
    assert (failed.output_cosine, failed.output_top1_agreement, failed.model_bytes) == (0.5, 0.25, 77)
    assert failed.output_max_abs_error is None and failed.error == "did not agree"


@pytest.mark.parametrize(("stop", "message"), [("timeout", "accepted: converged or budget"), (3, "accepted: a str")])
def test_a_stop_mnprof_never_writes_is_one_line(stop, message):
    row = dict(record(Backend.EAGER, Stop.BUDGET, None).to_row(), stop=stop)
    with pytest.raises(MnprofError, match=f"^stop is {stop!r}; {message}$"):
        TimingRecord.from_row(row)


# ------------------------------------------------------------------------------------------------ the headline


def test_the_headline_names_its_parts():
    headline = quantile_ci([[float(v) for v in range(1, 11)]] * 6, 0.1)
    assert isinstance(headline, Headline)
    assert (headline.value, headline.low, headline.high, headline.halfwidth) == tuple(headline)
    assert headline.low is not None and headline.low < headline.value < headline.high
    timed = measurement(Stop.CONVERGED)
    assert timed.ci == (timed.headline.low, timed.headline.high, timed.headline.halfwidth)


# ------------------------------------------------------------------------------------------------- the limits


def request(**changes) -> TimingRequest:
    unused = Path("unused.json")  # each request here is refused before any file is read
    fields = dict(enabled=True, backends="eager", batch_sizes="1", threads=1, device="cpu", target_ci_pct=5.0,
                  budget_s=2.5, results=unused, resume=False, from_results=(unused,))  # fmt: skip
    fields.update(changes)
    return TimingRequest(**fields)


def test_each_limit_has_one_owner_and_every_caller_keeps_its_words():
    assert target_in_range(0.001) and target_in_range(0.999) and not target_in_range(0.0009) and not target_in_range(1)
    assert budget_in_range(3600) and budget_in_range(1e-9) and not budget_in_range(0) and not budget_in_range(3600.5)
    with pytest.raises(MnprofError, match=r"^--target-ci 100 is out of range; accepted: a percentage in \[0.1, 100\)$"):
        plan(request(target_ci_pct=100.0))
    with pytest.raises(MnprofError, match=r"^--budget 3601 is invalid; accepted: seconds in \(0, 3600\]$"):
        plan(request(budget_s=3601.0))
    with pytest.raises(MnprofError, match=r"^--threads 0 is invalid; accepted: an integer in \[1, 1024\]$"):
        plan(request(threads=0))
    with pytest.raises(MnprofError, match=r"^CI target 1 is out of range"):
        StopRule(target_rel_ci=1.0)
    for build in (lambda: TimingSettings(threads=1025), lambda: LayerTimingSettings(threads=True)):
        with pytest.raises(MnprofError, match=r"^threads (1025|True) is invalid; accepted: an integer in \[1, 1024\]$"):
            build()
    check_threads(1024)
    with pytest.raises(MnprofError, match=r"^batch sizes \(0,\) are invalid"):
        TimingSettings(batch_sizes=(0,))
    with pytest.raises(MnprofError, match="^batch size 1025 is invalid"):
        sweep.parse_batch_sizes("1,1025")
