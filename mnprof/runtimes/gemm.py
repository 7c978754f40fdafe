"""The GEMM kernels the roofline's peak is measured with (:mod:`mnprof.timing.peaks`): float32 products through
each GEMM library a runtime uses, and the integer products of the int8 runtimes."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable

import torch

from mnprof.runtimes.registry import Backend, Device
from mnprof.runtimes.runners import Runner, onnxruntime_session, sampler

__all__ = ["gemm_sampler", "kernel_available"]


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
    build = _FLOAT_KERNELS.get(kernel)
    if build is None and device is Device.CPU:
        build = _CPU_KERNELS.get(kernel)
    if build is None:
        raise ValueError(
            f"unknown GEMM kernel {kernel!r} on {device.value}; accepted: mm, conv1x1, onnxruntime, onnxruntime_int8 "
            "(the last two on the cpu)"
        )
    call = build(size, device, threads, generator)
    return sampler(Runner(Backend.EAGER, call, lambda: None), device)


Call = Callable[[], object]


def _mm(size: int, device: Device, threads: int, generator: torch.Generator) -> Call:
    """``torch.mm`` of two float32 ``size`` x ``size`` matrices."""
    left = torch.randn(size, size, generator=generator).to(device.value)
    right = torch.randn(size, size, generator=generator).to(device.value)

    def call() -> object:
        return torch.mm(left, right)

    return call


def _conv1x1(size: int, device: Device, threads: int, generator: torch.Generator) -> Call:
    """A 1x1 convolution of ``size`` channels on a channels_last ``sqrt(size)`` x ``sqrt(size)`` map."""
    side = math.isqrt(size)
    if side * side != size:
        raise ValueError(f"conv1x1 GEMM size {size} is not a square number")
    image = torch.randn(1, size, side, side, generator=generator).to(device.value, memory_format=torch.channels_last)
    weight = torch.randn(size, size, 1, 1, generator=generator).to(device.value, memory_format=torch.channels_last)

    def call() -> object:
        with torch.inference_mode():
            return torch.nn.functional.conv2d(image, weight)

    return call


def _onnxruntime(size: int, device: Device, threads: int, generator: torch.Generator) -> Call:
    """A MatMul node of two float32 matrices in an onnxruntime CPU session (MLAS)."""
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

    return call


def _torch_int8(size: int, device: Device, threads: int, generator: torch.Generator) -> Call:
    """``torch._int_mm``: int8 x int8 -> int32."""
    left = torch.randint(-128, 128, (size, size), generator=generator, dtype=torch.int8)
    right = torch.randint(-128, 128, (size, size), generator=generator, dtype=torch.int8)

    def call() -> object:
        with torch.inference_mode():
            return torch._int_mm(left, right)

    return call


def _onnxruntime_int8(size: int, device: Device, threads: int, generator: torch.Generator) -> Call:
    """A MatMulInteger node (uint8 x int8 -> int32) in an onnxruntime CPU session."""
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

    return call


# The kernels of any device, and those of the CPU only.
_FLOAT_KERNELS: dict[str, Callable[[int, Device, int, torch.Generator], Call]] = {"mm": _mm, "conv1x1": _conv1x1}
_CPU_KERNELS: dict[str, Callable[[int, Device, int, torch.Generator], Call]] = {
    "onnxruntime": _onnxruntime,
    "torch_int8": _torch_int8,
    "onnxruntime_int8": _onnxruntime_int8,
}
