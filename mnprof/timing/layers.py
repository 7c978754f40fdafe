"""Per-layer analysis: counts, bytes moved, arithmetic intensity and measured time of every layer.

One row per planned layer (the stem conv, each depthwise and pointwise conv, the pool, the FC)
with its shapes, params, MACs (analytic, and fvcore's count of the same module), what a standard
convolution would cost in place of each separable block, bytes moved, arithmetic intensity,
measured time, share of MACs beside share of time, and achieved GFLOP/s.

Conventions:

- params and MACs: the paper's (a layer's own weights and biases; conv and FC multiply-accumulates).
- bytes moved: float32 (4 bytes), the layer's weights once + its input activations once + its
  output activations once. BatchNorm and ReLU are taken as folded into the convolution, as
  inference runtimes deploy them, so neither their parameters nor their own passes over the
  activations are counted (nor the M-float bias that folding BatchNorm adds). This is the
  minimum traffic of a layer without caching across layers: a lower bound, not a measurement.
- arithmetic intensity: FLOPs per byte = 2 x MACs / bytes moved.

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
fixed for the measurement and restored after.
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
from fractions import Fraction
from statistics import median
from typing import Any

import pandas as pd

from mnprof.counting.analytic import AnalyticCount, ParamConvention, analytic_count, conv_macs, conv_params
from mnprof.errors import MnprofError
from mnprof.model.arch import LayerKind, LayerSpec
from mnprof.model.config import ModelConfig, parse_choice
from mnprof.timing.backends import torch_threads
from mnprof.timing.engine import quantile

__all__ = [
    "BYTES_PER_ELEMENT",
    "Allocator",
    "Backend",
    "LayerReport",
    "LayerTimes",
    "Method",
    "TimingSettings",
    "layer_counts",
    "layer_report",
    "layers_spec",
    "render_layers",
    "steady_allocator",
    "time_layers",
]

BYTES_PER_ELEMENT = 4  # float32
CONV_KINDS = (LayerKind.CONV, LayerKind.DEPTHWISE, LayerKind.POINTWISE)


class Method(StrEnum):
    """How each layer's time is taken (see the module docstring)."""

    HOOKS = "hooks"  # forward pre/post hooks reading time.perf_counter_ns around the layer's module
    PROFILER = "profiler"  # torch.profiler: CPU time of the layer's aten operator


class Allocator(StrEnum):
    """What the C allocator may do while layers are timed."""

    STEADY = "steady"  # glibc: keep freed memory (no mmap per large block, no trimming), as a runtime's arena would
    DEFAULT = "default"  # leave malloc as it is


class Backend(StrEnum):
    """How the timed model runs."""

    EAGER = "eager"  # PyTorch eager mode, default (NCHW) memory format
    CHANNELS_LAST = "channels_last"  # eager mode, model and input in channels-last (NHWC) memory format


@dataclass(frozen=True)
class TimingSettings:
    """How to time the layers.

    Args:
        backend: see :class:`Backend`.
        method: see :class:`Method`.
        allocator: see :class:`Allocator` and :func:`steady_allocator`.
        repeats: timed forward passes with hooks (and as many without), at most.
        warmup: untimed forward passes first (allocator, kernel selection, caches).
        budget_s: stop after this many seconds of timed passes, once ``MIN_REPEATS`` are done.
        threads: intra-op threads during the measurement (``torch.set_num_threads``), restored after.
        seed: seed of the random input image and of the model's random weights.
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
        object.__setattr__(self, "backend", parse_choice(self.backend, Backend, "backend"))
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

    settings: TimingSettings
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
    def repeats(self) -> int:
        return len(self.forward_ns)

    @staticmethod
    def _ms(samples: tuple[int, ...]) -> float:
        return median(samples) / 1e6

    def op_ms(self, layer: str) -> float:
        return self._ms(self.op_ns[layer])

    def unit_ms(self, layer: str) -> float:
        return self._ms(self.unit_ns[layer])

    def op_iqr_ms(self, layer: str) -> float:
        samples = sorted(self.op_ns[layer])
        return (quantile(samples, 0.75) - quantile(samples, 0.25)) / 1e6

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
            import ctypes

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
    try:
        import resource
    except ImportError:  # not on Unix
        return None
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)


def _prepare(config: ModelConfig, settings: TimingSettings) -> tuple[Any, Any]:
    import torch

    from mnprof.model.networks import build_model

    generator = torch.Generator().manual_seed(settings.seed)
    inputs = torch.randn(1, 3, config.resolution, config.resolution, generator=generator)
    with torch.random.fork_rng(devices=[]):  # seeded weights, without touching the caller's random state
        torch.manual_seed(settings.seed)
        model = build_model(config)
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
    from torch.profiler import ProfilerActivity, profile

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
    settings: TimingSettings,
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
    settings: TimingSettings,
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
    settings: TimingSettings | None = None,
    on_pass: Callable[[int, int], None] | None = None,
) -> LayerTimes:
    """Time every layer of ``config``'s model on the CPU, one image, ``settings.repeats`` passes at most.

    ``on_pass(done, total)`` is called after each timed pass (for progress bars). After the per-layer
    passes, as many whole forward passes run with neither hooks nor profiler (``forward_ns``). See
    the module docstring for the methods.
    """
    import torch

    settings = settings or TimingSettings()
    plan = tuple(layer.spec for layer in analytic_count(config).layers)
    model, inputs = _prepare(config, settings)
    steady = settings.allocator is Allocator.STEADY
    with torch_threads(settings.threads), steady_allocator(steady) as allocator_steady, torch.inference_mode():
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


def _shape(channels: int, size: int) -> str:
    return f"{size}x{size}x{channels}"


def _bytes_moved(layer_params: int, in_elements: int, out_elements: int) -> int:
    return BYTES_PER_ELEMENT * (layer_params + in_elements + out_elements)


def layer_counts(config: ModelConfig, fvcore_by_module: dict[str, int] | None = None) -> pd.DataFrame:
    """One row per layer: shapes, params, MACs, the standard conv each separable block replaces, bytes, intensity.

    ``fvcore_by_module``: fvcore's per-module counts of the built model (``FvcoreCount.by_module``);
    when given, ``macs_fvcore`` (the layer's own module) and ``macs_fvcore_unit`` (with its
    BatchNorm and ReLU) are filled in.
    """
    count = analytic_count(config)
    total_macs = count.macs
    rows = []
    layers = count.layers
    for index, layer in enumerate(layers):
        spec = layer.spec
        op_path, unit_path = _module_paths(spec)
        block = int(spec.name.split(".")[1]) if spec.name.startswith("blocks.") else None
        bytes_moved = _bytes_moved(layer.params, layer.in_elements, layer.out_elements)
        row: dict[str, Any] = {
            "id": config.id,
            "layer": spec.name,
            "kind": spec.kind.value,
            "block": block,
            "in_shape": _shape(spec.in_channels, spec.in_size),
            "out_shape": _shape(spec.out_channels, spec.out_size),
            "kernel": spec.kernel,
            "stride": spec.stride,
            "groups": spec.groups,
            "params": layer.params,
            "macs_analytic": layer.macs,
            "macs_fvcore": fvcore_by_module.get(op_path, 0) if fvcore_by_module is not None else pd.NA,
            "macs_fvcore_unit": fvcore_by_module.get(unit_path, 0) if fvcore_by_module is not None else pd.NA,
            "macs_share": layer.macs / total_macs,
            "bytes_moved": bytes_moved,
            "arithmetic_intensity_flops_per_byte": 2 * layer.macs / bytes_moved,
        }
        row.update(_standard_in_place(layers, index))
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["block"] = frame["block"].astype("Int64")
    for column in ("macs_fvcore", "macs_fvcore_unit", "macs_standard", "params_standard"):
        frame[column] = frame[column].astype("Int64")
    return frame


def _standard_in_place(layers: tuple[Any, ...], index: int) -> dict[str, Any]:
    """On a block's pointwise row: the standard 3x3 conv the depthwise + pointwise pair stands in for.

    Separable/standard is computed from the two counts, and the seed note's 1/M + 1/F^2 beside it;
    the two are equal exactly (as fractions) for every block, since both sides share Ho * Wo * N.
    """
    empty = {
        "macs_standard": pd.NA,
        "params_standard": pd.NA,
        "separable_to_standard": float("nan"),
        "seed_formula_ratio": float("nan"),
    }
    spec = layers[index].spec
    if spec.kind is not LayerKind.POINTWISE or index == 0 or layers[index - 1].spec.kind is not LayerKind.DEPTHWISE:
        return empty
    depthwise = layers[index - 1]
    kernel, channels_in, channels_out, side = depthwise.spec.kernel, spec.in_channels, spec.out_channels, spec.out_size
    standard = conv_macs(side, side, kernel, channels_in, channels_out)
    separable = depthwise.macs + layers[index].macs
    return {
        "macs_standard": standard,
        "params_standard": conv_params(kernel, channels_in, channels_out),
        "separable_to_standard": float(Fraction(separable, standard)),
        "seed_formula_ratio": float(Fraction(1, channels_out) + Fraction(1, kernel * kernel)),
    }


def _with_times(frame: pd.DataFrame, times: LayerTimes | None) -> pd.DataFrame:
    frame = frame.copy()
    nan = float("nan")
    if times is None:
        for column in ("time_ms", "time_ms_iqr", "time_unit_ms", "time_share", "gflops_per_s"):
            frame[column] = nan
        return frame
    frame["time_ms"] = [times.op_ms(name) for name in frame["layer"]]
    frame["time_ms_iqr"] = [times.op_iqr_ms(name) for name in frame["layer"]]
    frame["time_unit_ms"] = [times.unit_ms(name) for name in frame["layer"]]
    frame["time_share"] = frame["time_ms"] / frame["time_ms"].sum()
    frame["gflops_per_s"] = [
        2 * macs / (ms / 1e3) / 1e9 if macs else nan
        for macs, ms in zip(frame["macs_analytic"], frame["time_ms"], strict=True)
    ]
    return frame


@dataclass(frozen=True)
class LayerReport:
    """The per-layer table of one configuration, the whole-model counts it must add up to, and the raw timings."""

    config: ModelConfig
    frame: pd.DataFrame
    analytic: AnalyticCount
    fvcore_total: int | None
    times: LayerTimes | None

    @property
    def totals(self) -> dict[str, Any]:
        """Column sums next to the whole-model counts they must equal."""
        frame = self.frame
        totals: dict[str, Any] = {
            "params": int(frame["params"].sum()),
            "params_model_paper": self.analytic.params(ParamConvention.PAPER),
            "macs_analytic": int(frame["macs_analytic"].sum()),
            "macs_model": self.analytic.macs,
            "bytes_moved": int(frame["bytes_moved"].sum()),
        }
        if self.fvcore_total is not None:
            totals["macs_fvcore_unit"] = int(frame["macs_fvcore_unit"].sum())
            totals["macs_fvcore_model"] = self.fvcore_total
        if self.times is not None:
            totals["time_ms"] = float(frame["time_ms"].sum())
            totals["time_unit_ms"] = float(frame["time_unit_ms"].sum())
            totals["forward_ms"] = self.times.forward_ms
        return totals


def layer_report(
    config: ModelConfig,
    timing: TimingSettings | None = None,
    *,
    fvcore: bool = True,
    on_pass: Callable[[int, int], None] | None = None,
) -> LayerReport:
    """Count (and, unless ``timing`` is None, time) every layer of ``config``.

    Args:
        config: the model configuration.
        timing: timing settings; None for counts only (the time columns are then NaN).
        fvcore: also trace the model with fvcore for its per-module counts (about a second at 1.0-224).
        on_pass: progress callback ``(done, total)`` for the timed passes.
    """
    fvcore_by_module = fvcore_total = None
    if fvcore:
        import torch

        from mnprof.counting.fvcore_counter import count_fvcore
        from mnprof.model.networks import build_model

        counted = count_fvcore(build_model(config), torch.zeros(1, 3, config.resolution, config.resolution))
        fvcore_by_module, fvcore_total = counted.by_module, counted.total
    times = time_layers(config, timing, on_pass) if timing is not None else None
    frame = _with_times(layer_counts(config, fvcore_by_module), times)
    return LayerReport(config, frame, analytic_count(config), fvcore_total, times)


# ---------------------------------------------------------------------------- rendering


def _num(value: Any, digits: int, scale: float = 1.0) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return "-"
    return f"{value * scale:,.{digits}f}"


def _kind_share(frame: pd.DataFrame, kind: str, column: str) -> float:
    return float(frame.loc[frame["kind"] == kind, column].sum())


def layers_spec(report: LayerReport) -> Any:
    """The :class:`mnprof.views.grid.Rendered` spec of a per-layer report: columns and notes derived from it."""
    from mnprof.views.render import Column, Rendered

    timed = report.times is not None
    columns = [
        Column("layer", lambda r: str(r["layer"]), "left"),
        Column("kind", lambda r: str(r["kind"]), "left"),
        Column("input", lambda r: str(r["in_shape"])),
        Column("output", lambda r: str(r["out_shape"])),
        Column(
            "kernel / stride", lambda r: "" if r["layer"] == "total" else f"{r['kernel']}x{r['kernel']} s{r['stride']}"
        ),
        Column("params", lambda r: _num(r["params"], 0)),
        Column("MMACs", lambda r: _num(r["macs_analytic"], 3, 1e-6)),
        Column("MMACs fvcore", lambda r: _num(r["macs_fvcore"], 3, 1e-6)),
        Column("std conv MMACs", lambda r: _num(r["macs_standard"], 2, 1e-6)),
        Column("sep/std", lambda r: _num(r["separable_to_standard"], 4)),
        Column("1/M+1/F²", lambda r: _num(r["seed_formula_ratio"], 4)),
        Column("MB moved", lambda r: _num(r["bytes_moved"], 3, 1e-6)),
        Column("FLOP/B", lambda r: _num(r["arithmetic_intensity_flops_per_byte"], 1)),
        Column("MAC share %", lambda r: _num(r["macs_share"], 2, 100)),
    ]
    if timed:
        columns += [
            Column("time ms", lambda r: _num(r["time_ms"], 3)),
            Column("time share %", lambda r: _num(r["time_share"], 2, 100)),
            Column("+BN+ReLU ms", lambda r: _num(r["time_unit_ms"] - r["time_ms"], 3)),
            Column("GFLOP/s", lambda r: _num(r["gflops_per_s"], 1)),
        ]
    return Rendered(
        f"{report.config.id}: per layer, counted" + (" and timed" if timed else ""),
        tuple(columns),
        _notes(report),
    )


def _notes(report: LayerReport) -> tuple[str, ...]:
    frame, totals = report.frame, report.totals
    equal = totals["macs_analytic"] == totals["macs_model"] and totals["params"] == totals["params_model_paper"]
    line = (
        f"Totals: MACs {totals['macs_analytic']:,} and params {totals['params']:,} "
        + ("equal" if equal else "DO NOT equal")
        + f" the whole model's analytic counts ({totals['macs_model']:,}, {totals['params_model_paper']:,}; "
        "params: conv and FC weights and biases)."
    )
    if report.fvcore_total is not None:
        fvcore_equal = totals["macs_fvcore_unit"] == totals["macs_fvcore_model"]
        convs = frame[frame["kind"] != LayerKind.POOL.value]
        same = int((convs["macs_fvcore"] == convs["macs_analytic"]).sum())
        line += (
            f" fvcore, per module: conv and FC equal the analytic count in {same} of {len(convs)} layers; "
            f"with the BatchNorm of each unit the modules sum to {totals['macs_fvcore_unit']:,}, "
            + ("equal to" if fvcore_equal else "NOT equal to")
            + f" fvcore's whole-model {totals['macs_fvcore_model']:,} (the pool row shows fvcore's 1 add per input "
            "element; BatchNorm is in the fvcore total, not in the MMACs fvcore column)."
        )
    notes = [line]
    separable = frame.dropna(subset=["separable_to_standard"])
    if len(separable):
        exact = bool((separable["separable_to_standard"] == separable["seed_formula_ratio"]).all())
        notes.append(
            "std conv: the 3x3 standard convolution that each depthwise + pointwise pair replaces (shown on the "
            f"pointwise row); sep/std is (dw + pw) / std, {'equal to' if exact else 'NOT equal to'} the seed note's "
            f"1/M + 1/F² in every block. The {len(separable)} blocks together: "
            f"{int(separable['macs_standard'].sum()) / 1e6:,.1f} MMACs as standard convolutions, "
            f"{int(frame.loc[frame['block'].notna(), 'macs_analytic'].sum()) / 1e6:,.1f} as built."
        )
    notes.append(
        "MB moved: float32, the layer's weights + input activations + output activations once each; BatchNorm "
        "and ReLU taken as folded into the conv (not counted). FLOP/B = 2 x MACs / bytes moved."
    )
    shares = []
    for kind in (LayerKind.POINTWISE, LayerKind.DEPTHWISE, LayerKind.CONV, LayerKind.FC, LayerKind.POOL):
        if (frame["kind"] == kind.value).any():
            text = f"{kind.value} {100 * _kind_share(frame, kind.value, 'macs_share'):.1f}% of MACs"
            if report.times is not None:
                text += f", {100 * _kind_share(frame, kind.value, 'time_share'):.1f}% of time"
            shares.append(text)
    notes.append("By kind: " + "; ".join(shares) + ".")
    if report.times is not None:
        times = report.times
        settings = times.settings
        notes.append(
            f"time: median of {times.repeats} forward passes after {settings.warmup} warm-up passes, one image, "
            f"CPU, {settings.threads} thread(s), backend {settings.backend.value}, torch {times.torch_version}; "
            f"method: {times.method}; conv, pool and FC timed apart from BatchNorm and ReLU "
            "(see mnprof.timing.layers). "
            "time share is of the sum of these times; GFLOP/s = 2 x MACs / time."
        )
        allocator = (
            "steady allocator (glibc keeps freed memory)"
            if times.allocator_steady
            else "allocator as is"
            + (" (steady was asked for; no glibc mallopt here)" if settings.allocator is Allocator.STEADY else "")
        )
        faults = (
            f"{times.page_faults_per_pass:,.0f} minor page faults per timed pass"
            if times.page_faults_per_pass is not None
            else "page faults not measurable here"
        )
        notes.append(f"Memory: {allocator}; {faults}.")
        unit_extra = totals["time_unit_ms"] - totals["time_ms"]
        notes.append(
            f"The layers' own times sum to {totals['time_ms']:.3f} ms; with the unfused BatchNorm + ReLU after each "
            f"conv ({unit_extra:.3f} ms) {totals['time_unit_ms']:.3f} ms; a whole forward pass with neither hooks "
            f"nor profiler takes {totals['forward_ms']:.3f} ms (median)."
        )
        noisy = frame[frame["time_ms_iqr"] > 0.2 * frame["time_ms"]]
        if len(noisy):
            notes.append(
                f"Noisy (IQR above 20% of the median): {', '.join(noisy['layer'])}; rerun with more --repeats or "
                "on a quieter machine."
            )
    else:
        notes.append("time: not measured (--no-timing).")
    return tuple(notes)


def _total_row(report: LayerReport) -> dict[str, Any]:
    frame, totals = report.frame, report.totals
    nan = float("nan")
    row: dict[str, Any] = {column: nan for column in frame.columns}
    row.update(
        {
            "layer": "total",
            "kind": "",
            "in_shape": "",
            "out_shape": "",
            "params": totals["params"],
            "macs_analytic": totals["macs_analytic"],
            "macs_fvcore": frame["macs_fvcore"].sum() if report.fvcore_total is not None else nan,
            "macs_standard": nan,
            "bytes_moved": totals["bytes_moved"],
            "arithmetic_intensity_flops_per_byte": 2 * totals["macs_analytic"] / totals["bytes_moved"],
            "macs_share": frame["macs_share"].sum(),
        }
    )
    if report.times is not None:
        row.update(
            {
                "time_ms": totals["time_ms"],
                "time_share": frame["time_share"].sum(),
                "time_unit_ms": totals["time_unit_ms"],
                "gflops_per_s": 2 * totals["macs_analytic"] / (totals["time_ms"] / 1e3) / 1e9,
            }
        )
    return row


def render_layers(report: LayerReport, fmt: Any) -> Any:
    """Render a per-layer report (``fmt``: a :class:`mnprof.views.grid.Format`).

    CSV and JSON carry the per-layer rows only (sum them for totals); the rich table and Markdown
    add a total row and the notes.
    """
    from mnprof.views.render import Format, render_with

    spec = layers_spec(report)
    frame = report.frame
    if fmt in (Format.TABLE, Format.MARKDOWN):
        frame = pd.concat([frame.astype(object), pd.DataFrame([_total_row(report)]).astype(object)], ignore_index=True)
    elif fmt is Format.JSON:
        frame = frame.astype(object).where(frame.notna(), None)  # pandas' NA is not JSON; null is
    return render_with(spec, frame, fmt, view="layers", unit="macs", kind="mnprof.layers")
