"""The GEMM peak (mnprof.timing.peaks): the best rate of its kernels, onnxruntime's GEMM and the integer GEMM's roof
recorded beside it."""

from __future__ import annotations

import pytest

from mnprof.runtimes.backends import Device
from mnprof.timing import peaks


def test_gemm_peak_is_the_best_rate_of_its_kernels():
    peak = peaks.measure_gemm_peak(Device.CPU, 1, kernels=(("mm", 64), ("conv1x1", 64))).to_row()
    assert set(peak["gflops_by_kernel"]) == {"mm n=64", "conv1x1 n=64"}
    assert peak["gflops"] == max(peak["gflops_by_kernel"].values()) > 0
    assert peak["threads"] == 1 and peak["device"] == "cpu"


@pytest.mark.slow
def test_gemm_peak_includes_onnxruntimes_gemm_when_asked():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    peak = peaks.measure_gemm_peak(Device.CPU, 1, kernels=(("mm", 64),), with_onnxruntime=True).to_row()
    assert set(peak["gflops_by_kernel"]) == {"mm n=64", "onnxruntime n=1024"} and "int8_gops" not in peak
    with_int8 = peaks.measure_gemm_peak(Device.CPU, 1, kernels=(("mm", 64),), with_int8=True).to_row()
    # the integer GEMM is its own roof: never the float32 peak, recorded beside it
    assert set(with_int8["gflops_by_kernel"]) == {"mm n=64"} and with_int8["kernel"] == "mm n=64"
    assert with_int8["int8_kernel"] in {"onnxruntime_int8 n=1024", "torch_int8 n=1024"}
    assert with_int8["int8_gops"] > 0


@pytest.mark.slow
def test_the_int8_roof_is_pytorchs_integer_gemm_without_the_onnx_extra(monkeypatch):
    """torch_int8 needs no extra, so neither does its roof: torch._int_mm, where onnxruntime is not installed."""
    from mnprof.runtimes import backends

    if not backends.kernel_available("torch_int8"):
        pytest.skip("this torch has no torch._int_mm on the CPU")
    monkeypatch.setattr(peaks, "kernel_available", lambda kernel: kernel == "torch_int8")
    peak = peaks.measure_gemm_peak(Device.CPU, 1, kernels=(("mm", 64),), with_int8=True).to_row()
    assert peak["int8_kernel"] == "torch_int8 n=1024" and peak["int8_gops"] > 0
    assert set(peak["gflops_by_kernel"]) == {"mm n=64"}  # never mixed into the float32 peak
