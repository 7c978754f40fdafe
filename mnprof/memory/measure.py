"""Peak memory of one forward pass, measured from PyTorch's allocator and explained tensor by tensor.

What is measured (CPU): every allocation PyTorch's CPU allocator makes during one forward pass, as
``torch.profiler`` reports it (``profile_memory=True``: the requested size of each allocation and of
each free, in order). The forward pass's peak is the largest sum of its allocations alive at once.
The input batch and the weights were allocated before the call; their bytes are exact (the input's
size, the model's parameters and buffers as the runtime holds them) and are added, so that

    measured total = weights + input batch + the forward pass's own allocations at their peak.

It is deterministic: the same configuration, runtime and batch give the same bytes on every run
(unlike the process's resident size, which glibc's caching and page granularity blur). It does not
see memory that does not pass through PyTorch's allocator (oneDNN's primitive cache, glibc's own
bookkeeping), nor the 64-byte alignment the allocator rounds each block up to.

Explained: at the moment of the peak, each live tensor is named by who allocated it and why it is
still alive (:class:`Cause`), by recording every module call (its input and output tensors) during
the profiled pass. For a built-in family, the tensors the analytic model of execution
(:meth:`mnprof.counting.analytic.AnalyticCount.working_sets`) counts at that layer are the layer's
input, its output and a residual block's kept input; everything else eager PyTorch holds is a named
cause: a convolution's output kept while its BatchNorm writes a new tensor (BatchNorm not folded),
a tensor an enclosing module call still holds as its argument (``nn.Module.__call__`` keeps its
input until it returns), the input batch held by the caller, and workspace an operator allocates
and frees before it returns.

CUDA: ``torch.cuda.max_memory_allocated`` around the pass (the caching allocator's peak of bytes
in tensors); not broken down by tensor. onnxruntime allocates in its own arena, which the profiler
does not see, and compile and torch_int8 run graphs mnprof cannot follow module by module: refused.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext, redirect_stdout
from dataclasses import dataclass
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from mnprof.counting.traced import plan_count
from mnprof.errors import MnprofError
from mnprof.memory.records import Cause, LiveTensor, MemoryMeasurement
from mnprof.model.arch import layer_of
from mnprof.model.config import ModelConfig
from mnprof.model.networks import build_model
from mnprof.model.seeded import fixed_input
from mnprof.runtimes.backends import (
    REDUCED_PRECISION,
    check_available,
    check_device,
    parse_backends,
    prepare,
    torch_threads,
)
from mnprof.runtimes.registry import MEMORY_BACKENDS, ONNXRUNTIME_POOL, Backend, Device, backend_info, listing
from mnprof.runtimes.runners import Runner, tensor_bytes
from mnprof.timing.layer_profiler import profiled, without_kineto_chatter
from mnprof.timing.records import TimingKey
from mnprof.timing.sweep import check_memory
from mnprof.user_code import user_code

__all__ = [
    "EAGER_ACTIVATION_COPIES",
    "MODULE_MARK",
    "measure_memory",
    "measure_runner",
    "parse_memory_backends",
    "peak_of_pass",
    "still_allocated_after",
]

MODULE_MARK = "mnprof.module:"
# Eager PyTorch holds about twice the analytic working set at its peak (an unfolded BatchNorm's two tensors, the
# inputs its module calls hold), so the check before a memory measurement counts the largest pair three times.
EAGER_ACTIVATION_COPIES = 3


@dataclass
class _Call:
    """One module call during the profiled pass: its path, its module's class name, its input and output
    storage, and when it started and returned (a counter over every call's start and return)."""

    path: str
    kind: str
    input_ptr: int | None
    start: int
    end: int | None = None
    output_ptr: int | None = None

    def encloses(self, other: _Call) -> bool:
        return self.start <= other.start and (self.end is None or other.end is None or self.end >= other.end)


@dataclass(frozen=True)
class _Event:
    """One allocation (``nbytes`` > 0) or free (< 0), with the innermost module call and operator around it."""

    time_ns: int
    order: int
    ptr: int
    nbytes: int
    call: int | None  # index into the calls, None outside every module
    op: str


def _storage_ptr(value: Any) -> int | None:
    if isinstance(value, (tuple, list)) and value:
        value = value[0]
    if isinstance(value, torch.Tensor):
        return value.untyped_storage().data_ptr()
    return None


@contextmanager
def _marked_calls(model: Any) -> Iterator[list[_Call]]:
    """Record every module call of ``model`` (input and output storage) and mark it in the profiler."""
    calls: list[_Call] = []
    open_marks: list[tuple[Any, int]] = []
    paths = {module: path for path, module in model.named_modules()}
    clock = iter(range(1 << 62))

    def before(module: Any, args: tuple[Any, ...]) -> None:
        calls.append(_Call(paths[module], type(module).__name__, _storage_ptr(args), next(clock)))
        mark = record_function(f"{MODULE_MARK}{len(calls) - 1}")
        mark.__enter__()
        open_marks.append((mark, len(calls) - 1))

    def after(module: Any, args: tuple[Any, ...], output: Any) -> None:
        mark, index = open_marks.pop()
        mark.__exit__(None, None, None)
        calls[index].end = next(clock)
        calls[index].output_ptr = _storage_ptr(output)

    handles = [m.register_forward_pre_hook(before) for m in paths] + [m.register_forward_hook(after) for m in paths]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()
        while open_marks:  # a pass that raised leaves its marks open
            open_marks.pop()[0].__exit__(None, None, None)


def _events(prof: Any) -> list[_Event]:
    """Every allocation and free the profiler saw, in time order, each with its innermost call and operator."""
    found: list[_Event] = []

    def walk(node: Any, call: int | None, op: str) -> None:
        name = node.name
        if name.startswith(MODULE_MARK):
            call = int(name[len(MODULE_MARK) :])
        elif name.startswith("aten::") and op == "":
            op = name  # the outermost aten operator: what the module called
        fields = node.extra_fields
        if type(fields).__name__ == "_ExtraFields_Allocation" and fields.device.type == "cpu":
            found.append(_Event(node.start_time_ns, len(found), fields.ptr, fields.alloc_size, call, op))
        for child in node.children:
            walk(child, call, op)

    for root in prof.profiler.kineto_results.experimental_event_tree():
        walk(root, None, "")
    return sorted(found, key=lambda event: (event.time_ns, event.order))


def peak_of_pass(events: Sequence[_Event]) -> tuple[int, dict[int, _Event], _Event | None]:
    """The largest sum of allocations alive at once, the allocations alive then (by address), and the one that
    reached it. Frees of blocks allocated before the pass are ignored (they were never counted)."""
    alive: dict[int, _Event] = {}
    total = peak = 0
    at: dict[int, _Event] = {}
    reached: _Event | None = None
    for event in events:
        if event.nbytes > 0:
            alive[event.ptr] = event
            total += event.nbytes
            if total > peak:
                peak, at, reached = total, dict(alive), event
        elif (block := alive.pop(event.ptr, None)) is not None:
            total -= block.nbytes
    return peak, at, reached


def still_allocated_after(call: Callable[[], Any]) -> tuple[int, Any]:
    """Bytes PyTorch's CPU allocator allocated during ``call()`` and still holds when it returns (from the same
    profiler events as a pass's peak), and what ``call`` returned. For a forward pass with autograd on, that is
    its output and every tensor autograd keeps for the backward that the pass allocated (not the input batch,
    allocated before it)."""
    prof, returned = profiled(call, profile_memory=True)
    alive: dict[int, int] = {}
    for event in _events(prof):
        if event.nbytes > 0:
            alive[event.ptr] = event.nbytes
        else:
            alive.pop(event.ptr, None)  # a block allocated before the call, or freed in it
    return sum(alive.values()), returned


def _output_allocations(events: Sequence[_Event], calls: list[_Call]) -> dict[int, _Event]:
    """Each call's output, as an allocation: the last one at its output's address made inside the call (or a
    call it made). An address alone does not say it: a buffer freed inside the call can leave its address to
    the output allocated after it."""
    parents: list[int | None] = []
    for index, call in enumerate(calls):  # calls are numbered in start order: a parent starts first
        parents.append(next((j for j in range(index - 1, -1, -1) if calls[j].encloses(call)), None))
    outputs: dict[int, _Event] = {}
    for event in events:  # time order: a later allocation at the address replaces an earlier one
        owner = event.call
        while event.nbytes > 0 and owner is not None:
            if calls[owner].output_ptr == event.ptr:
                outputs[owner] = event
            owner = parents[owner]
    return outputs


def _explain(
    alive: dict[int, _Event],
    reached: _Event | None,
    calls: list[_Call],
    batch: tuple[int, int],
    layer_names: set[str],
    outputs: dict[int, _Event],
) -> tuple[str | None, tuple[LiveTensor, ...]]:
    """Name each tensor alive at the peak (see :class:`Cause`); also the layer running then.

    ``batch``: the input batch's storage address and bytes (allocated before the pass, so not in ``alive``);
    ``outputs``: each call's output allocation (:func:`_output_allocations`).
    """
    running = calls[reached.call] if reached is not None and reached.call is not None else None
    chain = [call for call in calls if running is not None and call.encloses(running)]  # outermost first
    if running is None:
        layer = None
    elif layer_names:
        layer = layer_of(running.path, layer_names)
    else:
        layer = running.path
    in_layer = [call for call in chain if (layer_of(call.path, layer_names) if layer_names else call.path) == layer]
    layer_input = in_layer[0].input_ptr if in_layer else None
    block = layer.rsplit(".", 1)[0] if layer is not None and "." in layer else None
    block_call = next((call for call in chain if block is not None and call.path == block), None)
    block_input = block_call.input_ptr if block_call is not None and f"{block}.add" in layer_names else None
    held = {call.input_ptr for call in chain}

    def cause(ptr: int, event: _Event | None) -> Cause:
        if ptr == layer_input:
            return Cause.LAYER_INPUT
        if ptr == block_input:
            return Cause.RESIDUAL
        if event is None:
            return Cause.INPUT_BATCH
        if event.call is None:
            return Cause.OTHER
        producer, is_output = calls[event.call], outputs.get(event.call) is event
        if producer in chain:  # allocated by a call still running: its output being written, or workspace
            return Cause.LAYER_OUTPUT if is_output else Cause.WORKSPACE
        if not is_output:
            return Cause.OTHER
        if layer is not None and layer.endswith(".add") and producer.path.startswith(f"{block}."):
            return Cause.LAYER_INPUT  # the add's other operand: the block's last unit's output
        conv_before_batchnorm = running is not None and running.kind.startswith("BatchNorm")
        if conv_before_batchnorm and producer.kind.startswith("Conv") and layer_of(producer.path, layer_names) == layer:
            return Cause.UNFOLDED_BATCHNORM
        if ptr in held:
            return Cause.HELD_BY_CALLER
        return Cause.OTHER

    live = [LiveTensor(e.nbytes, _path(calls, e), e.op, cause(ptr, e)) for ptr, e in alive.items()]
    live.append(LiveTensor(batch[1], "(caller)", "", cause(batch[0], None)))
    order = list(Cause)
    return layer, tuple(sorted(live, key=lambda t: (order.index(t.cause), -t.nbytes, t.module)))


def _path(calls: list[_Call], event: _Event) -> str:
    return calls[event.call].path if event.call is not None else ""


def _analytic(config: ModelConfig, batch_size: int, element_bytes: int) -> tuple[dict[str, int], int]:
    """The analytic working set at each layer (bytes) and the float32 parameters at ``element_bytes``."""
    count = plan_count(config)
    from_params = element_bytes * count.params()
    if not count.planned:
        return {}, from_params
    return {name: element_bytes * n for name, n in count.working_sets(batch_size).items()}, from_params


def parse_memory_backends(text: str) -> tuple[Backend, ...]:
    """``--backend`` for memory: the runtimes whose modules mnprof can follow call by call; others are a one-line
    error that says why."""
    backends = parse_backends(text)
    accepted = listing(MEMORY_BACKENDS)
    for backend in backends:
        if backend not in MEMORY_BACKENDS:
            why = (
                "allocates in onnxruntime's own arena, which PyTorch's profiler does not see"
                if backend in ONNXRUNTIME_POOL
                else "runs code mnprof cannot follow module by module (a compiled or quantised graph)"
            )
            raise MnprofError(f"--backend {backend.value} {why}, so its memory is not measured; accepted: {accepted}")
    return backends


def measure_memory(
    config: ModelConfig,
    batch_size: int,
    backend: Backend = Backend.EAGER,
    device: Device = Device.CPU,
    threads: int = 1,
) -> MemoryMeasurement:
    """Measure the peak of one forward pass (after one warm-up pass) and explain it; see the module's notes."""
    parse_memory_backends(backend.value)
    check_device(device)
    check_available(backend, device)
    key = TimingKey(config, backend, batch_size, threads, device)
    check_memory([key], activation_copies=EAGER_ACTIVATION_COPIES)
    who = f"model {config.family} at {config.id}"
    fence = nullcontext() if config.builtin else user_code(f"model {config.id}: forward failed:", who=who)
    try:
        with torch_threads(threads), redirect_stdout(sys.stderr), fence:
            model = build_model(config).to(device.value)
            inputs = fixed_input(config, batch_size).to(device.value)
            runner = prepare(backend, model, inputs, threads=threads)
            del model, inputs
            return measure_runner(config, batch_size, runner, device)
    except (RuntimeError, MemoryError) as error:  # the estimate is a floor: a pass can still run out
        if isinstance(error, MemoryError) or "alloc" in str(error) or "out of memory" in str(error):
            raise MnprofError(
                f"{key.label} ran out of memory while measured ({type(error).__name__} from the allocator); "
                "accepted: a smaller batch size or resolution"
            ) from None
        raise


def measure_runner(
    config: ModelConfig, batch_size: int, runner: Runner, device: Device = Device.CPU
) -> MemoryMeasurement:
    """Measure ``runner``'s PyTorch module on a fresh input batch as the runtime takes it (its dtype and
    memory format): one warm-up pass, then one profiled pass."""
    module = runner.module
    batch = _runner_input(config, batch_size, device, runner.backend)
    element_bytes = batch.element_size()
    working_sets, analytic_weights = _analytic(config, batch_size, element_bytes)
    peak_layer = max(working_sets, key=working_sets.__getitem__) if working_sets else None

    def forward() -> None:
        with torch.inference_mode():
            module(batch)

    forward()  # warm-up: first-call allocations (oneDNN primitives, lazy buffers) are not the model's
    gc.collect()
    if device is Device.CUDA:
        peak, layer, live = _cuda_peak(forward), None, ()
    else:
        peak, layer, live = _cpu_peak(forward, module, batch, set(working_sets))
    return MemoryMeasurement(
        config=config,
        backend=runner.backend,
        device=device,
        batch_size=batch_size,
        weights_held_bytes=tensor_bytes(module),
        input_bytes=batch.numel() * element_bytes,
        forward_peak_bytes=peak,
        layer=layer,
        live=live,
        analytic_at_layer_bytes=working_sets.get(layer) if layer is not None else None,
        analytic_peak_bytes=working_sets[peak_layer] if peak_layer is not None else None,
        analytic_peak_layer=peak_layer,
        analytic_weights_bytes=analytic_weights,
        activation_bytes=element_bytes,
    )


def _runner_input(config: ModelConfig, batch_size: int, device: Device, backend: Backend) -> Any:
    """The input batch as the runtime takes it (its dtype and memory format), made here so its storage is known."""
    batch = fixed_input(config, batch_size).to(device.value)
    info = backend_info(backend)
    if info.dtype is not None:
        return batch.to(REDUCED_PRECISION[info.backend])
    if info.channels_last:
        return batch.contiguous(memory_format=torch.channels_last)
    return batch


def _cpu_peak(
    forward: Callable[[], None], module: Any, batch: Any, layer_names: set[str]
) -> tuple[int, str | None, tuple[LiveTensor, ...]]:
    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _marked_calls(module) as calls:
        with without_kineto_chatter():
            prof.start()
        try:
            forward()
        finally:
            with without_kineto_chatter():
                prof.stop()
    events = _events(prof)
    if not any(event.nbytes > 0 for event in events):  # a forward pass always allocates: the profiler's API moved
        raise MnprofError(
            f"torch {torch.__version__}'s profiler reported no allocations, so memory cannot be measured with it; "
            "accepted: a torch version mnprof supports (>= 2.2, < 2.14)"
        )
    peak, alive, reached = peak_of_pass(events)
    batch_storage = (batch.untyped_storage().data_ptr(), batch.numel() * batch.element_size())
    layer, live = _explain(alive, reached, calls, batch_storage, layer_names, _output_allocations(events, calls))
    return peak, layer, live


def _cuda_peak(forward: Callable[[], None]) -> int:  # pragma: no cover - needs a GPU
    """The caching allocator's peak of bytes in tensors during ``forward``, above what was allocated before."""
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    forward()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before
