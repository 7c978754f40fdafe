"""Backends, output checks, sweeps, resume and interruption, and the timing options of ``mnprof table``.

Tiny configurations and budgets throughout; no test asserts an absolute time.
"""

from __future__ import annotations

import json
import statistics
import time

import numpy as np
import pytest
import torch
from cli_run import run
from factories import drifting_records, timing_record

from mnprof.counting.analytic import analytic_count
from mnprof.errors import MnprofError
from mnprof.host import CpuInfo, cpu_info, host_environment, host_fingerprint, theoretical_peak_gflops
from mnprof.model.config import ModelConfig, grid
from mnprof.model.seeded import calibrated_model, fixed_input
from mnprof.runtimes import backends
from mnprof.runtimes.backends import Backend, Device, fold_batchnorm, output_error, prepare
from mnprof.timing import peaks
from mnprof.timing import sweep as latency
from mnprof.timing.engine import StopRule
from mnprof.timing.plan import SweepOutcome
from mnprof.timing.records import GemmPeak, TimingRecord
from mnprof.timing.store import ResultsStore, read_results
from mnprof.timing.sweep import TimingSettings, parse_batch_sizes, run_sweep

TINY = ModelConfig(0.25, 32)
FAST = StopRule(budget_s=0.1, block_s=0.01, warmup_max_s=0.02)
FAKE_PEAK = {"device": "cpu", "threads": 1, "kernel": "fake", "gflops": 100.0, "gflops_by_kernel": {}}


@pytest.fixture
def fake_peak(monkeypatch):
    """Skip the GEMM microbenchmark (about 2 s) where a test does not look at it."""
    monkeypatch.setattr(
        latency, "measure_gemm_peak", lambda device, threads, **_: GemmPeak.from_row(dict(FAKE_PEAK, threads=threads))
    )


def reference(config: ModelConfig, batch: int = 1):
    model = calibrated_model(config)
    inputs = fixed_input(config, batch)
    with torch.inference_mode():
        return model, inputs, model(inputs)


# ---------------------------------------------------------------------------- backends and checks


@pytest.mark.parametrize("backend", [Backend.EAGER, Backend.CHANNELS_LAST, Backend.FUSED])
def test_native_backends_compute_what_eager_computes(backend):
    model, inputs, expected = reference(TINY, batch=2)
    runner = prepare(backend, model, inputs, threads=1)
    error, allowed, problem = output_error(runner.output(), expected, Device.CPU)
    assert problem is None and error <= allowed


def test_fold_batchnorm_removes_every_batchnorm_and_keeps_the_function():
    model, inputs, expected = reference(TINY)
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    with torch.inference_mode():
        error, allowed, problem = output_error(folded(inputs), expected, Device.CPU)
    assert problem is None and error <= allowed < 1e-3 * expected.abs().max() + 1e-6 + 1e-12


def test_calibrated_model_output_depends_on_its_convolutions():
    """A fresh MobileNetV1's output is its classifier bias; the calibrated one's is not, so checks can fail."""
    model, inputs, expected = reference(TINY)
    assert expected.std() > 10 * model.fc.bias.std()
    with torch.no_grad():
        model.blocks[5].pw.conv.weight.mul_(1.01)
    runner = prepare(Backend.EAGER, model, inputs, threads=1)
    _, _, problem = output_error(runner.output(), expected, Device.CPU)
    assert problem is not None and "differs from eager PyTorch" in problem


def test_calibrated_model_and_input_are_reproducible_and_leave_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = calibrated_model(TINY)
    assert torch.equal(torch.rand(1), before)
    second = calibrated_model(TINY)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(fixed_input(TINY, 2), fixed_input(TINY, 2))


def test_calibrated_model_is_the_same_whatever_the_callers_thread_count():
    """The BatchNorm statistics are summed on one thread, so a sweep at --threads 2 times the very model a
    one-thread command builds (their int8 agreement differed in the fifth decimal)."""
    config = ModelConfig(0.5, 96)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = calibrated_model(config).state_dict()
        torch.set_num_threads(2)
        two = calibrated_model(config).state_dict()
        assert torch.get_num_threads() == 2  # the caller's count is given back
    finally:
        torch.set_num_threads(before)
    for name, tensor in one.items():
        assert torch.equal(tensor, two[name]), name


def test_output_check_rejects_wrong_shape_and_non_finite_values():
    good = torch.ones(1, 10)
    assert "shape" in output_error(torch.ones(1, 9), good, Device.CPU)[2]
    assert "NaN" in output_error(torch.full((1, 10), float("nan")), good, Device.CPU)[2]


def test_onnxruntime_backend_matches_eager():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model, inputs, expected = reference(TINY)
    runner = prepare(Backend.ONNXRUNTIME, model, inputs, threads=1)
    error, allowed, problem = output_error(runner.output(), expected, Device.CPU)
    assert problem is None and error <= allowed


@pytest.mark.slow
def test_compile_backend_keeps_models_of_equal_shape_apart():
    """Two models of one configuration, different weights: each compiled runner computes its own model."""
    first = calibrated_model(TINY)
    second = calibrated_model(TINY, seed=7)
    inputs = fixed_input(TINY, 1)
    for model in (first, second):
        with torch.inference_mode():
            expected = model(inputs)
        runner = prepare(Backend.COMPILE, model, inputs, threads=1)
        error, allowed, problem = output_error(runner.output(), expected, Device.CPU)
        assert problem is None and error <= allowed


def test_torch_threads_restores_the_thread_count():
    before = torch.get_num_threads()
    with backends.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), backends.torch_threads(1):
        raise RuntimeError
    assert torch.get_num_threads() == before


def test_gemm_peak_is_the_best_rate_of_its_kernels():
    peak = peaks.measure_gemm_peak(Device.CPU, 1, kernels=(("mm", 64), ("conv1x1", 64))).to_row()
    assert set(peak["gflops_by_kernel"]) == {"mm n=64", "conv1x1 n=64"}
    assert peak["gflops"] == max(peak["gflops_by_kernel"].values()) > 0
    assert peak["threads"] == 1 and peak["device"] == "cpu"


@pytest.mark.slow
def test_gemm_peak_includes_onnxruntimes_gemm_when_asked():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    peak = peaks.measure_gemm_peak(Device.CPU, 1, kernels=(("mm", 64),), with_onnxruntime=True).to_row()
    assert set(peak["gflops_by_kernel"]) == {"mm n=64", "onnxruntime n=1024"} and "int8_gops" not in peak
    with_int8 = peaks.measure_gemm_peak(Device.CPU, 1, kernels=(("mm", 64),), with_int8=True).to_row()
    # the integer GEMM is its own roof: never the float32 peak, recorded beside it
    assert set(with_int8["gflops_by_kernel"]) == {"mm n=64"} and with_int8["kernel"] == "mm n=64"
    assert with_int8["int8_kernel"] in {"onnxruntime_int8 n=1024", "torch_int8 n=1024"}
    assert with_int8["int8_gops"] > 0


@pytest.mark.slow
def test_the_int8_roof_is_pytorchs_integer_gemm_without_the_onnx_extra(monkeypatch):
    """torch_int8 needs no extra, so neither does its roof: torch._int_mm, where onnxruntime is not installed."""
    from mnprof.runtimes import backends

    if not backends.kernel_available("torch_int8"):
        pytest.skip("this torch has no torch._int_mm on the CPU")
    monkeypatch.setattr(peaks, "kernel_available", lambda kernel: kernel == "torch_int8")
    peak = peaks.measure_gemm_peak(Device.CPU, 1, kernels=(("mm", 64),), with_int8=True).to_row()
    assert peak["int8_kernel"] == "torch_int8 n=1024" and peak["int8_gops"] > 0
    assert set(peak["gflops_by_kernel"]) == {"mm n=64"}  # never mixed into the float32 peak


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


# ---------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"backends": ("nope",)},
            "unknown backend 'nope'; accepted: eager, channels_last, fused, compile, onnxruntime, onnxruntime_int8",
        ),
        ({"batch_sizes": (0,)}, "batch sizes \\(0,\\) are invalid; accepted: integers in \\[1, 1024\\]"),
        ({"threads": 0}, "threads 0 is invalid; accepted: an integer in \\[1, 1024\\]"),
        ({"backends": ()}, "no backend given"),
    ],
)
def test_settings_reject_bad_values(kwargs, message):
    with pytest.raises(MnprofError, match=message):
        TimingSettings(**kwargs)


@pytest.mark.parametrize(
    ("text", "message"),
    [("0", "batch size 0 is invalid"), ("1,x", "batch size 'x' is not an integer"), ("", "empty")],
)
def test_batch_size_lists_are_validated(text, message):
    with pytest.raises(MnprofError, match=message):
        parse_batch_sizes(text)
    assert parse_batch_sizes("1, 8,1") == (1, 8)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu_is_an_error():
    with pytest.raises(MnprofError, match="--device cuda: no CUDA GPU is available"):
        TimingSettings(device="cuda")


def test_missing_onnxruntime_names_the_extra(monkeypatch):
    real = backends.importlib.util.find_spec
    monkeypatch.setattr(
        backends.importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a)
    )
    with pytest.raises(MnprofError, match=r"backend onnxruntime needs onnxruntime.*pip install 'mnprof\[onnx\]'"):
        TimingSettings(backends=("eager", "onnxruntime"))


# ---------------------------------------------------------------------------- sweeps


def sweep(path, configs, backends_=(Backend.EAGER,), resume=False, **kwargs):
    settings = TimingSettings(backends=backends_, threads=1, rule=FAST)
    store = ResultsStore.open(path, host_environment(), resume=resume)
    return [record.to_row() for record in run_sweep(configs, settings, store, **kwargs)]


def test_sweep_rows_carry_statistics_provenance_and_samples(tmp_path, fake_peak):
    path = tmp_path / "r.json"
    before, started = torch.get_num_threads(), time.time()
    rows = sweep(path, [TINY], (Backend.EAGER, Backend.FUSED))
    assert torch.get_num_threads() == before
    assert [(r["id"], r["backend"]) for r in rows] == [("0.25-32", "eager"), ("0.25-32", "fused")]
    for r in rows:
        assert r["error"] is None and r["threads"] == 1 and r["batch_size"] == 1 and r["device"] == "cpu"
        assert r["latency_ms_min"] <= r["latency_ms_median"] <= r["latency_ms_p90"] <= r["latency_ms_max"]
        if r["latency_ms_ci_low"] is not None:  # the headline's CI, each turn a cluster of calls
            assert r["turns"] >= 6 and r["latency_ms_ci_low"] <= r["latency_ms_p5"] <= r["latency_ms_ci_high"]
        else:  # too few turns, or calls, within the budget to bound the low end (a busy host)
            assert r["latency_ms_ci_high"] is None and r["noisy"]
        assert r["samples"] == len(r["latency_ms_samples"]) >= r["turns"] >= 1
        assert len(r["turn_host_factors"]) == r["turns"]
        assert r["turn_passes"] == sorted(set(r["turn_passes"])) and len(r["turn_passes"]) == r["turns"]
        assert r["rel_ci_halfwidth_pct"] is None  # two tasks timed together: nothing to be relative to
        # the headline recomputed from the raw samples: their 5th percentile (numpy's linear method)
        assert r["latency_ms_p5"] == pytest.approx(float(np.percentile(r["latency_ms_samples"], 5)), rel=1e-9)
        # the typical figure: each turn's median over its pass's host factor, the median of those
        turns, first = [], 0
        for size, factor in zip(r["turn_sizes"], r["turn_host_factors"], strict=True):
            turns.append(statistics.median(r["latency_ms_samples"][first : first + size]) / factor)
            first += size
        assert r["latency_ms_adjusted"] == pytest.approx(statistics.median(turns), rel=1e-5)
        assert r["throughput_ips"] == pytest.approx(1000 / r["latency_ms_p5"])  # the rates follow the headline
        assert r["gflops_achieved"] == pytest.approx(2 * r["macs_analytic"] / (r["latency_ms_p5"] / 1e3) / 1e9)
        assert r["peak_fraction"] == pytest.approx(r["gflops_achieved"] / 100.0)
        assert r["output_max_abs_error"] <= r["output_tolerance"]
        starts = r["turn_started_unix"]  # when each turn began: the host's drift is read from these
        assert len(starts) == len(r["turn_sizes"]) and starts == sorted(starts)
        assert started - 1 <= starts[0] and starts[-1] <= time.time()
    document = read_results(path)
    assert document["environment"]["host_fingerprint"] == rows[0]["host"]
    stored = json.loads(path.read_text())["measurements"]  # in the order they finished
    assert sorted(stored, key=lambda r: r["backend"]) == sorted(rows, key=lambda r: r["backend"])


def test_sweep_drift_reads_the_turns_of_every_record():
    assert latency.sweep_drift(drifting_records(0.2)).spread == pytest.approx(0.2)
    assert latency.sweep_drift(drifting_records(0.0)).spread == 0.0
    assert latency.sweep_drift([timing_record(error="failed")]).factors == ()


def test_a_drifting_host_is_warned_about(capsys):
    from mnprof.cli.work import report_drift

    assert report_drift(SweepOutcome(tuple(drifting_records(0.02)), measured=True)) == pytest.approx(0.02)
    assert capsys.readouterr().err == ""
    assert report_drift(SweepOutcome(tuple(drifting_records(0.25)), measured=True)) == pytest.approx(0.25)
    err = capsys.readouterr().err
    assert err.startswith("mnprof: warning: the host's speed changed by 25% during this sweep") and err.count("\n") == 1


def test_a_backend_that_computes_something_else_cannot_post_a_time(tmp_path, fake_peak, monkeypatch):
    real = backends.prepare

    def perturbed(backend, model, inputs, *, threads):
        runner = real(backend, model, inputs, threads=threads)
        if backend is not Backend.FUSED:
            return runner
        return backends.Runner(backend, runner.call, lambda: runner.output() * 1.01)

    monkeypatch.setattr(backends, "prepare", perturbed)
    eager, fused = sweep(tmp_path / "r.json", [TINY], (Backend.EAGER, Backend.FUSED))
    assert eager["error"] is None and eager["latency_ms_median"] > 0
    assert fused["latency_ms_median"] is None and "differs from eager PyTorch" in fused["error"]
    assert fused["output_max_abs_error"] > fused["output_tolerance"]


def test_a_failing_backend_is_recorded_on_its_row(tmp_path, fake_peak, monkeypatch):
    def broken(backend, model, inputs, *, threads):
        raise RuntimeError("no kernel for this")

    monkeypatch.setattr(backends, "prepare", broken)
    (row,) = sweep(tmp_path / "r.json", [TINY])
    assert row["error"] == "eager failed: RuntimeError: no kernel for this" and row["latency_ms_median"] is None


def test_interrupted_sweep_keeps_finished_rows_and_resume_measures_only_the_rest(tmp_path, fake_peak, monkeypatch):
    path = tmp_path / "r.json"
    configs = grid([0.25], [32, 40, 48])
    real_add = ResultsStore.add

    def add_then_interrupt(self, row):
        real_add(self, row)
        if len(self.done()) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(ResultsStore, "add", add_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        sweep(path, configs)
    kept = read_results(path)["measurements"]
    assert len(kept) == 2
    monkeypatch.setattr(ResultsStore, "add", real_add)

    measured = []
    real_time_tasks = latency.time_tasks

    def spy(tasks, *args, **kwargs):
        measured.extend(task.key.config.id for task in tasks)
        return real_time_tasks(tasks, *args, **kwargs)

    monkeypatch.setattr(latency, "time_tasks", spy)
    rows = sweep(path, configs, resume=True)
    assert measured == [c.id for c in configs if c.id not in {r["id"] for r in kept}]
    assert [r["id"] for r in rows] == [c.id for c in configs]
    by_id = {r["id"]: r for r in rows}
    for old in kept:  # untouched, samples and all
        assert by_id[old["id"]] == old
    measured.clear()
    sweep(path, configs, resume=True)
    assert measured == []  # nothing left to do


# ---------------------------------------------------------------------------- host information


def test_cpu_info_and_theoretical_peak_from_a_cpuinfo_file(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\n"
        "model name\t: AMD EPYC\ncpu MHz\t\t: 2500.000\nflags\t\t: fpu avx2 fma avx512f\n\n"
        "processor\t: 1\nvendor_id\t: Other\n"
    )
    cpu = cpu_info(cpuinfo)
    assert cpu == CpuInfo("AuthenticAMD", "AMD EPYC", 26, 2, 2500.0, frozenset({"fpu", "avx2", "fma", "avx512f"}))
    peak, how = theoretical_peak_gflops(2, cpu)
    assert peak == 2 * 2.5 * 64 and "Zen 5" in how
    unknown = CpuInfo("GenuineIntel", "Some CPU", 6, 1, 3000.0, frozenset())
    assert theoretical_peak_gflops(2, unknown)[0] is None


def test_environment_and_fingerprint():
    env = host_environment()
    for key in ("cpu_model", "logical_cores", "torch", "torch_blas", "onednn", "python", "os", "mnprof", "date"):
        assert key in env
    assert env["host_fingerprint"] == host_fingerprint(env)
    assert host_fingerprint(dict(env, date="another day", git_commit="x")) == env["host_fingerprint"]
    assert host_fingerprint(dict(env, cpu_model="another CPU")) != env["host_fingerprint"]


# ---------------------------------------------------------------------------- command line


TIMED = ["table", "--alpha", "0.25", "--resolution", "32", "--quiet", "--threads", "1", "--budget", "0.05"]


def test_table_times_and_keeps_results(capsys, tmp_path, fake_peak):
    results = tmp_path / "r.json"
    code, out, err = run(capsys, *TIMED, "--backend", "eager,fused", "--format", "json", "--results", str(results))
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert [(r["id"], r["backend"]) for r in rows] == [("0.25-32", "eager"), ("0.25-32", "fused")]
    for r in rows:
        for key in ("backend", "batch_size", "threads", "latency_ms_median", "latency_ms_iqr", "throughput_ips"):
            assert r[key] is not None
        assert "latency_ms_samples" not in r and r["macs_analytic"] == analytic_count(TINY).macs
    assert rows[0]["speedup_vs_eager"] == 1.0
    stored = read_results(results)["measurements"]
    assert sorted(r["latency_ms_median"] for r in stored) == sorted(r["latency_ms_median"] for r in rows)

    # Reported again from the file, without measuring.
    code, out, err = run(capsys, *TIMED[:5], "--from-results", str(results), "--format", "json")
    assert code == 0, err
    assert [r["latency_ms_median"] for r in json.loads(out)["rows"]] == [r["latency_ms_median"] for r in rows]
    code, out, _ = run(capsys, *TIMED[:5], "--from-results", str(results), "--format", "markdown")
    assert "| latency ms | rel | median ms (IQR) |" in out and "x eager" in out


def test_no_timing_measures_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *TIMED, "--no-timing", "--format", "json")
    assert code == 0, err
    assert "latency_ms_median" not in json.loads(out)["rows"][0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "tpu"], "unknown backend 'tpu'; accepted: eager, channels_last, fused, compile, onnxruntime"),
        (["--backend", "eager,"], "backend list 'eager,' is empty or has an empty item"),
        (["--batch-size", "0"], "batch size 0 is invalid; accepted: integers in [1, 1024]"),
        (["--threads", "0"], "--threads 0 is invalid; accepted: an integer in [1, 1024]"),
        (["--threads", "two"], "'two' is not a valid integer"),
        (["--target-ci", "0"], "--target-ci 0 is out of range"),
        (["--budget", "-1"], "--budget -1 is invalid"),
        (["--results", "/nonexistent-dir/r.json"], "--results /nonexistent-dir/r.json: directory /nonexistent-dir"),
        (["--from-results", "/nonexistent-dir/r.json"], "results file /nonexistent-dir/r.json does not exist"),
    ],
)
def test_bad_timing_input_is_one_line_exit_2(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *TIMED, *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("mnprof: error: ")
    assert message in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu_is_one_line_exit_2(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *TIMED, "--device", "cuda")
    assert code == 2 and err.count("\n") == 1 and "no CUDA GPU is available" in err


def test_missing_onnxruntime_is_one_line_exit_2(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    real = backends.importlib.util.find_spec
    monkeypatch.setattr(
        backends.importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a)
    )
    code, _, err = run(capsys, *TIMED, "--backend", "onnxruntime")
    assert code == 2 and err.count("\n") == 1 and "pip install 'mnprof[onnx]'" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{corrupt", "is corrupt"),
        (json.dumps({"kind": "mnprof.results", "schema_version": 99}), "has schema version 99"),
    ],
)
@pytest.mark.parametrize("resume", [[], ["--resume"]])
def test_unreadable_results_file_is_one_line_exit_2_and_kept(capsys, tmp_path, content, message, resume):
    results = tmp_path / "r.json"
    results.write_text(content)
    code, out, err = run(capsys, *TIMED, "--results", str(results), *resume)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err
    assert results.read_text() == content


def test_ctrl_c_keeps_what_was_measured_and_resume_finishes(capsys, tmp_path, fake_peak, monkeypatch):
    results = tmp_path / "r.json"
    args = [
        "table",
        "--alpha",
        "0.25",
        "--resolution",
        "32,40",
        *TIMED[5:],
        "--results",
        str(results),
        "--format",
        "json",
    ]
    real_add = ResultsStore.add

    def add_then_interrupt(self, row):
        real_add(self, row)
        raise KeyboardInterrupt

    monkeypatch.setattr(ResultsStore, "add", add_then_interrupt)
    code, out, err = run(capsys, *args)
    assert code == 130 and out == ""
    assert "1 measurements kept in" in err and "--resume" in err and "Traceback" not in err
    (kept,) = read_results(results)["measurements"]
    monkeypatch.setattr(ResultsStore, "add", real_add)
    code, out, err = run(capsys, *args, "--resume")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert [r["id"] for r in rows] == ["0.25-32", "0.25-40"]
    assert next(r for r in rows if r["id"] == kept["id"])["latency_ms_median"] == kept["latency_ms_median"]


def test_grid_view_marks_noisy_and_failed_timings():
    from mnprof.counting.count import count
    from mnprof.views.grid import View, grid_frame, render
    from mnprof.views.render import Format

    def record(backend: str, **row) -> TimingRecord:
        base = timing_record(TINY, backend, threads=1, host="h", cpu_model="CPU").to_row()
        return TimingRecord.from_row({**base, **row})

    timings = [
        record("eager", latency_ms_p5=2.0, latency_ms_median=2.1, latency_ms_iqr=0.5, noisy=True,
               throughput_ips=500.0, gflops_achieved=1.0, peak_fraction=0.01, gemm_peak_gflops=100.0, error=None),
        record("fused", latency_ms_p5=1.0, latency_ms_median=1.1, latency_ms_iqr=0.1, noisy=False,
               throughput_ips=1000.0, gflops_achieved=2.0, peak_fraction=0.02, gemm_peak_gflops=100.0, error=None),
        record("onnxruntime", latency_ms_p5=None, latency_ms_median=None, latency_ms_iqr=None,
               throughput_ips=None, error="output differs from eager PyTorch"),
    ]  # fmt: skip
    frame = grid_frame([count(TINY)], timings)
    assert list(frame["speedup_vs_eager"].round(3)[:2]) == [1.0, 2.0]
    text = render(frame, View.GRID, Format.MARKDOWN)
    # one configuration per runtime: no relative latency (it would be that configuration over itself)
    assert "| eager | 1 | 2.00! | - | 2.10 (0.50) |" in text and "| fused | 1 | 1.00 | - | 1.10 (0.10) |" in text
    assert "| onnxruntime | 1 | error |" in text
    assert "error: 0.25-32 onnxruntime batch 1: output differs from eager PyTorch" in text
    assert "timed on CPU (h), 1 threads, device cpu" in text and "TF32" not in text


def test_a_grid_where_no_row_has_a_time_renders_in_every_format():
    """Every timed row an error (an int8 run that did not agree, a model that failed): the notes must not
    assume a measured row."""
    from mnprof.counting.count import count
    from mnprof.views.grid import View, grid_frame, render
    from mnprof.views.render import Format

    base = timing_record(TINY, "torch_int8", threads=1, host="h", cpu_model="CPU").to_row()
    failed = TimingRecord.from_row({**base, "latency_ms_p5": None, "error": "output does not agree"})
    frame = grid_frame([count(TINY)], [failed])
    for fmt in Format:
        assert render(frame, View.GRID, fmt, width=200) is not None
    assert "error: 0.25-32 torch_int8 batch 1: output does not agree" in render(frame, View.GRID, Format.MARKDOWN)


def test_grid_view_names_the_gpu_and_its_math_for_gpu_timings():
    from mnprof.counting.count import count
    from mnprof.views.grid import View, grid_frame, render
    from mnprof.views.render import Format

    base = timing_record(TINY, "eager", 64, threads=1, device="cuda", host="h", cpu_model="CPU", gpu="Test GPU")
    row = {**base.to_row(), "latency_ms_p5": 2.0, "latency_ms_median": 2.0, "latency_ms_iqr": 0.5, "noisy": False,
           "throughput_ips": 32000.0, "gflops_achieved": 1.0, "peak_fraction": 0.01, "gemm_peak_gflops": 100.0,
           "error": None}  # fmt: skip
    text = render(grid_frame([count(TINY)], [TimingRecord.from_row(row)]), View.GRID, Format.MARKDOWN)
    assert "timed on Test GPU (h), 1 threads, device cuda" in text
    assert "cuDNN convolutions use TF32" in text


def test_relative_latency_divides_within_one_run_by_its_geometric_mean_or_the_reference():
    import dataclasses

    from mnprof.counting.count import count
    from mnprof.views.grid import grid_frame

    def record(config: str, ms: float, run: str) -> TimingRecord:
        base = timing_record(config, samples_ms=(ms,))
        return dataclasses.replace(base, provenance=dataclasses.replace(base.provenance, run_id=run))

    small, large = ModelConfig(0.25, 32), ModelConfig(0.5, 64)
    runs = [record("0.25-32", 1.0, "a"), record("0.5-64", 4.0, "a"), record("0.25-32", 2.0, "b"),
            record("0.5-64", 8.0, "b")]  # fmt: skip
    frame = grid_frame([count(small), count(large)], runs)
    # run a: geometric mean 2 ms; run b (the host twice as slow): 4 ms. The ratios agree; pooled they would not.
    rows = sorted(zip(frame["run_id"], frame["id"], frame["latency_relative"], strict=True))
    assert [row[:2] for row in rows] == [("a", "0.25-32"), ("a", "0.5-64"), ("b", "0.25-32"), ("b", "0.5-64")]
    assert [row[2] for row in rows] == pytest.approx([0.5, 2.0, 0.5, 2.0])
    assert set(frame["reference_id"]) == {"geometric mean"}
    chosen = grid_frame([count(small), count(large)], runs, reference="0.5-64")
    assert sorted(chosen["latency_relative"]) == pytest.approx([0.25, 0.25, 1.0, 1.0])


def test_one_configuration_alone_has_no_relative_latency():
    from mnprof.counting.count import count
    from mnprof.views.grid import grid_frame

    frame = grid_frame([count(TINY)], [timing_record(TINY, samples_ms=(1.0,))])
    assert frame["latency_relative"].isna().all() and frame["reference_id"].isna().all()
    assert grid_frame([count(TINY)], [timing_record(TINY)], reference="0.25-32")["latency_relative"].tolist() == [1.0]


def test_ctrl_c_during_a_sweep_says_what_was_kept_in_one_line(tmp_path, fake_peak, monkeypatch, capsys):
    results = tmp_path / "r.json"
    real_add = ResultsStore.add

    def add_then_interrupt(self, row):
        real_add(self, row)
        raise KeyboardInterrupt

    monkeypatch.setattr(ResultsStore, "add", add_then_interrupt)
    args = ("table", "-q", "--alpha", "0.25", "--resolution", "32,40", "--budget", "0.1", "--threads", "1")
    code, out, err = run(capsys, *args, "--results", str(results))
    assert code == 130 and out == ""
    assert err.splitlines() == [f"mnprof: error: interrupted: 1 measurements kept in {results}; add --resume to "
                                "finish the rest"]  # fmt: skip


def _run_of(run_id: str, when: str, latencies: dict[str, float]) -> list[TimingRecord]:
    """Records of one run: each configuration's headline as given, one run id and start time."""
    import dataclasses

    return [
        dataclasses.replace(
            record := timing_record(config, headline_ms=ms, threads=1),
            provenance=dataclasses.replace(record.provenance, run_id=run_id, measured_at=when),
        )
        for config, ms in latencies.items()
    ]


def test_runs_whose_headlines_differ_overall_are_told_apart():
    import dataclasses

    from mnprof.timing.plan import RUNS_APART, run_shifts

    base = {"1.0-224": 12.0, "0.5-160": 5.0, "0.25-128": 2.5}
    first = _run_of("aaaa", "2026-01-01T10:00:00+00:00", base)
    ratios = {"1.0-224": 1.21, "0.5-160": 1.10, "0.25-128": 1.0}  # geometric mean 1.10 (arithmetic 1.103)
    slower = _run_of("bbbb", "2026-01-01T10:05:00+00:00", {c: ms * ratios[c] for c, ms in base.items()})
    close = _run_of("cccc", "2026-01-01T10:10:00+00:00", {c: ms * 1.02 for c, ms in base.items()})
    shifts = {(s.first[:4], s.second[:4]): s for s in run_shifts(first + slower + close)}
    assert set(shifts) == {("aaaa", "bbbb"), ("aaaa", "cccc"), ("bbbb", "cccc")}  # in the order they ran
    assert shifts["aaaa", "bbbb"].shift == pytest.approx(0.10) and shifts["aaaa", "bbbb"].apart
    assert shifts["aaaa", "cccc"].shift == pytest.approx(0.02) and not shifts["aaaa", "cccc"].apart
    assert shifts["bbbb", "cccc"].shift == pytest.approx(1.02 / 1.10 - 1) and shifts["bbbb", "cccc"].apart
    assert shifts["aaaa", "bbbb"].configurations == 3 and RUNS_APART == 0.04
    # 4% apart either way alike: 1/1.0416 is 4% faster, as 1.0416 is 4% slower (and 0.9615 is not apart)
    for factor, apart in ((1.0416, True), (1 / 1.0416, True), (1.039, False), (1 / 1.039, False)):
        later = _run_of("eeee", "2026-01-01T12:00:00+00:00", {c: ms * factor for c, ms in base.items()})
        (shift,) = run_shifts(first + later)
        assert shift.apart is apart, factor
    other = [dataclasses.replace(r, key=dataclasses.replace(r.key, batch_size=8)) for r in slower]
    assert len(run_shifts(first + other)) == 0  # another batch size is another series: never compared
    two = _run_of("dddd", "2026-01-01T11:00:00+00:00", {"1.0-224": 24.0, "0.5-160": 10.0})
    assert not [s for s in run_shifts(first + two) if "dddd" in s.second]  # two configurations in common: too few
    unlabelled = [timing_record(c, headline_ms=ms * 2, threads=1) for c, ms in base.items()]  # files without run ids
    assert len(run_shifts(first + unlabelled)) == 0


def test_table_from_results_warns_when_the_runs_saw_the_host_in_different_states(capsys, tmp_path):
    from mnprof.timing.store import RESULTS_KIND, RESULTS_SCHEMA_VERSION

    base = {"1.0-224": 12.0, "0.5-160": 5.0, "0.25-128": 2.5}
    paths = []
    for name, run_id, factor in (("a", "aaaa", 1.0), ("b", "bbbb", 1.3)):
        rows = [r.to_row() for r in _run_of(run_id, f"2026-01-01T10:0{len(paths)}:00+00:00",
                                            {c: ms * factor for c, ms in base.items()})]  # fmt: skip
        document = {"schema_version": RESULTS_SCHEMA_VERSION, "kind": RESULTS_KIND, "environment": {},
                    "gemm_peaks": [], "measurements": rows}  # fmt: skip
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(document))
    code, out, err = run(capsys, "table", "-q", "--from-results", str(paths[0]), "--from-results", str(paths[1]),
                         "--alpha", "1.0,0.5,0.25", "--resolution", "224,160,128")  # fmt: skip
    assert code == 0, err
    assert "run bbbb (2026-01-01T10:01) measured +30.0% vs run aaaa (2026-01-01T10:00) over the 3 configurations" in err
    assert "compare rel within a run, or rerun" in err and "rel" in out
