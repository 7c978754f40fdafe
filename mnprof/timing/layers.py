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
  operator, children included (see :mod:`mnprof.timing.layer_profiler`).

Why hooks by default: side by side, the two methods give the same picture and the hooks' own cost
is a few microseconds per layer, but the profiler's event buffers cost hundreds of page faults per
pass (the hooks: almost none), and with ``record_shapes`` on one layer read several times its time,
so shapes are recorded in the check pass only. Hooks also attribute by construction. The profiler
stays available as a cross-check (the runs: benchmarks/RESULTS.md).

Memory (``--allocator``): by default glibc serves large blocks with fresh ``mmap`` calls and
returns freed memory to the system, so an eager forward pass can take thousands of page faults
whose cost (up to about a millisecond) lands on whichever layer allocates, differently from run
to run. The ``steady`` setting (default) keeps freed memory in the process while timing, as an
inference runtime's arena would (see :func:`steady_allocator`); the notes report the page faults
per pass either way. Whole forward passes with neither hooks nor profiler are timed as well, so
that what the per-layer times leave out (Python glue, flatten) is visible. The thread count is
fixed for the measurement and restored after (:func:`mnprof.runtimes.backends.torch_threads`), and
Python's garbage collector is paused while timing (:func:`mnprof.timing.engine.gc_paused`), as in
the main timing sweep.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext, redirect_stdout
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import torch

try:
    import resource
except ImportError:  # not on Unix: page faults are then reported as not measurable
    resource = None  # type: ignore[assignment]

from mnprof.counting.traced import plan_count
from mnprof.errors import MnprofError
from mnprof.model.arch import LayerKind, LayerSpec
from mnprof.model.config import ModelConfig
from mnprof.model.networks import module_paths
from mnprof.model.seeded import calibrated_model, fixed_input
from mnprof.parsing import parse_choice
from mnprof.runtimes.backends import check_available, torch_threads
from mnprof.runtimes.registry import LAYER_BACKENDS, ONNX_LAYER_BACKENDS, Backend, backend_info, listing
from mnprof.timing.engine import gc_paused
from mnprof.timing.layer_onnx import onnx_layer_passes
from mnprof.timing.layer_profiler import profiled_passes
from mnprof.timing.records import Device
from mnprof.timing.stats import SampleStats
from mnprof.timing.sweep import MAX_THREADS, check_threads
from mnprof.timing.timer import steady_allocator
from mnprof.user_code import user_code

Passes = Callable[[Callable[[], object]], int]  # runs one pass repeatedly, returns how many ran

__all__ = [
    "LAYER_BACKENDS",
    "MAX_THREADS",
    "Allocator",
    "LayerTimes",
    "LayerTimingSettings",
    "Method",
    "steady_allocator",
    "time_layers",
]

# LAYER_BACKENDS and ONNX_LAYER_BACKENDS are views of the registry (its ``layers`` field): hooks or torch.profiler see
# the modules of eager and channels_last; onnxruntime's own profiler times each node of onnxruntime and
# onnxruntime_int8, attributed to its layer by the module scope in its name (mnprof.timing.layer_onnx).


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
        backend: one of :data:`LAYER_BACKENDS` (:class:`mnprof.runtimes.registry.Backend`): ``eager``
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
            accepted = listing(LAYER_BACKENDS)
            raise MnprofError(f"unknown backend {shown!r}; accepted: {accepted}")
        object.__setattr__(self, "backend", Backend(self.backend))
        object.__setattr__(self, "method", parse_choice(self.method, Method, "timing method"))
        if self.backend in ONNX_LAYER_BACKENDS and self.method is Method.PROFILER:
            raise MnprofError(
                f"--method profiler is torch.profiler, which does not see {self.backend.value}'s nodes; accepted "
                f"with --backend {self.backend.value}: --method hooks (the default: onnxruntime's own profiler "
                "times each node)"
            )
        object.__setattr__(self, "allocator", parse_choice(self.allocator, Allocator, "allocator"))
        for name, value, minimum in (("repeats", self.repeats, self.MIN_REPEATS), ("warmup", self.warmup, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise MnprofError(f"{name} {value!r} is invalid; accepted: an integer >= {minimum}")
        check_threads(self.threads)
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
    # onnxruntime backends: each pass's time in nodes no layer owns, the runtime, and an int8 model's agreement
    unattributed_ns: tuple[int, ...] | None = None
    runtime: str | None = None
    output_cosine: float | None = None
    output_top1_agreement: float | None = None

    @property
    def method(self) -> str:
        if self.settings.backend in ONNX_LAYER_BACKENDS:
            return (
                f"{self.runtime}'s profiler, each node's kernel time attributed to its layer by the module scope in "
                "its name (mnprof.timing.layer_onnx)"
            )
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
        """The median in milliseconds; NaN for a layer that is no module (MobileNetV2's residual add)."""
        return SampleStats.of(samples).median / 1e6 if samples else math.nan

    def op_ms(self, layer: str) -> float:
        return self._ms(self.op_ns[layer])

    def unit_ms(self, layer: str) -> float:
        return self._ms(self.unit_ns[layer])

    def op_iqr_ms(self, layer: str) -> float:
        samples = self.op_ns[layer]
        return SampleStats.of(samples).iqr / 1e6 if samples else math.nan

    @property
    def forward_ms(self) -> float:
        return self._ms(self.forward_ns)

    @property
    def unattributed_ms(self) -> float | None:
        return self._ms(self.unattributed_ns) if self.unattributed_ns else None


def _minor_faults() -> int | None:
    if resource is None:
        return None
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)


def _prepare(config: ModelConfig, settings: LayerTimingSettings) -> tuple[Any, Any]:
    """The seeded calibrated model (activations at unit scale, not denormals) + fixed input, backend's memory format."""
    model = calibrated_model(config, settings.seed)
    inputs = fixed_input(config, batch_size=1, seed=settings.seed)
    if backend_info(settings.backend).channels_last:
        model = model.to(memory_format=torch.channels_last)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    return model, inputs


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


def _timed_passes(settings: LayerTimingSettings, on_pass: Callable[[int, int], None] | None) -> Passes:
    """Run ``one_pass`` ``settings.repeats`` times at most, stopping after ``settings.budget_s`` seconds once
    ``MIN_REPEATS`` passes are done; returns the number of passes run."""

    def passes(one_pass: Callable[[], object]) -> int:
        deadline = time.perf_counter() + settings.budget_s
        done = 0
        for done in range(1, settings.repeats + 1):  # noqa: B007
            one_pass()
            if on_pass is not None:
                on_pass(done, settings.repeats)
            if done >= settings.MIN_REPEATS and time.perf_counter() > deadline:
                break
        return done

    return passes


def _hooked_passes(
    model: Any, inputs: Any, plan: tuple[LayerSpec, ...], passes: Passes
) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Per-layer wall times from forward pre- and post-hooks reading ``time.perf_counter_ns``.

    A module that runs several times in a pass (a user's model may share one) has one layer per call, in call
    order: its k-th call in a pass is timed into its k-th layer."""
    modules = dict(model.named_modules())
    op_ns: dict[str, list[int]] = {spec.name: [] for spec in plan}
    unit_ns: dict[str, list[int]] = {spec.name: [] for spec in plan}
    started: dict[str, int] = {}
    calls: dict[str, int] = {}

    def hooks_for(key: str, sinks: list[list[int]]) -> tuple[Callable[..., None], Callable[..., None]]:
        calls[key] = 0

        def before(_module: Any, _inputs: Any) -> None:
            started[key] = time.perf_counter_ns()

        def after(_module: Any, _inputs: Any, _output: Any) -> None:
            sinks[calls[key] % len(sinks)].append(time.perf_counter_ns() - started[key])
            calls[key] += 1

        return before, after

    ops: dict[str, list[list[int]]] = {}  # module path -> the sinks of its layers, in call order
    units: dict[str, list[list[int]]] = {}
    for spec in plan:
        op_path, unit_path = module_paths(spec)
        if op_path not in modules:  # no module to hook (MobileNetV2's residual add runs in its block's forward)
            continue
        ops.setdefault(op_path, []).append(op_ns[spec.name])
        if unit_path != op_path:
            units.setdefault(unit_path, []).append(unit_ns[spec.name])
    hook_table = [(modules[path], *hooks_for(f"op:{path}", sinks)) for path, sinks in ops.items()]
    hook_table += [(modules[path], *hooks_for(f"unit:{path}", sinks)) for path, sinks in units.items()]
    passes(lambda: _hooked_pass(model, inputs, hook_table))
    for spec in plan:
        if module_paths(spec)[0] == module_paths(spec)[1]:
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
    plan = tuple(layer.spec for layer in plan_count(config).layers)
    if settings.method is Method.PROFILER and (not config.builtin or any(spec.kind is LayerKind.ADD for spec in plan)):
        raise MnprofError(
            f"--method profiler matches aten operators to MobileNetV1's layers, not {config.family.value}'s; "
            f"accepted with {config.family.value}: --method hooks"
        )
    if settings.backend in ONNX_LAYER_BACKENDS:
        if not config.builtin:
            raise MnprofError(
                f"--backend {settings.backend.value} attributes onnxruntime's nodes to mnprof's layer plan, which "
                f"{config.family} does not have (the exporter names fused nodes after modules no traced layer "
                f"owns); accepted with --model {config.family}: --backend eager or channels_last"
            )
        check_available(settings.backend, Device.CPU)
    with redirect_stdout(sys.stderr):
        if settings.backend in ONNX_LAYER_BACKENDS:
            return _time_onnx_layers(config, settings, plan, on_pass)
        return _time_layers(config, settings, plan, on_pass)


def _fence(config: ModelConfig) -> Any:
    """A user's model is user code while timed (no time limit: timing runs as long as its budget)."""
    if config.builtin:
        return nullcontext()
    who = f"model {config.family} at {config.id}"
    return user_code(f"model {config.id}: failed while timed:", limited=False, who=who)


def _time_onnx_layers(
    config: ModelConfig,
    settings: LayerTimingSettings,
    plan: tuple[LayerSpec, ...],
    on_pass: Callable[[int, int], None] | None,
) -> LayerTimes:
    model, inputs = _prepare(config, settings)
    fence = _fence(config)
    with fence, torch_threads(settings.threads), gc_paused():
        timed = onnx_layer_passes(
            settings.backend,
            model,
            inputs,
            plan,
            _timed_passes(settings, on_pass),
            warmup=settings.warmup,
            threads=settings.threads,
        )
    agreed = timed.agreement
    return LayerTimes(
        settings=settings,
        op_ns={name: tuple(samples) if any(samples) else () for name, samples in timed.op_ns.items()},
        unit_ns={name: tuple(samples) if any(samples) else () for name, samples in timed.unit_ns.items()},
        forward_ns=tuple(timed.forward_ns),
        torch_version=torch.__version__,
        page_faults_per_pass=None,  # onnxruntime's arena, not glibc's; not shown for these backends
        allocator_steady=False,
        unattributed_ns=tuple(timed.unattributed_ns),
        runtime=timed.runtime,
        output_cosine=agreed.cosine if agreed is not None else None,
        output_top1_agreement=agreed.top1 if agreed is not None else None,
    )


def _time_layers(
    config: ModelConfig,
    settings: LayerTimingSettings,
    plan: tuple[LayerSpec, ...],
    on_pass: Callable[[int, int], None] | None,
) -> LayerTimes:
    model, inputs = _prepare(config, settings)
    steady = settings.allocator is Allocator.STEADY
    fence = _fence(config)
    with (
        torch_threads(settings.threads),
        fence,  # inside the thread count: a forward that changes it is seen (and set back, with a warning)
        steady_allocator(steady) as allocator_steady,
        torch.inference_mode(),
        gc_paused(),
    ):
        for _ in range(settings.warmup):
            model(inputs)
        per_layer = profiled_passes if settings.method is Method.PROFILER else _hooked_passes
        faults_before = _minor_faults()
        op_ns, unit_ns = per_layer(model, inputs, plan, _timed_passes(settings, on_pass))
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
