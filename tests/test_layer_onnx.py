"""Per-layer timing on onnxruntime: nodes attributed to layers by their module scope, samples per run, int8
times only where the outputs agree."""

from __future__ import annotations

import pytest

from mnprof.counting.traced import plan_count
from mnprof.errors import MnprofError
from mnprof.model.config import Family, ModelConfig
from mnprof.runtimes import quantized
from mnprof.timing.layer_onnx import _per_pass, node_layer
from mnprof.timing.layers import LayerTimingSettings, time_layers
from tests.cli_run import run

V1 = {layer.spec.name for layer in plan_count(ModelConfig(alpha=0.25, resolution=128)).layers}
V2 = {layer.spec.name for layer in plan_count(ModelConfig(alpha=1.0, resolution=224, family=Family.MOBILENETV2)).layers}


@pytest.mark.parametrize(
    ("node", "names", "layer"),
    [
        ("/stem/conv/Conv", V1, "stem"),
        ("/blocks/blocks.1/dw/conv/Conv", V1, "blocks.1.dw"),
        ("/blocks/blocks.13/pw/relu/Relu_output_0_nchwc", V1, "blocks.13.pw"),  # float32: conv + ReLU fused
        ("/blocks/blocks.2/pw/conv/Conv_token_13", V1, "blocks.2.pw"),  # int8: QLinearConv
        ("/pool/GlobalAveragePool", V1, "pool"),
        ("/fc/Gemm", V1, "fc"),
        ("/blocks/blocks.3/Add", V2, "blocks.3.add"),  # a residual block's own forward
        ("/blocks/blocks.3/expand/conv/Conv", V2, "blocks.3.expand"),
        ("x_QuantizeLinear", V1, None),  # the input's quantisation: no layer's
        ("Transpose", V1, None),
        ("/Flatten", V1, None),
        ("/blocks/blocks.1 2/dw/Conv", V1, None),  # not a module scope
        ("/residual/expand/expand.0/Conv", {"residual.expand.0"}, "residual.expand.0"),  # nested Sequential
        ("/0/Conv", {"0", "2"}, "0"),  # a plain Sequential's child
    ],
)
def test_each_node_belongs_to_the_layer_of_its_module_scope(node, names, layer):
    assert node_layer(node, names) == layer


def node(name: str, ts: float, dur: float, op: str) -> dict:
    return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur, "args": {"op_name": op}}


def test_node_times_are_summed_per_layer_and_run_glue_apart():
    plan = tuple(layer.spec for layer in plan_count(ModelConfig(alpha=0.25, resolution=128)).layers)
    runs = [(100.0, 200.0), (300.0, 400.0)]
    trace = [
        node("/stem/conv/Conv", 110, 5, "QLinearConv"),
        node("/stem/conv/Conv_DequantizeLinear", 116, 1, "DequantizeLinear"),  # glue: unit only
        node("x_QuantizeLinear", 105, 2, "QuantizeLinear"),  # no layer's
        node("/stem/conv/Conv", 310, 7, "QLinearConv"),
        node("/fc/Gemm", 390, 3, "Gemm"),
        node("/fc/Gemm", 250, 99, "Gemm"),  # between runs (warm-up or agreement): not counted
        {"cat": "Session", "name": "model_run", "ts": 100, "dur": 100},
    ]
    op_ns, unit_ns, other = _per_pass(trace, runs, plan)
    assert op_ns["stem"] == [5000, 7000]
    assert unit_ns["stem"] == [6000, 7000]
    assert op_ns["fc"] == [0, 3000]
    assert other == [2000, 0]
    assert op_ns["blocks.1.dw"] == [0, 0]


def test_torch_profiler_is_refused_for_onnxruntime():
    with pytest.raises(MnprofError, match="accepted with --backend onnxruntime: --method hooks"):
        LayerTimingSettings(backend="onnxruntime", method="profiler")


def test_a_user_family_is_refused_on_onnxruntime(capsys):
    code, out, err = run(capsys, "layers", "-q", "--model", "tiny=tests.tiny_family:tiny", "--alpha", "1.0",
                         "--resolution", "64", "--backend", "onnxruntime", "--repeats", "3")  # fmt: skip
    assert code == 2 and out == "" and "accepted with --model tiny: --backend eager or channels_last" in err
    assert len(err.strip().splitlines()) == 1


def test_a_trace_that_lost_runs_is_refused(monkeypatch):
    """onnxruntime's profiler stops recording at a million events: the last runs would not be the timed ones."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from mnprof.timing import layer_onnx

    monkeypatch.setattr(layer_onnx, "_runs", lambda trace: [(0.0, 1.0)])
    with pytest.raises(MnprofError, match="recorded 1 of 4 runs .* accepted: fewer --repeats"):
        time_layers(ModelConfig(alpha=0.25, resolution=32), LayerTimingSettings(backend="onnxruntime", repeats=3,
                    warmup=1, budget_s=0.01))  # fmt: skip


def test_every_layer_is_timed_on_onnxruntime():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    config = ModelConfig(alpha=0.25, resolution=128)
    times = time_layers(config, LayerTimingSettings(backend="onnxruntime", repeats=3, warmup=1, budget_s=0.01))
    assert times.repeats == 3 and times.runtime.startswith("onnxruntime ")
    for name in V1:
        samples = times.op_ns[name]
        assert len(samples) == 3 and all(sample > 0 for sample in samples), name
    assert times.output_cosine is None  # float32: equality is checked by the sweep, not agreement


def test_int8_layers_are_timed_only_where_the_outputs_agree(monkeypatch, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    # cosine 0.9967 on an AVX-512 VNNI host, 0.9895 on an AVX2 one (onnxruntime's u8s8 kernels differ): below 0.999
    config = ModelConfig(alpha=0.25, resolution=128)
    settings = LayerTimingSettings(backend="onnxruntime_int8", repeats=3, warmup=1, budget_s=0.01)
    with pytest.raises(MnprofError, match="onnxruntime_int8 posts no per-layer times: its output does not agree"):
        time_layers(config, settings)
    code, out, err = run(capsys, "layers", "-q", "--alpha", "0.25", "--resolution", "128",
                         "--backend", "onnxruntime_int8", "--repeats", "3")  # fmt: skip
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    monkeypatch.setattr(quantized, "MIN_COSINE", 0.98)
    monkeypatch.setattr(quantized, "MIN_TOP1", 0.5)
    times = time_layers(config, settings)
    assert 0.98 < times.output_cosine < 0.999
    assert all(len(times.op_ns[name]) == 3 for name in V1)
