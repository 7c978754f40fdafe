"""The int8 runtime: calibration inputs, the agreement that replaces equality, and its record."""

from __future__ import annotations

import pytest
import torch
from factories import timing_record

from mnprof.errors import MnprofError
from mnprof.host import host_environment
from mnprof.model.config import ModelConfig
from mnprof.model.seeded import calibrated_model, fixed_input
from mnprof.runtimes import quantized
from mnprof.timing.engine import StopRule
from mnprof.timing.records import Backend, GemmPeak, TimingRecord
from mnprof.timing.store import ResultsStore, read_results
from mnprof.timing.sweep import TimingSettings, run_sweep

TINY = ModelConfig(0.25, 32)
FAST = StopRule(budget_s=0.1, block_s=0.01, warmup_max_s=0.02)


def test_calibration_images_are_seeded_apart_from_the_timed_input_and_fit_the_exported_shape():
    batches = list(quantized.calibration_batches(32, 4))
    assert [tuple(b.shape) for b in batches] == [(4, 3, 32, 32)] * 4
    again = list(quantized.calibration_batches(32, 4))
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))  # seeded
    timed = fixed_input(TINY, 1)[0]
    assert not any(torch.equal(image, timed) for batch in batches for image in batch)
    (big,) = quantized.calibration_batches(32, 40)  # a batch larger than the calibration set: repeated
    assert big.shape == (40, 3, 32, 32)


@pytest.mark.parametrize(
    ("cosine", "top1", "passes"),
    [(0.9995, 1.0, True), (0.9985, 1.0, False), (0.9999, 0.85, False), (quantized.MIN_COSINE, 0.9, True)],
)
def test_agreement_needs_both_the_cosine_and_the_top1(cosine, top1, passes):
    problem = quantized.Agreement(cosine, top1, 0.5).problem
    assert (problem is None) is passes
    if not passes:
        assert "does not agree with eager float32" in problem and f"{cosine:.5f}" in problem


def test_agreement_of_an_exact_runtime_is_perfect_and_of_a_wrong_one_is_not():
    model = calibrated_model(TINY)
    inputs = fixed_input(TINY, 2)
    with torch.inference_mode():
        reference = model(inputs)

        def exact(batch):
            return model(batch)

    same = quantized.agreement(exact, model, reference, reference, 2, 32)
    assert same.cosine == pytest.approx(1.0) and same.top1 == 1.0 and same.max_abs_error == 0.0
    shuffled = quantized.agreement(lambda b: exact(b).flip(1), model, reference.flip(1), reference, 2, 32)
    assert shuffled.problem is not None and shuffled.top1 < 0.5


def test_lossy_fields_survive_the_results_file_and_are_validated():
    row = timing_record(TINY, "onnxruntime_int8").to_row()
    assert row["output_cosine"] is None and row["quantization"] is None
    row.update(output_cosine=0.9995, output_top1_agreement=1.0, quantization={"format": "QDQ", "images": 16})
    record = TimingRecord.from_row(row)
    assert record.output_cosine == 0.9995 and record.quantization == {"format": "QDQ", "images": 16}
    assert record.to_row()["output_top1_agreement"] == 1.0
    assert "output_cosine" not in timing_record(TINY, "eager").to_row()  # exact runtimes: equality only
    assert TimingRecord.from_row({**row, "model_bytes": 4_460_000}).model_bytes == 4_460_000
    for bad in ({"output_cosine": 1.5}, {"output_top1_agreement": "all"}, {"quantization": {"x": [1]}},
                {"model_bytes": -1}, {"model_bytes": 1.5}):  # fmt: skip
        with pytest.raises(MnprofError, match="accepted"):
            TimingRecord.from_row({**row, **bad})


SMALL = ModelConfig(0.5, 64)


def sweep_rows(monkeypatch, path, *runtimes, configs=(SMALL,)):
    """Rows of one fast sweep of ``configs`` over ``runtimes`` (1 thread, the GEMM peak stubbed), kept in ``path``."""
    from mnprof.timing import sweep as sweep_module

    peak = GemmPeak.from_row({"device": "cpu", "threads": 1, "kernel": "mm", "gflops": 100.0,
                              "gflops_by_kernel": {}, "int8_gops": 400.0})  # fmt: skip
    monkeypatch.setattr(sweep_module, "measure_gemm_peak", lambda *a, **k: peak)
    settings = TimingSettings(backends=runtimes, threads=1, rule=FAST)
    store = ResultsStore.open(path, host_environment(), resume=False)
    return [record.to_row() for record in run_sweep(list(configs), settings, store)]


def test_int8_sweep_posts_a_time_only_with_its_agreement(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    path = tmp_path / "r.json"
    eager, int8 = sweep_rows(monkeypatch, path, Backend.EAGER, Backend.ONNXRUNTIME_INT8)
    assert "output_cosine" not in eager
    assert int8["quantization"]["format"] == "QDQ" and int8["quantization"]["calibration_images"] == 16
    assert -1 <= int8["output_cosine"] <= 1 and 0 <= int8["output_top1_agreement"] <= 1
    if int8["error"] is None:  # agreed: timed like every runtime
        assert int8["output_cosine"] >= quantized.MIN_COSINE and int8["latency_ms_p5"] > 0
    else:  # did not agree: an error row that says how far it was, and no time
        assert "does not agree with eager float32" in int8["error"] and int8["latency_ms_p5"] is None
    kept = {row["backend"]: row for row in read_results(path)["measurements"]}
    assert kept["onnxruntime_int8"]["quantization"] == int8["quantization"]
    # the model each runtime holds: eager every float32 parameter and buffer; int8 the quantised ONNX model,
    # whose weights take a byte each (the 0.5-64 model is mostly weights, so it is well under half the size)
    model = calibrated_model(ModelConfig(0.5, 64))
    float32 = 4 * sum(t.numel() for t in [*model.parameters(), *model.buffers()] if t.is_floating_point())
    batch_norms = sum(1 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert eager["model_bytes"] == float32 + 8 * batch_norms  # + each BatchNorm's int64 num_batches_tracked
    assert 0 < kept["onnxruntime_int8"]["model_bytes"] < eager["model_bytes"] / 2


def test_bfloat16_posts_a_time_with_its_agreement_where_the_hardware_has_it(tmp_path, monkeypatch):
    from mnprof.runtimes import backends
    from mnprof.timing.records import Device

    if not backends.native_bfloat16(Device.CPU):
        pytest.skip("this CPU has no native bfloat16")
    (row,) = sweep_rows(monkeypatch, tmp_path / "r.json", Backend.BFLOAT16)
    assert row["quantization"] is None and 0.99 < row["output_cosine"] <= 1
    agrees = row["output_cosine"] >= quantized.MIN_COSINE and row["output_top1_agreement"] >= quantized.MIN_TOP1
    assert (row["error"] is None) == agrees and (row["latency_ms_p5"] is not None) == agrees
    if not agrees:  # a small random network's logits are close to tied: bfloat16 rounding flips some top-1s
        assert "does not agree with eager float32" in row["error"]


@pytest.mark.parametrize(
    ("backend", "needs"),
    [("bfloat16", "CPUs need AVX-512 BF16 or AMX"), ("float16", "CPUs need AVX-512 FP16 or AMX-FP16")],
)
def test_reduced_precision_is_refused_with_what_it_needs_where_only_emulated(monkeypatch, backend, needs):
    from mnprof.runtimes import backends

    monkeypatch.setattr(backends, f"native_{backend}", lambda device: False)
    with pytest.raises(MnprofError, match=f"no native {backend} arithmetic \\({needs}.*not a result"):
        TimingSettings(backends=("eager", backend))
    monkeypatch.setattr(backends, f"native_{backend}", lambda device: True)
    TimingSettings(backends=("eager", backend))  # accepted where native


def test_float16_is_native_on_a_cpu_only_where_onednn_says_so_and_never_without_a_gpu(monkeypatch):
    from mnprof.runtimes import backends
    from mnprof.timing.records import Device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not backends.native_float16(Device.CUDA)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for capability, native in (((5, 2), False), ((5, 3), True), ((9, 0), True)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda capability=capability: capability)
        assert backends.native_float16(Device.CUDA) is native
    assert backends.native_float16(Device.CPU) is bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())


def test_float16_posts_a_time_only_with_its_agreement_and_holds_two_bytes_a_weight(tmp_path, monkeypatch):
    """Run where the hardware has float16 (here forced: PyTorch's CPU kernels also compute it, by converting)."""
    from mnprof.runtimes import backends

    monkeypatch.setattr(backends, "native_float16", lambda device: True)
    path = tmp_path / "r.json"
    eager, half = sweep_rows(monkeypatch, path, Backend.EAGER, Backend.FLOAT16)
    assert half["backend"] == "float16" and half["quantization"] is None
    assert 0.99 < half["output_cosine"] <= 1 and 0 <= half["output_top1_agreement"] <= 1
    agrees = half["output_cosine"] >= quantized.MIN_COSINE and half["output_top1_agreement"] >= quantized.MIN_TOP1
    assert (half["error"] is None) == agrees and (half["latency_ms_p5"] is not None) == agrees
    model = calibrated_model(ModelConfig(0.5, 64))
    floats = sum(t.numel() for t in [*model.parameters(), *model.buffers()] if t.is_floating_point())
    batch_norms = sum(1 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert half["model_bytes"] == 2 * floats + 8 * batch_norms  # the int64 counters are not converted
    assert eager["model_bytes"] == 4 * floats + 8 * batch_norms
    assert {row["backend"] for row in read_results(path)["measurements"]} == {"eager", "float16"}


def test_torch_int8_sweep_posts_a_time_only_with_its_agreement(tmp_path, monkeypatch):
    """PyTorch's own int8 (torch.ao.quantization, FX graph mode): no extra to install, the same rule."""
    path = tmp_path / "r.json"
    engine = quantized.torch_int8_engine()
    other = next(e for e in torch.backends.quantized.supported_engines if e not in (engine, "none"))
    monkeypatch.setattr(torch.backends.quantized, "engine", other)  # restored by monkeypatch at the end too
    eager, int8 = sweep_rows(monkeypatch, path, Backend.EAGER, Backend.TORCH_INT8)
    assert torch.backends.quantized.engine == other  # the engine is set around each call, then restored
    assert int8["quantization"]["format"] == f"PyTorch quantized modules, {engine} engine"
    assert -1 <= int8["output_cosine"] <= 1 and 0 <= int8["output_top1_agreement"] <= 1
    if int8["error"] is None:
        assert int8["output_cosine"] >= quantized.MIN_COSINE and int8["latency_ms_p5"] > 0
    else:
        assert "does not agree with eager float32" in int8["error"] and int8["latency_ms_p5"] is None
    assert 0 < int8["model_bytes"] < eager["model_bytes"] / 2  # int8 weights: a byte each
    assert {row["backend"] for row in read_results(path)["measurements"]} == {"eager", "torch_int8"}


def test_int8_rows_are_a_fraction_of_the_integer_roof_and_reduced_precision_of_the_float32_one(tmp_path, monkeypatch):
    from mnprof.runtimes import backends

    monkeypatch.setattr(backends, "native_float16", lambda device: True)
    monkeypatch.setattr(quantized, "MIN_COSINE", -1.0)  # every lossy row posts a time, whatever it agrees
    monkeypatch.setattr(quantized, "MIN_TOP1", 0.0)
    rows = sweep_rows(monkeypatch, tmp_path / "r.json", Backend.EAGER, Backend.FLOAT16, Backend.TORCH_INT8)
    roofs = {row["backend"]: (row["gemm_peak_gflops"], row["peak_fraction"]) for row in rows}
    assert {backend: roof for backend, (roof, _) in roofs.items()} == {
        "eager": 100.0, "float16": 100.0, "torch_int8": 400.0  # the stub's float32 and integer peaks
    }  # fmt: skip
    assert all(fraction > 0 for _, fraction in roofs.values())


def test_a_configurations_agreement_does_not_depend_on_the_others_in_the_sweep(tmp_path, monkeypatch):
    """The seeded model's BatchNorm is calibrated at its resolution: 0.25-32 timed after 0.25-64 (same width) must
    be 0.25-32's own model, as when it is timed alone (the sweep once reused 0.25-64's)."""

    def cosines(*configs):
        rows = sweep_rows(monkeypatch, tmp_path / f"{len(configs)}.json", Backend.TORCH_INT8, configs=configs)
        return {f"{row['alpha']:g}-{row['resolution']}": row["output_cosine"] for row in rows}

    alone = cosines(ModelConfig(0.25, 32))
    together = cosines(ModelConfig(0.25, 64), ModelConfig(0.25, 32))
    assert together["0.25-32"] == alone["0.25-32"]


def test_torch_int8_uses_8_bit_activations_only_with_int8_dot_product_instructions(monkeypatch):
    from mnprof import host

    flags = {"avx2"}
    monkeypatch.setattr(quantized, "cpu_info", lambda: host.CpuInfo(None, None, None, None, None, frozenset(flags)))
    assert quantized.torch_int8_engine() == "x86"
    assert "7-bit" in quantized.torch_settings("x86").activations
    flags.add("avx512_vnni")
    expected = "onednn" if "onednn" in torch.backends.quantized.supported_engines else "x86"
    assert quantized.torch_int8_engine() == expected
