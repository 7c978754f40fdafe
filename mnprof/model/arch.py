"""MobileNetV1's architecture as data: a pure layer plan computed from a configuration.

The plan is shape arithmetic only (no torch): the model builder in ``models.py`` and the
analytic counter in ``counting/analytic.py`` both read it, and fvcore and thop check the
built model against it independently.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mnprof.model.config import ModelConfig, Rounding, Variant

__all__ = [
    "BLOCKS",
    "CONV_KINDS",
    "STEM_CHANNELS",
    "LayerKind",
    "LayerSpec",
    "conv_output_size",
    "layer_plan",
    "scale_channels",
]

STEM_CHANNELS = 32
# (output channels, stride) of the thirteen depthwise separable blocks, paper Table 1.
BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    # Table 1 prints "Conv dw / s2" for this block's depthwise conv, but its input and output
    # are both 7x7 in the same table: stride 1 is meant (TF-slim and timm use 1 as well).
    (1024, 1),
)
# Table 5's "shallow" MobileNet drops the five 14x14x512 blocks (indices 6..10 above).
SHALLOW_REMOVED = range(6, 11)


class LayerKind(StrEnum):
    """What a layer is, in the paper's vocabulary (Table 2)."""

    CONV = "conv"  # full convolution: the 3x3 stem, and the blocks of the "full" variant
    DEPTHWISE = "depthwise"
    POINTWISE = "pointwise"
    POOL = "pool"
    FC = "fc"


# The kinds that are convolutions (built as ConvBNReLU units; counted as conv by every counter).
CONV_KINDS = (LayerKind.CONV, LayerKind.DEPTHWISE, LayerKind.POINTWISE)


@dataclass(frozen=True)
class LayerSpec:
    """One layer of the plan with its input and output shapes (channels, height, width).

    ``batch_norm`` says whether a BatchNorm + ReLU follows the layer; ``bias`` whether the
    layer itself carries a bias vector.
    """

    name: str
    kind: LayerKind
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    groups: int
    in_size: int
    out_size: int
    bias: bool
    batch_norm: bool

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.in_size, self.in_size)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return (self.out_channels, self.out_size, self.out_size)


def scale_channels(channels: int, alpha: float, rounding: Rounding = Rounding.FLOOR) -> int:
    """Apply the width multiplier to a channel count.

    ``FLOOR``: ``int(channels * alpha)``, at least 1; this reproduces the paper's counts.
    ``DIVISIBLE_BY_8``: the nearest multiple of 8, at least 8, never more than 10% below
    ``channels * alpha`` (TensorFlow's and timm's ``make_divisible``).
    """
    scaled = channels * alpha
    if rounding is Rounding.FLOOR:
        return max(1, int(scaled))
    divisor = 8
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return rounded


def conv_output_size(size: int, kernel: int, stride: int) -> int:
    """Output size of a convolution with 'same' padding ``kernel // 2``."""
    padding = kernel // 2
    return (size + 2 * padding - kernel) // stride + 1


def layer_plan(config: ModelConfig) -> tuple[LayerSpec, ...]:
    """Every layer of ``config``'s model, in forward order, with exact shapes."""
    width = config.alpha
    rounding = config.rounding
    seed_bias = config.variant is Variant.SEED
    layers: list[LayerSpec] = []

    def conv(
        name: str,
        kind: LayerKind,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int,
        size: int,
        groups: int = 1,
        bias: bool = False,
    ) -> int:
        out = conv_output_size(size, kernel, stride)
        layers.append(LayerSpec(name, kind, c_in, c_out, kernel, stride, groups, size, out, bias, True))
        return out

    channels = scale_channels(STEM_CHANNELS, width, rounding)
    size = conv("stem", LayerKind.CONV, 3, channels, 3, 2, config.resolution)
    for index, (out_channels, stride) in enumerate(BLOCKS, start=1):
        if config.variant is Variant.SHALLOW and index - 1 in SHALLOW_REMOVED:
            continue
        out_channels = scale_channels(out_channels, width, rounding)
        prefix = f"blocks.{index}"
        if config.variant is Variant.FULL:
            size = conv(f"{prefix}.conv", LayerKind.CONV, channels, out_channels, 3, stride, size)
        else:
            size = conv(
                f"{prefix}.dw",
                LayerKind.DEPTHWISE,
                channels,
                channels,
                3,
                stride,
                size,
                groups=channels,
                bias=seed_bias,
            )
            size = conv(f"{prefix}.pw", LayerKind.POINTWISE, channels, out_channels, 1, 1, size, bias=seed_bias)
        channels = out_channels
    layers.append(LayerSpec("pool", LayerKind.POOL, channels, channels, size, 1, channels, size, 1, False, False))
    layers.append(LayerSpec("fc", LayerKind.FC, channels, config.num_classes, 1, 1, 1, 1, 1, True, False))
    return tuple(layers)
