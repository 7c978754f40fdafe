"""Measured peak memory (``mnprof memory``): the bytes are exact, every byte alive at the peak is named, the
tensors the analytic model counts are found at the peak, and each named cause is shown by removing it."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from mnprof.counting.traced import plan_count
from mnprof.files.schemas import schema_problem
from mnprof.memory.measure import measure_memory, measure_runner
from mnprof.memory.records import ANALYTIC_CAUSES, Cause, MemoryMeasurement
from mnprof.model.config import Family, ModelConfig, default_grid
from mnprof.model.networks import build_model
from mnprof.runtimes.backends import Runner, fold_batchnorm
from mnprof.runtimes.registry import Backend
from tests.cli_run import run


def modelled(m: MemoryMeasurement) -> int:
    return sum(m.bytes_of(cause) for cause in ANALYTIC_CAUSES)


def batchnorms(config: ModelConfig) -> tuple[int, int]:
    """(BatchNorm layers, their channels) of a built-in configuration."""
    count = plan_count(config)
    layers = [layer for layer in count.layers if layer.spec.batch_norm]
    return len(layers), count.batch_norm_channels


def test_one_configuration_is_pinned_to_exact_bytes_and_named_tensor_by_tensor():
    m = measure_memory(ModelConfig(alpha=1.0, resolution=224), 1)
    assert m.forward_peak_bytes == 9_634_304
    assert m.layer == "blocks.1.pw" == m.analytic_peak_layer
    # blocks.1.pw at 1.0-224: input 32x112x112, output 64x112x112 floats
    assert m.bytes_of(Cause.LAYER_INPUT) == 4 * 32 * 112 * 112
    assert m.bytes_of(Cause.LAYER_OUTPUT) == 4 * 64 * 112 * 112  # BatchNorm's output
    assert m.bytes_of(Cause.UNFOLDED_BATCHNORM) == 4 * 64 * 112 * 112  # the conv's, kept while BatchNorm runs
    assert m.bytes_of(Cause.HELD_BY_CALLER) == 4 * 32 * 112 * 112  # the stem's output, held by the blocks' call
    assert m.bytes_of(Cause.INPUT_BATCH) == 4 * 3 * 224 * 224
    assert m.bytes_of(Cause.WORKSPACE) == 2 * 4 * 64  # native_batch_norm's saved mean and inverse std
    assert m.bytes_of(Cause.OTHER) == 0
    assert m.analytic_peak_bytes == 4 * (32 + 64) * 112 * 112
    assert m.total_bytes == 27_252_088
    assert [(t.module, t.cause) for t in m.live if t.cause is Cause.UNFOLDED_BATCHNORM] == [
        ("blocks.1.pw.conv", Cause.UNFOLDED_BATCHNORM)
    ]


def test_the_measurement_is_deterministic():
    config = ModelConfig(alpha=0.5, resolution=160)
    assert measure_memory(config, 2) == measure_memory(config, 2)


@pytest.mark.parametrize("backend", [Backend.EAGER, Backend.FUSED])
@pytest.mark.slow
def test_every_default_configuration_is_explained_to_the_byte(backend):
    """All 16 default configurations (eager at batch 1 and 8, fused at 1): the tensors the analytic model
    counts at the layer where the peak falls are exactly its working set there, nothing alive is unnamed,
    and the measured total is weights + the named tensors."""
    for config in default_grid():
        for batch in (1, 8) if backend is Backend.EAGER else (1,):
            m = measure_memory(config, batch, backend)
            assert m.bytes_of(Cause.OTHER) == 0, (config.id, batch)
            assert modelled(m) == m.analytic_at_layer_bytes, (config.id, batch)
            assert sum(t.nbytes for t in m.live) == m.forward_peak_bytes + m.input_bytes
            assert m.total_bytes == m.weights_held_bytes + sum(t.nbytes for t in m.live)
            assert (
                m.analytic_total_bytes
                == 4 * plan_count(config).params() + plan_count(config).peak_working_set(batch) * 4
            )
            layers, channels = batchnorms(config)
            if backend is Backend.EAGER:
                # running mean and variance per channel (float32) and a 64-bit counter per BatchNorm
                assert m.buffer_bytes == 4 * 2 * channels + 8 * layers
                assert m.bytes_of(Cause.UNFOLDED_BATCHNORM) > 0
            else:
                # folded: scale and shift gone, a bias per channel gained
                assert m.buffer_bytes == -4 * channels
                assert m.bytes_of(Cause.UNFOLDED_BATCHNORM) == 0


class OneLayerAtATime(nn.Module):
    """The analytic model of execution, in eager PyTorch: BatchNorm folded, layers run in a loop so that each
    layer's input is dropped once the next has its output (no enclosing call holds it)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.layers = nn.ModuleList([model.stem, *[unit for block in model.blocks for unit in block], model.pool])
        self.fc = model.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.fc(torch.flatten(x, 1))


@pytest.mark.parametrize(("alpha", "resolution", "batch"), [(1.0, 224, 1), (0.25, 128, 8), (0.5, 160, 1)])
def test_run_one_layer_at_a_time_the_peak_is_the_analytic_working_set(alpha, resolution, batch):
    """What the eager model holds beyond the analytic figure is its structure: the same layers, BatchNorm
    folded and run one at a time, peak at exactly the analytic working set (+ the kernel's weight reorder)."""
    config = ModelConfig(alpha=alpha, resolution=resolution)
    folded = fold_batchnorm(build_model(config)).to(memory_format=torch.channels_last)
    runner = Runner(Backend.FUSED, lambda: None, lambda: None, module=OneLayerAtATime(folded).eval())
    m = measure_runner(config, batch, runner)
    assert m.forward_peak_bytes - m.bytes_of(Cause.WORKSPACE) == m.analytic_peak_bytes
    eager = measure_memory(config, batch, Backend.EAGER)
    assert eager.forward_peak_bytes > m.forward_peak_bytes


def test_mobilenetv2_workspace_is_oneDNNs_layout_copy_and_channels_last_removes_it():
    """Eager NCHW MobileNetV2 peaks inside a depthwise conv that copies its input and output to oneDNN's
    blocked layout: named workspace, about the size of the layer's input + output; in channels_last the
    copies are gone and the modelled tensors are the analytic working set exactly."""
    config = ModelConfig(alpha=1.0, resolution=224, family=Family.MOBILENETV2)
    nchw = measure_memory(config, 1, Backend.EAGER)
    assert nchw.layer == "blocks.2.dw"
    assert nchw.bytes_of(Cause.OTHER) == 0
    assert nchw.bytes_of(Cause.WORKSPACE) >= nchw.analytic_at_layer_bytes
    nhwc = measure_memory(config, 1, Backend.CHANNELS_LAST)
    assert modelled(nhwc) == nhwc.analytic_at_layer_bytes
    assert nhwc.bytes_of(Cause.WORKSPACE) < nchw.bytes_of(Cause.WORKSPACE) // 100
    assert nhwc.bytes_of(Cause.OTHER) == 0


@pytest.mark.parametrize("backend", [Backend.BFLOAT16, Backend.FLOAT16])
def test_reduced_precision_halves_every_tensor(monkeypatch, backend):
    from mnprof.runtimes import backends

    monkeypatch.setattr(backends, f"native_{backend.value}", lambda device: True)  # measured wherever it is run
    config = ModelConfig(alpha=0.5, resolution=128)
    m = measure_memory(config, 8, backend)
    assert m.activation_bytes == 2
    assert m.input_bytes == 2 * 8 * 3 * 128 * 128
    assert m.analytic_peak_bytes == 2 * plan_count(config).peak_working_set(8)
    assert m.bytes_of(Cause.OTHER) == 0


def test_cli_writes_rows_and_tensors(capsys, tmp_path):
    out = tmp_path / "memory.json"
    code, _, err = run(capsys, "memory", "-q", "--alpha", "0.25", "--resolution", "128", "--format", "json",
                       "--out", str(out))  # fmt: skip
    assert code == 0, err
    document = json.loads(out.read_text())
    assert document["kind"] == "mnprof.memory" and "unit" not in document  # bytes, named in every column
    assert schema_problem(document, "table") is None  # the published table schema holds memory documents too
    assert [(row["batch_size"], row["other_bytes"]) for row in document["rows"]] == [(1, 0), (8, 0)]
    row = document["rows"][0]
    causes = sum(row[cause.key] for cause in Cause)
    assert row["measured_bytes"] == row["weights_held_bytes"] + causes
    code, text, err = run(capsys, "memory", "-q", "--alpha", "0.25", "--resolution", "128", "--batch-size", "1",
                          "--view", "tensors", "--format", "csv")  # fmt: skip
    assert code == 0, err
    assert "blocks.1.pw.conv" in text and Cause.UNFOLDED_BATCHNORM.value in text


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--backend", "onnxruntime"], "allocates in onnxruntime's own arena"),
        (["--backend", "torch_int8"], "cannot follow module by module"),
        (["--alpha", "4", "--resolution", "2048", "--batch-size", "64"], "GiB are available"),
        (["--batch-size", "0"], "batch size 0 is invalid"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(capsys, tmp_path, args, says):
    out = tmp_path / "memory.json"
    code, text, err = run(capsys, "memory", "-q", *args, "--out", str(out))
    assert code == 2
    assert says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() and text == ""


def test_a_reduced_precision_the_hardware_would_emulate_is_one_line(capsys, monkeypatch, tmp_path):
    from mnprof.runtimes import backends

    monkeypatch.setattr(backends, "native_float16", lambda device: False)
    out = tmp_path / "memory.json"
    code, text, err = run(capsys, "memory", "-q", "--backend", "eager,float16", "--out", str(out))
    assert code == 2 and "no native float16 arithmetic" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and text == ""


def test_a_user_family_is_measured_without_analytic_columns(capsys):
    code, text, err = run(capsys, "memory", "-q", "--model", "tiny=tests.tiny_family:tiny", "--alpha", "1.0",
                          "--resolution", "64", "--batch-size", "1", "--format", "json")  # fmt: skip
    assert code == 0, err
    (row,) = json.loads(text)["rows"]
    assert row["id"] == "tiny-1.0-64" and row["analytic_bytes"] is None
    assert row["measured_bytes"] == row["weights_held_bytes"] + sum(row[cause.key] for cause in Cause)
    assert row["forward_peak_bytes"] > 0


def test_the_output_is_told_from_a_freed_buffer_at_the_same_address():
    """An address alone does not say which allocation is a call's output: a buffer the running call frees
    before it returns can leave its address to the output allocated after it."""
    from mnprof.memory.measure import _Call, _Event, _explain, _output_allocations, peak_of_pass

    calls = [
        _Call("", "Net", input_ptr=1, start=0, end=7, output_ptr=20),
        _Call("layer", "Sequential", input_ptr=1, start=1, end=6, output_ptr=20),
        _Call("layer.conv", "Conv2d", input_ptr=1, start=2, end=3, output_ptr=10),
        _Call("layer.bn", "BatchNorm2d", input_ptr=10, start=4, end=5, output_ptr=20),
    ]
    events = [
        _Event(1, 0, ptr=99, nbytes=-8, call=2, op="aten::conv2d"),  # a block from before the pass: ignored
        _Event(2, 1, ptr=10, nbytes=4, call=2, op="aten::conv2d"),  # the conv's output
        _Event(3, 2, ptr=20, nbytes=5, call=3, op="aten::batch_norm"),  # the BatchNorm's scratch buffer
        _Event(4, 3, ptr=21, nbytes=1, call=3, op="aten::batch_norm"),  # the peak: 4 + 5 + 1
        _Event(5, 4, ptr=20, nbytes=-5, call=3, op="aten::batch_norm"),
        _Event(6, 5, ptr=21, nbytes=-1, call=3, op="aten::batch_norm"),
        _Event(7, 6, ptr=20, nbytes=4, call=3, op="aten::batch_norm"),  # its output, at the scratch's address
        _Event(8, 7, ptr=10, nbytes=-4, call=1, op=""),
    ]
    peak, alive, reached = peak_of_pass(events)
    assert (peak, reached) == (10, events[3])
    assert sorted(alive) == [10, 20, 21]
    outputs = _output_allocations(events, calls)
    assert outputs[3] is events[6] and outputs[1] is events[6] and outputs[2] is events[1]
    layer, live = _explain(alive, reached, calls, (1, 12), {"layer"}, outputs)
    assert layer == "layer"
    by_size = {(t.nbytes, t.module): t.cause for t in live}
    assert by_size == {
        (12, "(caller)"): Cause.LAYER_INPUT,
        (4, "layer.conv"): Cause.UNFOLDED_BATCHNORM,
        (5, "layer.bn"): Cause.WORKSPACE,  # not the output, though the output later takes its address
        (1, "layer.bn"): Cause.WORKSPACE,
    }


def test_running_out_of_memory_while_measured_is_one_line(capsys, monkeypatch):
    """The check before allocating is an estimate: a pass that still runs out is an error, not a traceback."""
    from mnprof.memory import measure as memory

    def exhausted(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(memory, "measure_runner", exhausted)
    code, out, err = run(capsys, "memory", "-q", "--alpha", "0.25", "--resolution", "32", "--batch-size", "1")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "mnprof: error: 0.25-32 eager batch 1 ran out of memory while measured (RuntimeError from the allocator); "
        "accepted: a smaller batch size or resolution"
    ]


def test_the_check_before_measuring_counts_what_eager_holds():
    """The estimate a memory measurement is refused by counts the largest layer pair three times: eager holds
    about twice the analytic working set (measured above), so once would let a pass start that cannot end."""
    from mnprof.memory.measure import EAGER_ACTIVATION_COPIES
    from mnprof.timing.records import Device, TimingKey
    from mnprof.timing.sweep import memory_estimate

    config = ModelConfig(alpha=1.0, resolution=224)
    m = measure_memory(config, 8)
    key = TimingKey(config, Backend.EAGER, 8, 1, Device.CPU)
    assert memory_estimate(key) < m.total_bytes <= memory_estimate(key, EAGER_ACTIVATION_COPIES)


def test_ctrl_c_is_one_line_and_exit_130(capsys, monkeypatch):
    from mnprof.cli import memory as memory_command

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(memory_command, "measure_memory", interrupted)
    code, out, err = run(capsys, "memory", "-q", "--alpha", "0.25", "--resolution", "32")
    assert code == 130 and out == ""
    assert err.splitlines() == [
        "mnprof: error: interrupted; files already written are complete, nothing was half-written"
    ]
