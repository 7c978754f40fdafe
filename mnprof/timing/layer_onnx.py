"""Per-layer timing on onnxruntime (float32 and int8): its profiler's per-node kernel times, by layer.

The model is exported as the ``onnxruntime`` backend exports it (and, for ``onnxruntime_int8``, quantised
as that backend quantises it, :func:`mnprof.runtimes.quantized.quantize_onnx`), then run in a session with
onnxruntime's profiler on. The profiler writes one event per node per run with the node's kernel time
(microsecond resolution). The exporter names every node after the module scope it came from
(``/blocks/blocks.1/dw/conv/Conv``), and onnxruntime's graph optimisations keep that scope when they fuse
(``/blocks/blocks.1/dw/relu/Relu_output_0_nchwc`` for a conv + ReLU, ``.../conv/Conv_token_4`` for a
quantised conv), so each node is attributed to the layer of its scope (:func:`mnprof.model.arch.layer_of`).

Per layer and pass: ``op`` is the layer's compute nodes (the convolution, pool, Gemm or add, whatever
onnxruntime fused into them); ``unit`` adds the layer's own quantise / dequantise, layout and activation
nodes where they stay separate. Nodes outside every layer (the input's quantisation, layout changes
between NCHW and onnxruntime's blocked or NHWC layouts, flatten) are summed per pass as unattributed.
Whole runs of a session without the profiler are timed as well (``forward_ns``).

An int8 model posts per-layer times only when its outputs agree with eager float32
(:func:`mnprof.runtimes.quantized.agreement`), as in the timing sweep.
"""

from __future__ import annotations

import bisect
import json
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mnprof.errors import MnprofError
from mnprof.model.arch import LayerSpec, layer_of
from mnprof.runtimes.backends import runtime_version
from mnprof.runtimes.quantized import Agreement, agreement, quantize_onnx
from mnprof.runtimes.registry import Backend, backend_info
from mnprof.runtimes.runners import onnx_export, onnxruntime_session

__all__ = ["GLUE_OPERATORS", "OnnxLayerTimes", "node_layer", "onnx_layer_passes"]

# Nodes of a layer that are not its computation: (de)quantisation, layout changes, a separate activation.
GLUE_OPERATORS = frozenset(
    {"QuantizeLinear", "DequantizeLinear", "Transpose", "ReorderInput", "ReorderOutput", "Relu", "Clip", "Reshape"}
)
_KERNEL_SUFFIX = "_kernel_time"
PROFILER_EVENT_LIMIT = 1_000_000  # onnxruntime's profiler records no more events than this per session
_SCOPE_PART = re.compile(r"^[\w.]+$")


@dataclass(frozen=True)
class OnnxLayerTimes:
    """Per-pass samples in nanoseconds (see the module docstring)."""

    op_ns: dict[str, list[int]]
    unit_ns: dict[str, list[int]]
    unattributed_ns: list[int]
    forward_ns: list[int]
    runtime: str
    agreement: Agreement | None


def node_layer(node: str, layer_names: set[str]) -> str | None:
    """The layer a node belongs to, from the module scope in its name; ``None`` outside every layer.

    ``/blocks/blocks.1/dw/conv/Conv`` -> scope ``blocks``, ``blocks.1``, ``dw``, ``conv`` -> module path
    ``blocks.1.dw.conv`` -> layer ``blocks.1.dw`` (``/a/b/b.0/Conv`` -> ``a.b.0``). The last part is the
    node's own name, not a scope."""
    if not node.startswith("/"):
        return None
    components: list[str] = []
    for part in node.split("/")[1:-1]:
        if not _SCOPE_PART.match(part):
            return None
        if components and part.startswith(components[-1] + "."):
            components[-1] = part  # the exporter repeats a child's qualified name: "blocks", "blocks.1"
        else:
            components.append(part)
    return layer_of(".".join(components), layer_names) if components else None


def _runs(trace: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(start, end) in microseconds of every ``model_run`` in the trace, in order."""
    runs = [(e["ts"], e["ts"] + e["dur"]) for e in trace if e.get("cat") == "Session" and e.get("name") == "model_run"]
    return sorted(runs)


def _per_pass(
    trace: list[dict[str, Any]], runs: list[tuple[float, float]], plan: tuple[LayerSpec, ...]
) -> tuple[dict[str, list[int]], dict[str, list[int]], list[int]]:
    names = {spec.name for spec in plan}
    op_ns: dict[str, list[int]] = {spec.name: [0] * len(runs) for spec in plan}
    unit_ns: dict[str, list[int]] = {spec.name: [0] * len(runs) for spec in plan}
    other = [0] * len(runs)
    starts = [start for start, _ in runs]
    for event in trace:
        if event.get("cat") != "Node" or not str(event.get("name", "")).endswith(_KERNEL_SUFFIX):
            continue
        index = _run_of(event["ts"], runs, starts)
        if index is None:
            continue
        duration = int(round(float(event["dur"]) * 1000))
        layer = node_layer(event["name"][: -len(_KERNEL_SUFFIX)], names)
        if layer is None:
            other[index] += duration
            continue
        unit_ns[layer][index] += duration
        if event.get("args", {}).get("op_name") not in GLUE_OPERATORS:
            op_ns[layer][index] += duration
    return op_ns, unit_ns, other


def _run_of(ts: float, runs: list[tuple[float, float]], starts: list[float]) -> int | None:
    """The run whose span holds time ``ts``, or ``None``."""
    index = bisect.bisect_right(starts, ts) - 1
    if index < 0 or ts > runs[index][1]:
        return None
    return index


def onnx_layer_passes(
    backend: Backend,
    model: Any,
    inputs: torch.Tensor,
    plan: tuple[LayerSpec, ...],
    passes: Callable[[Callable[[], object]], int],
    *,
    warmup: int,
    threads: int,
) -> OnnxLayerTimes:
    """Export (and quantise), run ``warmup`` untimed passes, then ``passes`` profiled ones and as many plain."""
    exported = onnx_export(model, inputs)
    checked = None
    int8 = backend_info(backend).int8
    if int8:
        exported, _ = quantize_onnx(exported, inputs.shape[-1], inputs.shape[0])
    feed = {"x": inputs.numpy()}
    runs_before = 0
    with tempfile.TemporaryDirectory(prefix="mnprof-ort-profile-") as folder:
        session = onnxruntime_session(exported, threads, profile_prefix=str(Path(folder) / "layers"))
        if int8:
            checked, runs_before = _agreement(session, model, inputs)
        for _ in range(warmup):
            session.run(None, feed)
        done = passes(lambda: session.run(None, feed))
        trace = json.loads(Path(session.end_profiling()).read_text())
    recorded = _runs(trace)
    if len(recorded) != runs_before + warmup + done:
        raise MnprofError(
            f"onnxruntime's profiler recorded {len(recorded)} of {runs_before + warmup + done} runs (it stops at "
            f"{PROFILER_EVENT_LIMIT:,} events); accepted: fewer --repeats"
        )
    runs = recorded[-done:]
    op_ns, unit_ns, other = _per_pass(trace, runs, plan)
    plain = onnxruntime_session(exported, threads)
    for _ in range(warmup):
        plain.run(None, feed)
    forward_ns = []
    for _ in range(done):
        start = time.perf_counter_ns()
        plain.run(None, feed)
        forward_ns.append(time.perf_counter_ns() - start)
    version = runtime_version(backend) or "?"
    return OnnxLayerTimes(op_ns, unit_ns, other, forward_ns, f"onnxruntime {version}", checked)


def _agreement(session: Any, model: Any, inputs: torch.Tensor) -> tuple[Agreement, int]:
    """The int8 model's agreement with eager float32 (refused below the sweep's bar), and the runs it took."""
    runs = 0

    def infer(batch: torch.Tensor) -> torch.Tensor:
        nonlocal runs
        runs += 1
        return torch.from_numpy(session.run(None, {"x": batch.numpy()})[0])

    with torch.inference_mode():
        reference = model(inputs)
    agreed = agreement(infer, model, infer(inputs), reference, inputs.shape[0], inputs.shape[-1])
    if agreed.problem is not None:
        raise MnprofError(f"onnxruntime_int8 posts no per-layer times: its {agreed.problem}")
    return agreed, runs
