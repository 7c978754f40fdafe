"""The int8 runtime: onnxruntime static quantisation, and the agreement that replaces equality for it.

:func:`prepare_int8` exports the model to ONNX (as the float onnxruntime backend does), quantises it
statically with onnxruntime's tools in QDQ format (QuantizeLinear/DequantizeLinear pairs that the CPU
provider fuses into integer kernels): weights int8, symmetric, one scale per output channel; activations
uint8 with ranges calibrated (min-max) on :data:`CALIBRATION_IMAGES` images drawn from the same seeded
generator as the timed input, with another seed. What was done is recorded with every measurement
(:class:`QuantSettings`).

An int8 network does not compute what the float one computes, so "max |out - eager| within 1e-3" would
refuse every int8 time. :func:`agreement` measures instead how close it stays to eager float32 on inputs
it was not calibrated on (:data:`AGREEMENT_IMAGES` seeded images): the mean cosine similarity of the
logits, the top-1 agreement, and the largest absolute difference on the timed input. A quantised runtime
posts a time only when the cosine is at least :data:`MIN_COSINE` and the top-1 agreement at least
:data:`MIN_TOP1`; otherwise its row is an error that carries the measured agreement.

onnxruntime and onnx are the optional ``[onnx]`` extra: imported here only when this runtime is prepared.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from mnprof.host import cpu_info
from mnprof.model.seeded import SEED, seeded_images

__all__ = [
    "AGREEMENT_IMAGES",
    "CALIBRATION_IMAGES",
    "MIN_COSINE",
    "MIN_TOP1",
    "Agreement",
    "QuantSettings",
    "agreement",
    "calibration_batches",
    "quantize_onnx",
    "quantize_torch",
    "quantized_engine",
    "torch_int8_engine",
    "torch_settings",
]

CALIBRATION_IMAGES = 16
AGREEMENT_IMAGES = 32
CALIBRATION_SEED = SEED + 1000  # calibration images: not the timed input, not the agreement images
AGREEMENT_SEED = SEED + 2000
MIN_COSINE = 0.999  # mean cosine similarity of the logits
MIN_TOP1 = 0.9  # share of the agreement images whose top-1 class matches eager float32's


@dataclass(frozen=True)
class QuantSettings:
    """How a model was quantised; recorded in every int8 row (``quantization``)."""

    tool: str = "onnxruntime.quantization.quantize_static"
    format: str = "QDQ"
    # The exporter folds each eval-mode BatchNorm into its convolution (the exported graph has no
    # BatchNormalization node), so the weights are quantised with the BatchNorm in them; onnxruntime's
    # quant_pre_process was tried and changed nothing (same agreement to the last digit).
    batchnorm: str = "folded into the convolutions by torch.onnx.export"
    weights: str = "int8, symmetric, per output channel"
    activations: str = "uint8, asymmetric, per tensor"
    calibration: str = "min-max"
    calibration_images: int = CALIBRATION_IMAGES
    calibration_seed: int = CALIBRATION_SEED

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibration_batches(resolution: int, batch_size: int) -> Iterator[torch.Tensor]:
    """:data:`CALIBRATION_IMAGES` seeded images in batches of ``batch_size`` (the exported input's shape)."""
    images = seeded_images(resolution, CALIBRATION_IMAGES, CALIBRATION_SEED)
    for start in range(0, CALIBRATION_IMAGES - batch_size + 1, batch_size):
        yield images[start : start + batch_size]
    if batch_size > CALIBRATION_IMAGES:  # one batch of repeated images: the exported shape is fixed
        yield images.repeat(math.ceil(batch_size / CALIBRATION_IMAGES), 1, 1, 1)[:batch_size]


def quantize_onnx(float_model: bytes, resolution: int, batch_size: int) -> tuple[bytes, QuantSettings]:
    """The statically quantised (QDQ) version of an exported float ONNX model, and how it was quantised."""
    from onnxruntime.quantization import (  # optional (the [onnx] extra)
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.batches = iter(calibration_batches(resolution, batch_size))

        def get_next(self) -> dict[str, Any] | None:
            batch = next(self.batches, None)
            return None if batch is None else {"x": batch.numpy()}

    with tempfile.TemporaryDirectory(prefix="mnprof-int8-") as folder, _quiet_root_logger():
        source, target = Path(folder) / "float.onnx", Path(folder) / "int8.onnx"
        source.write_bytes(float_model)
        quantize_static(
            str(source),
            str(target),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
        return target.read_bytes(), QuantSettings()


# CPU flags of int8 dot-product instructions: with them oneDNN multiplies uint8 x int8 without the overflow that
# makes PyTorch's x86 (FBGEMM) configuration quantise activations to 7 bits.
INT8_DOT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


def torch_int8_engine() -> str:
    """``onednn`` (8-bit activations) where the CPU has int8 dot-product instructions and torch the engine;
    otherwise ``x86`` (7-bit activations, reduce_range)."""
    if "onednn" in torch.backends.quantized.supported_engines and cpu_info().flags & INT8_DOT_FLAGS:
        return "onednn"
    return "x86"


@contextmanager
def quantized_engine(engine: str) -> Iterator[None]:
    """Run the block with PyTorch's quantized engine set to ``engine`` (a process-wide setting), then restore it."""
    before = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = before


def torch_settings(engine: str) -> QuantSettings:
    """What torch.ao.quantization's default configuration for ``engine`` does."""
    bits = "8-bit" if engine == "onednn" else "7-bit: reduce_range, against VPMADDUBSW overflow"
    return QuantSettings(
        tool=f"torch.ao.quantization.quantize_fx (prepare_fx, convert_fx), default qconfig mapping {engine!r}",
        format=f"PyTorch quantized modules, {engine} engine",
        batchnorm="folded into the convolutions by prepare_fx",
        weights="int8, symmetric, per output channel",
        activations=f"uint8, asymmetric, per tensor ({bits})",
        calibration="histogram",
    )


def quantize_torch(model: torch.nn.Module, inputs: torch.Tensor, engine: str) -> torch.nn.Module:
    """PyTorch's own static int8 version of ``model`` (eval mode; not changed) for ``engine``: FX graph mode
    with the engine's default configuration, observers calibrated on the :data:`CALIBRATION_IMAGES` images."""
    import copy
    import warnings

    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    with warnings.catch_warnings(), quantized_engine(engine):
        warnings.simplefilter("ignore")  # torch.ao.quantization's notice that it moves to torchao
        prepared = prepare_fx(copy.deepcopy(model).eval(), get_default_qconfig_mapping(engine), (inputs,))
        with torch.inference_mode():
            for batch in calibration_batches(inputs.shape[-1], inputs.shape[0]):
                prepared(batch)
        return convert_fx(prepared)


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime's quantisation tools log advice through the root logger; not mnprof's output."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


@dataclass(frozen=True)
class Agreement:
    """How close a lossy runtime stays to eager float32: see the module docstring."""

    cosine: float  # mean over the agreement images of their logits' cosine similarity
    top1: float  # share of AGREEMENT_IMAGES images with the same top-1 class
    max_abs_error: float  # on the timed input
    images: int = AGREEMENT_IMAGES

    @property
    def problem(self) -> str | None:
        """Why the runtime may not post a time, or ``None``."""
        if self.cosine >= MIN_COSINE and self.top1 >= MIN_TOP1:
            return None
        return (
            f"output does not agree with eager float32: cosine similarity {self.cosine:.5f} (needs >= {MIN_COSINE}), "
            f"top-1 agreement {self.top1:.1%} over {self.images} images (needs >= {MIN_TOP1:.0%})"
        )


def agreement(
    infer: Callable[[torch.Tensor], torch.Tensor],
    model: torch.nn.Module,
    output: torch.Tensor,
    reference: torch.Tensor,
    batch_size: int,
    resolution: int,
) -> Agreement:
    """Agreement of a lossy runtime with eager float32 ``model`` over :data:`AGREEMENT_IMAGES` seeded images.

    ``cosine`` is the mean over those images of the cosine similarity of each image's logits (one image's
    moved by up to 0.002 from the next); ``top1`` the share of them whose top-1 class is eager's;
    ``max_abs_error`` is on the timed input, where ``output`` and ``reference`` are the runtime's and
    eager's logits. ``infer`` runs the runtime on a batch of ``batch_size`` images (its exported shape).
    """
    images = seeded_images(resolution, AGREEMENT_IMAGES, AGREEMENT_SEED)
    agree, cosines = 0, []
    for start in range(0, AGREEMENT_IMAGES, batch_size):
        batch = images[start : start + batch_size]
        if len(batch) < batch_size:  # pad the last batch to the exported shape; padding is not counted
            batch = torch.cat([batch, images[: batch_size - len(batch)]])
        with torch.inference_mode():
            expected = model(batch).double()
        got = infer(batch).double()
        counted = min(batch_size, AGREEMENT_IMAGES - start)
        agree += int((expected.argmax(dim=1) == got.argmax(dim=1))[:counted].sum())
        cosines += torch.nn.functional.cosine_similarity(got, expected, dim=1)[:counted].tolist()
    error = float((output.double() - reference.double()).abs().max())
    cosine = sum(cosines) / len(cosines)
    # NaN logits give a NaN cosine: as far from agreeing as it gets; rounding can put a perfect one at 1 + 1e-16
    cosine = -1.0 if math.isnan(cosine) else min(1.0, max(-1.0, cosine))
    return Agreement(cosine, agree / AGREEMENT_IMAGES, error if math.isfinite(error) else math.inf)
