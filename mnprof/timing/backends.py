"""Runtimes that run a built model: eager PyTorch, channels_last, BN-folded, torch.compile, onnxruntime, int8,
bfloat16 and float16.

Each backend turns (model, fixed input) into a :class:`Runner`: ``call()`` runs one batch (what is
timed) and ``output()`` returns the result as a CPU tensor (what is checked against eager PyTorch).
Availability is checked up front by :func:`check_available`, so a missing runtime is a one-line error
before anything is measured. Nothing here changes global torch settings except inside
:func:`torch_threads`, which restores them.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import io
import math
import shutil
import time
import types
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from mnprof.errors import MnprofError
from mnprof.model.config import parse_choice, parse_list
from mnprof.provenance import package_version
from mnprof.timing.quantized import quantize_onnx, quantize_torch, quantized_engine, torch_int8_engine, torch_settings
from mnprof.timing.records import ONNXRUNTIME_POOL, Backend, Device

__all__ = [
    "REDUCED_PRECISION",
    "Backend",
    "Device",
    "Runner",
    "check_available",
    "check_device",
    "fold_batchnorm",
    "gemm_sampler",
    "kernel_available",
    "native_bfloat16",
    "native_float16",
    "onnx_export",
    "onnxruntime_session",
    "output_error",
    "parse_backends",
    "prepare",
    "runtime_version",
    "sampler",
    "tolerance",
    "torch_threads",
]


# The extra that brings each optional runtime (pip install 'mnprof[onnx]').
EXTRAS = {
    Backend.ONNXRUNTIME: ("onnx", ("onnxruntime", "onnx")),
    Backend.ONNXRUNTIME_INT8: ("onnx", ("onnxruntime", "onnx")),
}


def parse_backends(text: str) -> tuple[Backend, ...]:
    """Parse ``"eager,onnxruntime"`` into backends (duplicates dropped, order kept)."""
    items = parse_list(text, "backend", ", ".join(b.value for b in Backend))
    return tuple(dict.fromkeys(parse_choice(item, Backend, "backend") for item in items))  # type: ignore[misc]


def check_device(device: Device) -> None:
    """Fail with one line when ``device`` is not usable here."""
    if device is Device.CUDA and not torch.cuda.is_available():
        raise MnprofError(
            "--device cuda: no CUDA GPU is available here (torch.cuda.is_available() is False); accepted: cpu"
        )


def check_available(backend: Backend, device: Device) -> None:
    """Fail with one line (naming the extra to install) when ``backend`` cannot run on ``device`` here."""
    if backend in EXTRAS:
        extra, modules = EXTRAS[backend]
        missing = [module for module in modules if importlib.util.find_spec(module) is None]
        if missing:
            raise MnprofError(
                f"backend {backend.value} needs {', '.join(missing)}, which is not installed; "
                f"install it with: pip install 'mnprof[{extra}]'"
            )
    if backend in ONNXRUNTIME_POOL and device is not Device.CPU:
        raise MnprofError(f"backend {backend.value} runs on the CPU provider only; accepted with it: --device cpu")
    engines = torch.backends.quantized.supported_engines
    if backend is Backend.TORCH_INT8 and (device is not Device.CPU or not {"x86", "onednn"} & set(engines)):
        raise MnprofError(
            f"backend torch_int8 runs PyTorch's x86 or oneDNN int8 kernels on the CPU; here the device is "
            f"{device.value} and the quantized engines {', '.join(engines)}; accepted: --device cpu on an x86 "
            "build of torch"
        )
    if backend in REDUCED_PRECISION and not native_precision(backend, device):
        raise MnprofError(
            f"backend {backend.value}: this {device.value.upper()} has no native {backend.value} arithmetic "
            f"({NATIVE_NEEDS[backend]}), and an emulated time is not a result; accepted: another backend or device"
        )
    if (
        backend is Backend.COMPILE
        and device is Device.CPU
        and not any(shutil.which(compiler) for compiler in ("g++", "c++", "clang++"))
    ):
        raise MnprofError("backend compile needs a C++ compiler (g++, c++ or clang++) on PATH; none was found")


# The reduced-precision runtimes: eager PyTorch on a copy of the weights and the input in this dtype.
REDUCED_PRECISION = {Backend.BFLOAT16: torch.bfloat16, Backend.FLOAT16: torch.float16}
NATIVE_NEEDS = {
    Backend.BFLOAT16: "CPUs need AVX-512 BF16 or AMX; GPUs compute capability 8.0 or later",
    Backend.FLOAT16: "CPUs need AVX-512 FP16 or AMX-FP16; GPUs compute capability 5.3 or later",
}


def native_precision(backend: Backend, device: Device) -> bool:
    """Whether ``device`` computes in ``backend``'s reduced precision natively (not by converting to float32)."""
    check = {Backend.BFLOAT16: native_bfloat16, Backend.FLOAT16: native_float16}[backend]
    return check(device)


def native_float16(device: Device) -> bool:
    """Whether ``device`` computes in float16 natively: a GPU of compute capability 5.3 or later (half arithmetic;
    tensor cores from 7.0), or a CPU where oneDNN reports float16 support (AVX-512 FP16 or AMX-FP16)."""
    if device is Device.CUDA:
        return bool(torch.cuda.is_available() and torch.cuda.get_device_capability() >= (5, 3))
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())
    except (AttributeError, RuntimeError):  # a torch built without oneDNN: no way to tell, so no
        return False


def native_bfloat16(device: Device) -> bool:
    """Whether ``device`` computes in bfloat16 natively (oneDNN's check on a CPU: AVX-512 BF16 or AMX)."""
    if device is Device.CUDA:
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False))
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch built without oneDNN: no way to tell, so no
        return False


def runtime_version(backend: Backend) -> str | None:
    """The version of the library that runs ``backend`` (onnxruntime's for it, torch's otherwise)."""
    return package_version("onnxruntime" if backend in ONNXRUNTIME_POOL else "torch")


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run with torch's intra-op thread count set to ``threads``; the previous count is restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class Runner:
    """A prepared backend: ``call()`` runs one batch (timed), ``output()`` returns it as a CPU tensor (checked)."""

    backend: Backend
    call: Callable[[], object]
    output: Callable[[], Any]
    infer: Callable[[Any], Any] | None = None  # runs another input batch of the same shape (lossy runtimes)
    quantization: dict[str, Any] | None = None  # how an int8 runtime was quantised
    # What the runtime holds as its model: the bytes of every parameter and buffer of a PyTorch model as it runs
    # (bfloat16, float16: halved; fused: BatchNorm folded away), or the serialized ONNX model (int8: quantised weights,
    # scales and zero points). None where it is not known (compile: its frozen constants are inductor's).
    model_bytes: int | None = None
    # The PyTorch module ``call()`` runs (as converted: channels_last, BatchNorm folded, bfloat16, float16); None for a
    # runtime that is not a PyTorch module (onnxruntime, compile).
    module: Any = None


def tensor_bytes(model: Any) -> int:
    """Bytes of every parameter and buffer of ``model``, as stored."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


def fold_batchnorm(model: Any) -> Any:
    """A copy of ``model`` with each eval-mode BatchNorm folded into the convolution before it.

    Applies to every module with ``conv`` and ``bn`` children (mnprof's ``ConvBNReLU``): the conv gets
    weight ``w * gamma / sqrt(var + eps)`` and bias ``(b - mean) * gamma / sqrt(var + eps) + beta``,
    and the BatchNorm becomes an identity.
    """
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        conv, bn = getattr(module, "conv", None), getattr(module, "bn", None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            module.conv = fuse_conv_bn_eval(conv, bn)
            module.bn = nn.Identity()
    return folded


def _torch_runner(backend: Backend, model: Any, inputs: Any) -> Runner:
    def call() -> object:
        with torch.inference_mode():
            return model(inputs)

    return Runner(backend, call, lambda: call().float().cpu(), model_bytes=tensor_bytes(model), module=model)


def _reduced_precision(backend: Backend, model: Any, inputs: Any) -> Runner:
    """Eager PyTorch in bfloat16 or float16: a copy of the weights and the input converted (lossy: checked by
    agreement)."""
    dtype = REDUCED_PRECISION[backend]
    converted = copy.deepcopy(model).to(dtype)
    batch = inputs.to(dtype)

    def call() -> object:
        with torch.inference_mode():
            return converted(batch)

    def infer(other: Any) -> Any:
        with torch.inference_mode():
            return converted(other.to(inputs.device, dtype)).float().cpu()

    return Runner(
        backend,
        call,
        lambda: call().float().cpu(),
        infer=infer,
        model_bytes=tensor_bytes(converted),
        module=converted,
    )


def _torch_int8(model: Any, inputs: Any) -> Runner:
    """PyTorch's own static int8 (lossy: checked by agreement); model bytes are its serialized state."""
    engine = torch_int8_engine()
    quantized = quantize_torch(model, inputs, engine)
    settings = torch_settings(engine)

    def call() -> object:
        with quantized_engine(engine), torch.inference_mode():
            return quantized(inputs)

    def infer(other: Any) -> Any:
        with quantized_engine(engine), torch.inference_mode():
            return quantized(other).float()

    state = io.BytesIO()
    torch.save(quantized.state_dict(), state)
    return Runner(
        Backend.TORCH_INT8,  # type: ignore[attr-defined]
        call,
        lambda: call().float(),
        infer=infer,
        quantization=settings.as_dict(),
        model_bytes=len(state.getvalue()),
    )


def _compiled(model: Any, inputs: Any) -> Runner:
    import torch._inductor.config as inductor_config  # lazily: inductor is heavy, and only this backend needs it

    def forward(x: Any) -> Any:
        return model(x)

    # Dynamo caches compiled code per code object: a fresh one per model keeps models apart.
    code = forward.__code__.replace(co_name=f"mnprof_forward_{id(model):x}")
    unique = types.FunctionType(code, forward.__globals__, code.co_name, None, forward.__closure__)
    # torch >= 2.13 also counts each compile call's recompilations on its own; older torch lacks the option.
    supported = inspect.signature(torch.compile).parameters
    isolate = {"isolate_recompiles": True} if "isolate_recompiles" in supported else {}
    compiled = torch.compile(unique, fullgraph=True, dynamic=False, **isolate)

    def call() -> object:
        with torch.inference_mode():
            return compiled(inputs)

    # Compile now, not while timing. Freezing (weights as constants, BatchNorm folded, convolution weights
    # pre-packed for oneDNN) is read when the graph is compiled; torch.compile(options=...) does not apply it.
    with inductor_config.patch(freezing=True):
        call()
    return Runner(Backend.COMPILE, call, lambda: call().float().cpu())  # type: ignore[attr-defined]


def onnxruntime_session(model: bytes, threads: int, profile_prefix: str | None = None) -> Any:
    """An onnxruntime CPU session with ``threads`` intra-op threads, sequential execution, all graph optimisations
    (``profile_prefix``: with onnxruntime's profiler on, writing its trace there)."""
    import onnxruntime  # optional (the [onnx] extra): imported only when its backend or GEMM is timed

    options = onnxruntime.SessionOptions()
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def onnx_export(model: Any, inputs: Any) -> bytes:
    """The model as ONNX (TorchScript exporter, opset 17), input ``x`` of ``inputs``' fixed shape."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model, (inputs,), buffer, dynamo=False, input_names=["x"], output_names=["logits"], opset_version=17
        )
    return buffer.getvalue()


def _onnxruntime_int8(model: Any, inputs: Any, threads: int) -> Runner:
    quantized, settings = quantize_onnx(onnx_export(model, inputs), inputs.shape[-1], inputs.shape[0])
    session = onnxruntime_session(quantized, threads)
    feed = {"x": inputs.numpy()}

    def call() -> object:
        return session.run(None, feed)

    def infer(batch: Any) -> Any:
        return torch.from_numpy(session.run(None, {"x": batch.numpy()})[0])

    return Runner(
        Backend.ONNXRUNTIME_INT8,
        call,
        lambda: torch.from_numpy(call()[0]),  # type: ignore[index]
        infer=infer,
        quantization=settings.as_dict(),
        model_bytes=len(quantized),
    )


def _onnxruntime(model: Any, inputs: Any, threads: int) -> Runner:
    exported = onnx_export(model, inputs)
    session = onnxruntime_session(exported, threads)
    feed = {"x": inputs.numpy()}

    def call() -> object:
        return session.run(None, feed)

    return Runner(
        Backend.ONNXRUNTIME,
        call,
        lambda: torch.from_numpy(call()[0]),  # type: ignore[index]
        model_bytes=len(exported),
    )


def prepare(backend: Backend, model: Any, inputs: Any, *, threads: int) -> Runner:
    """Make ``backend``'s runner for ``model`` (eval mode) on the fixed ``inputs`` (on the model's device).

    ``compile`` compiles here (tens of seconds per model on a CPU); ``onnxruntime`` exports here.
    """
    if backend is Backend.EAGER:
        return _torch_runner(backend, model, inputs)
    if backend is Backend.CHANNELS_LAST:
        converted = copy.deepcopy(model).to(memory_format=torch.channels_last)
        return _torch_runner(backend, converted, inputs.contiguous(memory_format=torch.channels_last))
    if backend is Backend.FUSED:
        folded = fold_batchnorm(model).to(memory_format=torch.channels_last)
        return _torch_runner(backend, folded, inputs.contiguous(memory_format=torch.channels_last))
    if backend is Backend.COMPILE:
        return _compiled(model, inputs)
    if backend is Backend.ONNXRUNTIME_INT8:
        return _onnxruntime_int8(model, inputs, threads)
    if backend in REDUCED_PRECISION:
        return _reduced_precision(backend, model, inputs)
    if backend is Backend.TORCH_INT8:
        return _torch_int8(model, inputs)
    return _onnxruntime(model, inputs, threads)


def tolerance(device: Device) -> tuple[float, float]:
    """``(rtol, atol)`` of the output check: ``max |out - eager| <= rtol * max |eager| + atol``.

    CPU: rtol 1e-3 (float32 reassociation, folded BatchNorm). CUDA: 1e-2, since cuDNN may use TF32.
    """
    return (1e-2 if device is Device.CUDA else 1e-3), 1e-6


def output_error(output: Any, reference: Any, device: Device) -> tuple[float, float, str | None]:
    """Compare a backend's output with eager PyTorch's: ``(max_abs_error, allowed, problem or None)``."""
    rtol, atol = tolerance(device)
    if tuple(output.shape) != tuple(reference.shape):
        return float("inf"), 0.0, f"output shape {tuple(output.shape)} != eager's {tuple(reference.shape)}"
    if not torch.isfinite(output).all():
        return float("inf"), 0.0, "output has NaN or infinite values"
    error = float((output.double() - reference.double()).abs().max())
    allowed = rtol * float(reference.abs().max()) + atol
    if error > allowed:
        return error, allowed, f"output differs from eager PyTorch: max |diff| {error:.3g} > tolerance {allowed:.3g}"
    return error, allowed, None


def sampler(runner: Runner, device: Device) -> Callable[[], float]:
    """One timed call of ``runner``, in seconds: ``perf_counter`` on the CPU, CUDA events on a GPU."""
    if device is Device.CPU:
        call, clock = runner.call, time.perf_counter

        def sample() -> float:
            start = clock()
            call()
            return clock() - start

        return sample
    start_event = torch.cuda.Event(enable_timing=True)
    end_event = torch.cuda.Event(enable_timing=True)

    def sample_cuda() -> float:
        torch.cuda.synchronize()  # nothing queued before the start event
        start_event.record()
        runner.call()
        end_event.record()
        end_event.synchronize()
        return start_event.elapsed_time(end_event) / 1000  # milliseconds -> seconds

    return sample_cuda


def kernel_available(kernel: str) -> bool:
    """Whether the integer GEMM ``kernel`` can run here: onnxruntime's needs the ``[onnx]`` extra, PyTorch's a
    torch whose ``torch._int_mm`` runs on the CPU."""
    if kernel == "onnxruntime_int8":
        return all(importlib.util.find_spec(module) is not None for module in ("onnxruntime", "onnx"))
    try:
        small = torch.ones(32, 32, dtype=torch.int8)
        return bool(torch._int_mm(small, small)[0, 0] == 32)
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


def gemm_sampler(kernel: str, size: int, device: Device, threads: int = 1) -> Callable[[], float]:
    """A sampler timing one float32 matrix product of ``2 size^3`` FLOPs through one GEMM library.

    ``kernel``: ``mm`` (``torch.mm``: MKL on CPUs, cuBLAS on GPUs), ``conv1x1`` (a 1x1 convolution on a
    channels_last ``size`` x ``sqrt(size)`` x ``sqrt(size)`` map: oneDNN on CPUs, which some CPUs run
    much faster than MKL's GEMM because MKL does not pick its widest kernels on every vendor's CPUs), or
    ``onnxruntime`` (a MatMul node in an onnxruntime CPU session with ``threads`` threads: MLAS); or an
    integer product of ``2 size^3`` integer operations: ``onnxruntime_int8`` (a MatMulInteger node, uint8 x
    int8 -> int32, what onnxruntime's quantised convolutions run on) or ``torch_int8`` (``torch._int_mm``,
    int8 x int8 -> int32, PyTorch's own).
    """
    generator = torch.Generator().manual_seed(0)
    if kernel == "mm":
        left = torch.randn(size, size, generator=generator).to(device.value)
        right = torch.randn(size, size, generator=generator).to(device.value)

        def call() -> object:
            return torch.mm(left, right)

    elif kernel == "conv1x1":
        side = math.isqrt(size)
        if side * side != size:
            raise ValueError(f"conv1x1 GEMM size {size} is not a square number")
        image = torch.randn(1, size, side, side, generator=generator).to(
            device.value, memory_format=torch.channels_last
        )
        weight = torch.randn(size, size, 1, 1, generator=generator).to(device.value, memory_format=torch.channels_last)

        def call() -> object:
            with torch.inference_mode():
                return torch.nn.functional.conv2d(image, weight)

    elif kernel == "onnxruntime" and device is Device.CPU:
        from onnx import TensorProto, helper  # optional (the [onnx] extra), as onnxruntime above

        matrix = [size, size]
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["a", "b"], ["c"])],
            "gemm",
            [helper.make_tensor_value_info(name, TensorProto.FLOAT, matrix) for name in ("a", "b")],
            [helper.make_tensor_value_info("c", TensorProto.FLOAT, matrix)],
        )
        session = onnxruntime_session(
            # IR version 8 goes with opset 17; onnx's newest default can be newer than onnxruntime reads.
            helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString(),
            threads,
        )
        feed = {name: torch.randn(size, size, generator=generator).numpy() for name in ("a", "b")}

        def call() -> object:
            return session.run(None, feed)

    elif kernel == "torch_int8" and device is Device.CPU:
        left = torch.randint(-128, 128, (size, size), generator=generator, dtype=torch.int8)
        right = torch.randint(-128, 128, (size, size), generator=generator, dtype=torch.int8)

        def call() -> object:
            with torch.inference_mode():
                return torch._int_mm(left, right)

    elif kernel == "onnxruntime_int8" and device is Device.CPU:
        from onnx import TensorProto, helper

        matrix = [size, size]
        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["a", "b"], ["c"])],
            "gemm_int8",
            [
                helper.make_tensor_value_info("a", TensorProto.UINT8, matrix),
                helper.make_tensor_value_info("b", TensorProto.INT8, matrix),
            ],
            [helper.make_tensor_value_info("c", TensorProto.INT32, matrix)],
        )
        session = onnxruntime_session(
            helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString(),
            threads,
        )
        feed = {
            "a": torch.randint(0, 256, matrix, generator=generator, dtype=torch.uint8).numpy(),
            "b": torch.randint(-128, 128, matrix, generator=generator, dtype=torch.int8).numpy(),
        }

        def call() -> object:
            return session.run(None, feed)

    else:
        raise ValueError(
            f"unknown GEMM kernel {kernel!r} on {device.value}; accepted: mm, conv1x1, onnxruntime, onnxruntime_int8 "
            "(the last two on the cpu)"
        )
    return sampler(Runner(Backend.EAGER, call, lambda: None), device)
