"""Runtimes that run a built model: eager PyTorch, channels_last, BN-folded, torch.compile, onnxruntime, int8,
bfloat16 and float16 (each one entry of :data:`mnprof.runtimes.registry.REGISTRY`).

Each backend turns (model, fixed input) into a :class:`Runner` (:func:`prepare`, through the builder its registry
entry names in :mod:`mnprof.runtimes.runners`): ``call()`` runs one batch (what is timed) and ``output()`` returns the
result as a CPU tensor (what is checked against eager PyTorch). Availability is checked up front by
:func:`check_available`, so a missing runtime is a one-line error before anything is measured. Nothing here changes
global torch settings except inside :func:`torch_threads`, which restores them.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from mnprof.errors import MnprofError
from mnprof.parsing import parse_list
from mnprof.provenance import package_version
from mnprof.runtimes import runners
from mnprof.runtimes.gemm import gemm_sampler, kernel_available
from mnprof.runtimes.registry import REGISTRY, Backend, Device, backend_info, listing, parse_backend
from mnprof.runtimes.runners import Runner, fold_batchnorm, onnx_export, onnxruntime_session, sampler, tensor_bytes

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
    "tensor_bytes",
    "tolerance",
    "torch_threads",
]


def parse_backends(text: str) -> tuple[Backend, ...]:
    """Parse ``"eager,onnxruntime"`` into backends (duplicates dropped, order kept)."""
    items = parse_list(text, "backend", listing())
    return tuple(dict.fromkeys(parse_backend(item) for item in items))


def check_device(device: Device) -> None:
    """Fail with one line when ``device`` is not usable here."""
    if device is Device.CUDA and not torch.cuda.is_available():
        raise MnprofError(
            "--device cuda: no CUDA GPU is available here (torch.cuda.is_available() is False); accepted: cpu"
        )


def check_available(backend: Backend, device: Device) -> None:
    """Fail with one line (naming the extra to install) when ``backend`` cannot run on ``device`` here."""
    info = backend_info(backend)
    backend = info.backend
    missing = [module for module in info.modules if importlib.util.find_spec(module) is None]
    if missing:
        raise MnprofError(
            f"backend {backend.value} needs {', '.join(missing)}, which is not installed; "
            f"install it with: pip install 'mnprof[{info.extra}]'"
        )
    if info.onnxruntime_pool and device is not Device.CPU:
        raise MnprofError(f"backend {backend.value} runs on the CPU provider only; accepted with it: --device cpu")
    engines = torch.backends.quantized.supported_engines
    if backend is Backend.TORCH_INT8 and (device is not Device.CPU or not {"x86", "onednn"} & set(engines)):
        raise MnprofError(
            f"backend torch_int8 runs PyTorch's x86 or oneDNN int8 kernels on the CPU; here the device is "
            f"{device.value} and the quantized engines {', '.join(engines)}; accepted: --device cpu on an x86 "
            "build of torch"
        )
    if info.dtype is not None and not native_precision(backend, device):
        raise MnprofError(
            f"backend {backend.value}: this {device.value.upper()} has no native {backend.value} arithmetic "
            f"({info.native_needs}), and an emulated time is not a result; accepted: another backend or device"
        )
    if (
        backend is Backend.COMPILE
        and device is Device.CPU
        and not any(shutil.which(compiler) for compiler in ("g++", "c++", "clang++"))
    ):
        raise MnprofError("backend compile needs a C++ compiler (g++, c++ or clang++) on PATH; none was found")


# The reduced-precision runtimes (a view of the registry): eager PyTorch on a copy of the weights and the input in
# this dtype.
REDUCED_PRECISION = {backend: getattr(torch, info.dtype) for backend, info in REGISTRY.items() if info.dtype}


def native_precision(backend: Backend, device: Device) -> bool:
    """Whether ``device`` computes in ``backend``'s reduced precision natively (not by converting to float32)."""
    check = {"bfloat16": native_bfloat16, "float16": native_float16}[backend_info(backend).dtype or ""]
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
    return package_version("onnxruntime" if backend_info(backend).onnxruntime_pool else "torch")


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run with torch's intra-op thread count set to ``threads``; the previous count is restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def prepare(backend: Backend, model: Any, inputs: Any, *, threads: int) -> Runner:
    """Make ``backend``'s runner for ``model`` (eval mode) on the fixed ``inputs`` (on the model's device), with the
    builder its registry entry names; a backend the registry does not hold is a one-line error.

    ``compile`` compiles here (tens of seconds per model on a CPU); ``onnxruntime`` exports here.
    """
    info = backend_info(backend)
    build = getattr(runners, info.prepare)
    return build(info, model, inputs, threads)  # type: ignore[no-any-return]


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
