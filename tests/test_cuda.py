"""What needs a CUDA GPU: a sweep posts times, the sampler waits for the GPU, the GEMM peak is measured on it, and
``mnprof table`` records it. Each is skipped where no GPU is present (none in CI)."""

from __future__ import annotations

import json

import pytest
import torch
from cli_run import TIMED, run
from factories import FAST, TINY

from mnprof.host import host_environment
from mnprof.runtimes import backends
from mnprof.runtimes.backends import Backend, Device
from mnprof.timing import peaks
from mnprof.timing.store import ResultsStore, read_results
from mnprof.timing.sweep import TimingSettings, run_sweep

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@needs_gpu
def test_cuda_sweep_posts_times(tmp_path, fake_peak):  # pragma: no cover - no GPU in CI
    backends_ = (Backend.EAGER, Backend.CHANNELS_LAST, Backend.FUSED)
    settings = TimingSettings(backends=backends_, threads=1, device=Device.CUDA, rule=FAST)
    store = ResultsStore.open(tmp_path / "r.json", host_environment(), resume=False)
    rows = [record.to_row() for record in run_sweep([TINY], settings, store)]
    assert [r["backend"] for r in rows] == [b.value for b in backends_]
    assert all(r["error"] is None and r["device"] == "cuda" and r["latency_ms_median"] > 0 for r in rows)
    assert all(r["output_max_abs_error"] <= r["output_tolerance"] for r in rows)


@needs_gpu
def test_cuda_sampler_waits_for_the_gpu():  # pragma: no cover - no GPU in CI
    # torch.cuda._sleep spins the GPU for a number of clock cycles and returns to the host at once: a
    # sampler that did not wait for the GPU would time the launch (microseconds), not the work.
    # 50 million cycles take at least 25 ms at the 2 GHz no current GPU exceeds.
    runner = backends.Runner(Backend.EAGER, lambda: torch.cuda._sleep(50_000_000), lambda: None)
    sample = backends.sampler(runner, Device.CUDA)
    assert sample() >= 0.025


@needs_gpu
def test_cuda_gemm_peak_is_measured_on_the_gpu():  # pragma: no cover - no GPU in CI
    peak = peaks.measure_gemm_peak(Device.CUDA, threads=1).to_row()
    assert peak["device"] == "cuda" and peak["gflops"] > 0
    assert set(peak["gflops_by_kernel"]) == {"mm n=8192", "conv1x1 n=4096"}


@needs_gpu
def test_table_on_cuda_records_the_gpu(capsys, tmp_path, fake_peak):  # pragma: no cover - no GPU in CI
    results = tmp_path / "r.json"
    code, out, err = run(capsys, *TIMED, "--device", "cuda", "--format", "json", "--results", str(results))
    assert code == 0, err
    (row,) = json.loads(out)["rows"]
    assert row["device"] == "cuda" and row["latency_ms_median"] > 0
    document = read_results(results)
    assert document["environment"]["gpu"] == torch.cuda.get_device_name(0)
    assert document["measurements"][0]["device"] == "cuda"
