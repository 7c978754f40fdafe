"""How each runtime is built: (model, fixed input) becomes a :class:`Runner`.

``call()`` runs one batch (what is timed) and ``output()`` returns the result as a CPU tensor (what is checked
against eager PyTorch). Each ``prepare_*`` function here is named by the :data:`~mnprof.runtimes.registry.REGISTRY`
entries it builds, takes ``(info, model, inputs, threads)`` and is reached through
:func:`mnprof.runtimes.backends.prepare`, which checks the backend first. Nothing here changes a global torch setting.
"""

from __future__ import annotations

import copy
import inspect
import io
import time
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from mnprof.runtimes.quantized import quantize_onnx, quantize_torch, quantized_engine, torch_int8_engine, torch_settings
from mnprof.runtimes.registry import Backend, BackendInfo, Device

__all__ = [
    "Runner",
    "fold_batchnorm",
    "onnx_export",
    "onnxruntime_session",
    "prepare_compiled",
    "prepare_fused",
    "prepare_module",
    "prepare_onnxruntime",
    "prepare_reduced_precision",
    "prepare_torch_int8",
    "sampler",
    "tensor_bytes",
]


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


def prepare_module(info: BackendInfo, model: Any, inputs: Any, threads: int) -> Runner:
    """Eager PyTorch: the model as built, or a copy of it and the input in channels_last where ``info`` says so."""
    if not info.channels_last:
        return _torch_runner(info.backend, model, inputs)
    converted = copy.deepcopy(model).to(memory_format=torch.channels_last)
    return _torch_runner(info.backend, converted, inputs.contiguous(memory_format=torch.channels_last))


def prepare_fused(info: BackendInfo, model: Any, inputs: Any, threads: int) -> Runner:
    """Eager PyTorch with every BatchNorm folded into its convolution (:func:`fold_batchnorm`), channels_last."""
    folded = fold_batchnorm(model).to(memory_format=torch.channels_last)
    return _torch_runner(info.backend, folded, inputs.contiguous(memory_format=torch.channels_last))


def prepare_reduced_precision(info: BackendInfo, model: Any, inputs: Any, threads: int) -> Runner:
    """Eager PyTorch in ``info``'s dtype (bfloat16, float16): a copy of the weights and the input converted (lossy:
    checked by agreement)."""
    dtype = getattr(torch, info.dtype or "")
    converted = copy.deepcopy(model).to(dtype)
    batch = inputs.to(dtype)

    def call() -> object:
        with torch.inference_mode():
            return converted(batch)

    def infer(other: Any) -> Any:
        with torch.inference_mode():
            return converted(other.to(inputs.device, dtype)).float().cpu()

    return Runner(
        info.backend,
        call,
        lambda: call().float().cpu(),
        infer=infer,
        model_bytes=tensor_bytes(converted),
        module=converted,
    )


def prepare_torch_int8(info: BackendInfo, model: Any, inputs: Any, threads: int) -> Runner:
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
        info.backend,
        call,
        lambda: call().float(),
        infer=infer,
        quantization=settings.as_dict(),
        model_bytes=len(state.getvalue()),
    )


def prepare_compiled(info: BackendInfo, model: Any, inputs: Any, threads: int) -> Runner:
    """torch.compile (inductor, frozen weights, static shapes), compiled here: tens of seconds per model on a CPU."""
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
    return Runner(info.backend, call, lambda: call().float().cpu())


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


def prepare_onnxruntime(info: BackendInfo, model: Any, inputs: Any, threads: int) -> Runner:
    """Exported here (:func:`onnx_export`) and run by onnxruntime's CPU provider; an int8 runtime's model is
    statically quantised first (lossy: checked by agreement)."""
    exported = onnx_export(model, inputs)
    settings = None
    if info.int8:
        exported, settings = quantize_onnx(exported, inputs.shape[-1], inputs.shape[0])
    session = onnxruntime_session(exported, threads)
    feed = {"x": inputs.numpy()}

    def call() -> object:
        return session.run(None, feed)

    def infer(batch: Any) -> Any:
        return torch.from_numpy(session.run(None, {"x": batch.numpy()})[0])

    return Runner(
        info.backend,
        call,
        lambda: torch.from_numpy(call()[0]),  # type: ignore[index]
        infer=infer if info.int8 else None,
        quantization=settings.as_dict() if settings is not None else None,
        model_bytes=len(exported),
    )


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
