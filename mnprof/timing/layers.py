"""Per-layer timing: how long each layer of one configuration takes on the CPU, one image, many passes.

:func:`time_layers` returns raw samples (:class:`LayerTimes`); the per-layer table that sets them
beside the counts, and its rendering, are :mod:`mnprof.views.layers`.

Model and input: :func:`mnprof.model.seeded.calibrated_model` and
:func:`mnprof.model.seeded.fixed_input`, the project's one seeded preparation. Calibrated weights keep
the activations at unit scale, as in a trained network; a freshly initialised network shrinks them
layer by layer toward denormals, which can distort CPU timings.

Timing methods (``--method``), both on the CPU, one image, median over many forward passes:

- ``hooks`` (default): forward pre- and post-hooks read ``time.perf_counter_ns`` around each
  layer's conv / pool / FC module, and around its whole unit (conv + BatchNorm + ReLU). Eager CPU
  operators run synchronously on the calling thread (intra-op threads join before an operator
  returns), so this is the module's wall time, its Python call path included. Hooks are
  registered for the timed passes only.
- ``profiler``: ``torch.profiler``; a layer's time is the CPU time of its top-level aten
  operator (``aten::conv2d``, ``aten::adaptive_avg_pool2d``, ``aten::linear``), children
  included, matched to layers in forward order. The order is checked first, in one pass with
  ``record_shapes``, by operator name and input shape against the layer plan, so an attribution
  error fails loudly instead of shifting time between layers.

Why hooks by default, from side-by-side runs on this project's 2-core machine (1.0-224 and
0.25-128, 30 passes, 1 thread, three rounds each): the two methods give the same picture
(depthwise share of time 12.9 to 14.7% at 1.0-224 with either, 59 to 61% at 0.25-128), and the
hooks' own cost is small (per-layer medians a median 0.6 to 5 microseconds above the profiler's).
But the profiler's event buffers make the process take 200 to 1,500 page faults per pass (the
hooks: 0 to 2), and with ``record_shapes`` on, one layer (blocks.2.dw) read 1.4 ms instead of
0.3 ms, so shapes are recorded in the check pass only. Hooks also attribute by construction. The
profiler stays available as a cross-check.

Memory (``--allocator``): by default glibc serves large blocks with fresh ``mmap`` calls and
returns freed memory to the system, so an eager forward pass can take thousands of page faults
whose cost (up to about a millisecond) lands on whichever layer allocates, differently from run
to run. The ``steady`` setting (default) keeps freed memory in the process while timing, as an
inference runtime's arena would (see :func:`steady_allocator`); the notes report the page faults
per pass either way. Whole forward passes with neither hooks nor profiler are timed as well, so
that what the per-layer times leave out (Python glue, flatten) is visible. The thread count is
fixed for the measurement and restored after (:func:`mnprof.timing.backends.torch_threads`), and
Python's garbage collector is paused while timing (:func:`mnprof.timing.engine.gc_paused`), as in
the main timing sweep.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import torch

try:
    import resource
except ImportError:  # not on Unix: page faults are then reported as not measurable
    resource = None  # type: ignore[assignment]

from mnprof.counting.analytic import analytic_count
from mnprof.errors import MnprofError
from mnprof.model.arch import LayerKind, LayerSpec
from mnprof.model.config import ModelConfig, parse_choice
from mnprof.model.seeded import calibrated_model, fixed_input
from mnprof.timing.backends import Backend, torch_threads
from mnprof.timing.engine import SampleStats, gc_paused

__all__ = [
    "LAYER_BACKENDS",
    "Allocator",
    "LayerTimes",
    "LayerTimingSettings",
    "Method",
    "steady_allocator",
    "time_layers",
]

CONV_KINDS = (LayerKind.CONV, LayerKind.DEPTHWISE, LayerKind.POINTWISE)
LAYER_BACKENDS = (Backend.EAGER, Backend.CHANNELS_LAST)  # the backends whose modules hooks and the profiler can see


class Method(StrEnum):
    """How each layer's time is taken (see the module docstring)."""

    HOOKS = "hooks"  # forward pre/post hooks reading time.perf_counter_ns around the layer's module
    PROFILER = "profiler"  # torch.profiler: CPU time of the layer's aten operator


class Allocator(StrEnum):
    """What the C allocator may do while layers are timed."""

    STEADY = "steady"  # glibc: keep freed memory (no mmap per large block, no trimming), as a runtime's arena would
    DEFAULT = "default"  # leave malloc as it is


@dataclass(frozen=True)
class LayerTimingSettings:
    """How to time the layers.

    Args:
        backend: one of :data:`LAYER_BACKENDS` (:class:`mnprof.timing.backends.Backend`): ``eager``
            (PyTorch eager mode, NCHW) or ``channels_last`` (eager mode, model and input in NHWC).
        method: see :class:`Method`.
        allocator: see :class:`Allocator` and :func:`steady_allocator`.
        repeats: timed forward passes with hooks (and as many without), at most.
        warmup: untimed forward passes first (allocator, kernel selection, caches).
        budget_s: stop after this many seconds of timed passes, once ``MIN_REPEATS`` are done.
        threads: intra-op threads during the measurement (``torch.set_num_threads``), restored after.
        seed: seed of the calibrated model's weights and of the fixed input (:mod:`mnprof.model.seeded`).
    """

    backend: Backend = Backend.EAGER
    method: Method = Method.HOOKS
    allocator: Allocator = Allocator.STEADY
    repeats: int = 50
    warmup: int = 5
    budget_s: float = 20.0
    threads: int = 1
    seed: int = 0

    MIN_REPEATS = 3

    def __post_init__(self) -> None:
        if self.backend not in LAYER_BACKENDS:  # a StrEnum member equals its value, so strings are accepted too
            shown = self.backend.value if isinstance(self.backend, Backend) else self.backend
            accepted = ", ".join(backend.value for backend in LAYER_BACKENDS)
            raise MnprofError(f"unknown backend {shown!r}; accepted: {accepted}")
        object.__setattr__(self, "backend", Backend(self.backend))
        object.__setattr__(self, "method", parse_choice(self.method, Method, "timing method"))
        object.__setattr__(self, "allocator", parse_choice(self.allocator, Allocator, "allocator"))
        for name, value, minimum in (("repeats", self.repeats, self.MIN_REPEATS), ("warmup", self.warmup, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise MnprofError(f"{name} {value!r} is invalid; accepted: an integer >= {minimum}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise MnprofError(f"threads {self.threads!r} is invalid; accepted: an integer >= 1")
        if not isinstance(self.budget_s, (int, float)) or not self.budget_s > 0:
            raise MnprofError(f"budget {self.budget_s!r} is invalid; accepted: a number of seconds > 0")


@dataclass(frozen=True)
class LayerTimes:
    """Raw samples in nanoseconds, one per timed forward pass; statistics are derived from them.

    ``op_ns``: the layer's conv / pool / FC module. ``unit_ns``: the layer's whole unit (conv +
    BatchNorm + ReLU; the module itself for pool and FC). ``forward_ns``: whole forward passes
    without hooks, interleaved with the hooked ones.
    """

    settings: LayerTimingSettings
    op_ns: dict[str, tuple[int, ...]]
    unit_ns: dict[str, tuple[int, ...]]
    forward_ns: tuple[int, ...]
    torch_version: str
    page_faults_per_pass: float | None = None  # minor page faults per timed pass (None where not measurable)
    allocator_steady: bool = False  # whether the steady allocator setting was in effect

    @property
    def method(self) -> str:
        if self.settings.method is Method.PROFILER:
            return "torch.profiler, CPU time of each layer's aten operator (children included)"
        return "forward hooks reading time.perf_counter_ns around each layer's module"

    @property
    def steady_requested(self) -> bool:
        """Whether the steady allocator setting was asked for (:attr:`allocator_steady`: whether it took effect)."""
        return self.settings.allocator is Allocator.STEADY

    @property
    def repeats(self) -> int:
        return len(self.forward_ns)

    @staticmethod
    def _ms(samples: tuple[int, ...]) -> float:
        return SampleStats.of(samples).median / 1e6

    def op_ms(self, layer: str) -> float:
        return self._ms(self.op_ns[layer])

    def unit_ms(self, layer: str) -> float:
        return self._ms(self.unit_ns[layer])

    def op_iqr_ms(self, layer: str) -> float:
        return SampleStats.of(self.op_ns[layer]).iqr / 1e6

    @property
    def forward_ms(self) -> float:
        return self._ms(self.forward_ns)


def _module_paths(spec: LayerSpec) -> tuple[str, str]:
    """(op module, unit module) of a planned layer in :class:`mnprof.model.networks.MobileNetV1`."""
    if spec.kind in CONV_KINDS:
        return f"{spec.name}.conv", spec.name
    return spec.name, spec.name


# glibc's mallopt parameters and defaults (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_GLIBC_DEFAULT_THRESHOLD = 128 * 1024
_STEADY_THRESHOLD = 32 * 1024 * 1024  # glibc's largest accepted mmap threshold on 64-bit systems


@contextmanager
def steady_allocator(enabled: bool = True) -> Iterator[bool]:
    """On glibc, keep freed memory in the process while the block runs; yields whether that took effect.

    Why: by default glibc serves each block above a (dynamic) threshold with a fresh ``mmap`` and
    returns freed memory to the system, so a forward pass can take thousands of page faults, and
    their cost (up to a millisecond) lands on whichever layer happened to allocate, differently from
    one run to the next. Inference runtimes plan an arena once; with M_MMAP_THRESHOLD and
    M_TRIM_THRESHOLD raised to 32 MiB, steady-state passes take (almost) no page faults and each
    layer's time is its own. After the block both are set back to glibc's documented default
    (128 KiB); glibc offers no way to read the previous values, so a threshold that glibc had
    raised dynamically is reset to the default (malloc's behaviour, not correctness, changes).
    """
    mallopt = None
    if enabled:
        try:
            import ctypes  # lazily: only the steady setting reaches into the C library

            mallopt = ctypes.CDLL(None).mallopt
            mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            mallopt.restype = ctypes.c_int
        except (OSError, AttributeError):
            mallopt = None
    if mallopt is None:
        yield False
        return
    applied = bool(mallopt(_M_MMAP_THRESHOLD, _STEADY_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _STEADY_THRESHOLD)
    )
    try:
        yield applied
    finally:
        mallopt(_M_MMAP_THRESHOLD, _GLIBC_DEFAULT_THRESHOLD)
        mallopt(_M_TRIM_THRESHOLD, _GLIBC_DEFAULT_THRESHOLD)


def _minor_faults() -> int | None:
    if resource is None:
        return None
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)


def _prepare(config: ModelConfig, settings: LayerTimingSettings) -> tuple[Any, Any]:
    """The seeded calibrated model (activations at unit scale, not denormals) + fixed input, backend's memory format."""
    model = calibrated_model(config, settings.seed)
    inputs = fixed_input(config, batch_size=1, seed=settings.seed)
    if settings.backend is Backend.CHANNELS_LAST:
        model = model.to(memory_format=torch.channels_last)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    return model, inputs


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
def _without_kineto_chatter() -> Iterator[None]:
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
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines():
                if not _KINETO_CHATTER.match(line):
                    print(line, file=sys.stderr)


def _run_profiled(model: Any, inputs: Any, passes: Callable[[], int], record_shapes: bool) -> tuple[Any, int]:
    """Run ``passes()`` under torch.profiler (CPU); return the top-level events in time order and its result."""
    from torch.profiler import ProfilerActivity, profile  # lazily: the profiler is loaded only for --method profiler

    profiler = profile(activities=[ProfilerActivity.CPU], record_shapes=record_shapes)
    with _without_kineto_chatter():
        profiler.start()
    try:
        done = passes()
    finally:
        with _without_kineto_chatter():
            profiler.stop()
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


def _profiled_passes(
    model: Any,
    inputs: Any,
    plan: tuple[LayerSpec, ...],
    settings: LayerTimingSettings,
    on_pass: Callable[[int, int], None] | None,
) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Per-layer CPU times from torch.profiler: the top-level aten operator of each layer, children included.

    Layers are matched to operators in forward order. The order is checked first, in a separate
    pass, by operator name and recorded input shape; the timed passes run without ``record_shapes``,
    which inflated one layer of 1.0-224 (blocks.2.dw) about fourfold in this project's runs.
    """
    _check_attribution(model, inputs, plan)
    deadline = time.perf_counter() + settings.budget_s

    def timed_passes() -> int:
        model(inputs)  # the profiler's start-up cost lands on this pass, which is dropped below
        done = 0
        for done in range(1, settings.repeats + 1):  # noqa: B007
            model(inputs)
            if on_pass is not None:
                on_pass(done, settings.repeats)
            if done >= settings.MIN_REPEATS and time.perf_counter() > deadline:
                break
        return done

    top, passes = _run_profiled(model, inputs, timed_passes, record_shapes=False)
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
    if position + 1 != (passes + 1) * len(plan):
        raise RuntimeError(f"profiler saw {position + 1} layer operators, expected {(passes + 1) * len(plan)}")
    return op_ns, unit_ns


def _hooked_pass(model: Any, inputs: Any, hook_table: list[tuple[Any, Any, Any]]) -> None:
    # Hooks are registered for this pass only, so that plain passes take PyTorch's no-hook fast path.
    handles = []
    for module, before, after in hook_table:
        handles.append(module.register_forward_pre_hook(before))
        handles.append(module.register_forward_hook(after))
    try:
        model(inputs)
    finally:
        for handle in handles:
            handle.remove()


def _hooked_passes(
    model: Any,
    inputs: Any,
    plan: tuple[LayerSpec, ...],
    settings: LayerTimingSettings,
    on_pass: Callable[[int, int], None] | None,
) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Per-layer wall times from forward pre- and post-hooks reading ``time.perf_counter_ns``."""
    modules = dict(model.named_modules())
    op_ns: dict[str, list[int]] = {spec.name: [] for spec in plan}
    unit_ns: dict[str, list[int]] = {spec.name: [] for spec in plan}
    started: dict[str, int] = {}

    def hooks_for(key: str, sink: list[int]) -> tuple[Callable[..., None], Callable[..., None]]:
        def before(_module: Any, _inputs: Any) -> None:
            started[key] = time.perf_counter_ns()

        def after(_module: Any, _inputs: Any, _output: Any) -> None:
            sink.append(time.perf_counter_ns() - started[key])

        return before, after

    hook_table = []
    for spec in plan:
        op_path, unit_path = _module_paths(spec)
        hook_table.append((modules[op_path], *hooks_for(f"op:{spec.name}", op_ns[spec.name])))
        if unit_path != op_path:
            hook_table.append((modules[unit_path], *hooks_for(f"unit:{spec.name}", unit_ns[spec.name])))
    deadline = time.perf_counter() + settings.budget_s
    for done in range(1, settings.repeats + 1):
        _hooked_pass(model, inputs, hook_table)
        if on_pass is not None:
            on_pass(done, settings.repeats)
        if done >= settings.MIN_REPEATS and time.perf_counter() > deadline:
            break
    for spec in plan:
        if _module_paths(spec)[0] == _module_paths(spec)[1]:
            unit_ns[spec.name] = op_ns[spec.name]
    return op_ns, unit_ns


def time_layers(
    config: ModelConfig,
    settings: LayerTimingSettings | None = None,
    on_pass: Callable[[int, int], None] | None = None,
) -> LayerTimes:
    """Time every layer of ``config``'s model on the CPU, one image, ``settings.repeats`` passes at most.

    ``on_pass(done, total)`` is called after each timed pass (for progress bars). After the per-layer
    passes, as many whole forward passes run with neither hooks nor profiler (``forward_ns``). See
    the module docstring for the methods.
    """
    settings = settings or LayerTimingSettings()
    plan = tuple(layer.spec for layer in analytic_count(config).layers)
    model, inputs = _prepare(config, settings)
    steady = settings.allocator is Allocator.STEADY
    with (
        torch_threads(settings.threads),
        steady_allocator(steady) as allocator_steady,
        torch.inference_mode(),
        gc_paused(),
    ):
        for _ in range(settings.warmup):
            model(inputs)
        passes = _profiled_passes if settings.method is Method.PROFILER else _hooked_passes
        faults_before = _minor_faults()
        op_ns, unit_ns = passes(model, inputs, plan, settings, on_pass)
        faults_after = _minor_faults()
        forward_ns = []
        for _ in range(len(op_ns[plan[0].name])):
            start = time.perf_counter_ns()
            model(inputs)
            forward_ns.append(time.perf_counter_ns() - start)
    return LayerTimes(
        settings=settings,
        op_ns={name: tuple(samples) for name, samples in op_ns.items()},
        unit_ns={name: tuple(samples) for name, samples in unit_ns.items()},
        forward_ns=tuple(forward_ns),
        torch_version=torch.__version__,
        page_faults_per_pass=(
            (faults_after - faults_before) / len(forward_ns)
            if faults_before is not None and faults_after is not None
            else None
        ),
        allocator_steady=allocator_steady,
    )
