"""Per-layer CPU times from ``torch.profiler``, the cross-check of the hooks in :mod:`mnprof.timing.layers`.

A layer's time is the CPU time of its top-level aten operator (``aten::conv2d``,
``aten::adaptive_avg_pool2d``, ``aten::linear``), children included, matched to layers in forward
order. The order is checked first, in one pass with ``record_shapes``, by operator name and input
shape against the layer plan, so an attribution error fails loudly instead of shifting time between
layers.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from torch.profiler import ProfilerActivity, profile

from mnprof.model.arch import LayerKind, LayerSpec

__all__ = ["OPERATORS", "UNIT_OPERATORS", "profiled", "profiled_passes", "without_kineto_chatter"]


OPERATORS = {
    LayerKind.CONV: "aten::conv2d",
    LayerKind.DEPTHWISE: "aten::conv2d",
    LayerKind.POINTWISE: "aten::conv2d",
    LayerKind.POOL: "aten::adaptive_avg_pool2d",
    LayerKind.FC: "aten::linear",
}
UNIT_OPERATORS = ("aten::batch_norm", "aten::relu_", "aten::relu")  # what follows a conv in its unit


# Kineto (torch.profiler's backend) writes lines such as "USDT:2026-01-01 10:00:00 123:123
# SyncActivityProfilerHandler.cpp:52] profiler_start" straight to file descriptor 2 on every start
# and stop; KINETO_LOG_LEVEL does not silence them.
_KINETO_CHATTER = re.compile(r"^[A-Z]+:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \d+:\d+ \w+\.cpp:\d+\] ")


@contextmanager
def without_kineto_chatter() -> Iterator[None]:
    """Run the block with fd 2 captured; write back every captured line except Kineto's status lines."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            _write_back(capture)


def _write_back(capture: IO[bytes]) -> None:
    """Every line captured in ``capture`` to standard error, but Kineto's status lines."""
    capture.seek(0)
    for line in capture.read().decode(errors="replace").splitlines():
        if not _KINETO_CHATTER.match(line):
            print(line, file=sys.stderr)


def profiled(call: Callable[[], Any], **options: Any) -> tuple[Any, Any]:
    """Run ``call()`` under torch.profiler (CPU, ``options`` as ``profile`` takes them), Kineto's status lines kept
    off stderr; return the profiler and what ``call`` returned."""
    profiler = profile(activities=[ProfilerActivity.CPU], **options)
    with without_kineto_chatter():
        profiler.start()
    try:
        returned = call()
    finally:
        with without_kineto_chatter():
            profiler.stop()
    return profiler, returned


def _run_profiled(model: Any, inputs: Any, passes: Callable[[], int], record_shapes: bool) -> tuple[Any, int]:
    """Run ``passes()`` under torch.profiler (CPU); return the top-level events in time order and its result."""
    profiler, done = profiled(passes, record_shapes=record_shapes)
    top = sorted((e for e in profiler.events() if e.cpu_parent is None), key=lambda e: e.time_range.start)
    return top, done


def _check_attribution(model: Any, inputs: Any, plan: tuple[LayerSpec, ...]) -> None:
    """One pass with ``record_shapes``: the layer operators, in order, must have the plan's names and input shapes."""

    def one_pass() -> int:
        model(inputs)
        return 1

    top, _ = _run_profiled(model, inputs, one_pass, record_shapes=True)
    operators = [event for event in top if event.name in set(OPERATORS.values())]
    if len(operators) != len(plan):
        raise RuntimeError(f"profiler saw {len(operators)} layer operators in one pass, the plan has {len(plan)}")
    for event, spec in zip(operators, plan, strict=True):
        expected = [1, spec.in_channels, spec.in_size, spec.in_size] if spec.kind is not LayerKind.FC else None
        shape = list(event.input_shapes[0]) if event.input_shapes else None
        if event.name != OPERATORS[spec.kind] or (expected is not None and shape != expected):
            raise RuntimeError(
                f"profiler event {event.name} {shape} does not match layer {spec.name} "
                f"({OPERATORS[spec.kind]} {expected}); the model's forward order differs from the plan"
            )


def profiled_passes(
    model: Any, inputs: Any, plan: tuple[LayerSpec, ...], passes: Callable[[Callable[[], object]], int]
) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Per-layer CPU times from torch.profiler: the top-level aten operator of each layer, children included.

    Layers are matched to operators in forward order. The order is checked first, in a separate
    pass, by operator name and recorded input shape; the timed passes run without ``record_shapes``,
    which inflated one layer's time several-fold.
    """
    _check_attribution(model, inputs, plan)

    def timed_passes() -> int:
        model(inputs)  # the profiler's start-up cost lands on this pass, which is dropped below
        return passes(lambda: model(inputs))

    top, done = _run_profiled(model, inputs, timed_passes, record_shapes=False)
    op_ns: dict[str, list[int]] = {spec.name: [] for spec in plan}
    unit_ns: dict[str, list[int]] = {spec.name: [] for spec in plan}
    layer_ops = set(OPERATORS.values())
    position = -1  # index into the flattened sequence of (pass, layer)
    for event in top:
        nanoseconds = round(event.cpu_time_total * 1000)  # the profiler reports microseconds
        if event.name in layer_ops:
            position += 1
            spec = plan[position % len(plan)]
            if event.name != OPERATORS[spec.kind]:
                raise RuntimeError(f"profiler event {event.name} does not match layer {spec.name}")
            if position >= len(plan):  # the first pass is dropped
                op_ns[spec.name].append(nanoseconds)
                unit_ns[spec.name].append(nanoseconds)
        elif event.name in UNIT_OPERATORS and position >= len(plan):
            unit_ns[plan[position % len(plan)].name][-1] += nanoseconds
    if position + 1 != (done + 1) * len(plan):
        raise RuntimeError(f"profiler saw {position + 1} layer operators, expected {(done + 1) * len(plan)}")
    return op_ns, unit_ns
