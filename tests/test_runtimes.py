"""Runtimes and the seeded model they run: each computes what eager PyTorch computes, the output check refuses
one that does not, the calibrated model and input are reproducible, thread counts are given back.

Tiny configurations throughout; no test asserts an absolute time.
"""

from __future__ import annotations

import pytest
import torch
from factories import TINY

from mnprof.model.config import ModelConfig
from mnprof.model.seeded import calibrated_model, fixed_input
from mnprof.runtimes import backends
from mnprof.runtimes.backends import Backend, Device, fold_batchnorm, output_error, prepare


def reference(config: ModelConfig, batch: int = 1):
    model = calibrated_model(config)
    inputs = fixed_input(config, batch)
    with torch.inference_mode():
        return model, inputs, model(inputs)


@pytest.mark.parametrize("backend", [Backend.EAGER, Backend.CHANNELS_LAST, Backend.FUSED])
def test_native_backends_compute_what_eager_computes(backend):
    model, inputs, expected = reference(TINY, batch=2)
    runner = prepare(backend, model, inputs, threads=1)
    error, allowed, problem = output_error(runner.output(), expected, Device.CPU)
    assert problem is None and error <= allowed


def test_fold_batchnorm_removes_every_batchnorm_and_keeps_the_function():
    model, inputs, expected = reference(TINY)
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    with torch.inference_mode():
        error, allowed, problem = output_error(folded(inputs), expected, Device.CPU)
    assert problem is None and error <= allowed < 1e-3 * expected.abs().max() + 1e-6 + 1e-12


def test_calibrated_model_output_depends_on_its_convolutions():
    """A fresh MobileNetV1's output is its classifier bias; the calibrated one's is not, so checks can fail."""
    model, inputs, expected = reference(TINY)
    assert expected.std() > 10 * model.fc.bias.std()
    with torch.no_grad():
        model.blocks[5].pw.conv.weight.mul_(1.01)
    runner = prepare(Backend.EAGER, model, inputs, threads=1)
    _, _, problem = output_error(runner.output(), expected, Device.CPU)
    assert problem is not None and "differs from eager PyTorch" in problem


def test_calibrated_model_and_input_are_reproducible_and_leave_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = calibrated_model(TINY)
    assert torch.equal(torch.rand(1), before)
    second = calibrated_model(TINY)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(fixed_input(TINY, 2), fixed_input(TINY, 2))


def test_calibrated_model_is_the_same_whatever_the_callers_thread_count():
    """The BatchNorm statistics are summed on one thread, so a sweep at --threads 2 times the very model a
    one-thread command builds (their int8 agreement differed in the fifth decimal)."""
    config = ModelConfig(0.5, 96)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = calibrated_model(config).state_dict()
        torch.set_num_threads(2)
        two = calibrated_model(config).state_dict()
        assert torch.get_num_threads() == 2  # the caller's count is given back
    finally:
        torch.set_num_threads(before)
    for name, tensor in one.items():
        assert torch.equal(tensor, two[name]), name


def test_output_check_rejects_wrong_shape_and_non_finite_values():
    good = torch.ones(1, 10)
    assert "shape" in output_error(torch.ones(1, 9), good, Device.CPU)[2]
    assert "NaN" in output_error(torch.full((1, 10), float("nan")), good, Device.CPU)[2]


def test_onnxruntime_backend_matches_eager():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model, inputs, expected = reference(TINY)
    runner = prepare(Backend.ONNXRUNTIME, model, inputs, threads=1)
    error, allowed, problem = output_error(runner.output(), expected, Device.CPU)
    assert problem is None and error <= allowed


@pytest.mark.slow
def test_compile_backend_keeps_models_of_equal_shape_apart():
    """Two models of one configuration, different weights: each compiled runner computes its own model."""
    first = calibrated_model(TINY)
    second = calibrated_model(TINY, seed=7)
    inputs = fixed_input(TINY, 1)
    for model in (first, second):
        with torch.inference_mode():
            expected = model(inputs)
        runner = prepare(Backend.COMPILE, model, inputs, threads=1)
        error, allowed, problem = output_error(runner.output(), expected, Device.CPU)
        assert problem is None and error <= allowed


def test_torch_threads_restores_the_thread_count():
    before = torch.get_num_threads()
    with backends.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), backends.torch_threads(1):
        raise RuntimeError
    assert torch.get_num_threads() == before
