"""MobileNetV1's architecture as data: a pure layer plan computed from a configuration.

The plan is shape arithmetic only (no torch): the model builder in ``models.py`` and the
analytic counter in ``counting/analytic.py`` both read it, and fvcore and thop check the
built model against it independently.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mnprof.model.config import Family, ModelConfig, Rounding, Variant

__all__ = [
    "BLOCKS",
    "layer_of",
    "CONV_KINDS",
    "STEM_CHANNELS",
    "Activation",
    "LayerKind",
    "LayerSpec",
    "conv_output_size",
    "layer_plan",
    "scale_channels",
    "v2_head_channels",
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

# MobileNetV2 (Sandler et al. 2018, Table 2): bottleneck stages (expansion t, output channels c,
# repeats n, stride of the first s), after a 32-channel 3x3 stem of stride 2; then a 1x1 conv of
# HEAD_CHANNELS, the pool and the classifier.
V2_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
V2_HEAD_CHANNELS = 1280


class LayerKind(StrEnum):
    """What a layer is, in the paper's vocabulary (Table 2)."""

    CONV = "conv"  # full convolution: the 3x3 stem, and the blocks of the "full" variant
    DEPTHWISE = "depthwise"
    POINTWISE = "pointwise"
    POOL = "pool"
    FC = "fc"
    ADD = "add"  # MobileNetV2's residual: the block's input added to its output (no weights, no MACs)


class Activation(StrEnum):
    """What follows a layer's BatchNorm."""

    RELU = "relu"  # MobileNetV1
    RELU6 = "relu6"  # MobileNetV2: min(max(x, 0), 6)
    NONE = "none"  # MobileNetV2's linear bottleneck: the projection has no activation


# The kinds that are convolutions (built as ConvBNReLU units; counted as conv by every counter).
CONV_KINDS = (LayerKind.CONV, LayerKind.DEPTHWISE, LayerKind.POINTWISE)


@dataclass(frozen=True)
class LayerSpec:
    """One layer of the plan with its input and output shapes (channels, height, width).

    ``batch_norm`` says whether a BatchNorm (and then ``activation``) follows the layer; ``bias``
    whether the layer itself carries a bias vector.
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
    activation: Activation = Activation.RELU
    # A traced layer's module path in a user's model (mnprof.counting.shapes.traced_plan); None in mnprof's plans,
    # whose module paths follow from the name (mnprof.model.networks.module_paths).
    module: str | None = None
    # A traced layer that is not square (a 1x7 kernel, a 224x160 input): its widths; None where equal to the height.
    in_width: int | None = None
    out_width: int | None = None
    kernel_width: int | None = None
    stride_width: int | None = None

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.in_size, self.in_width or self.in_size)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return (self.out_channels, self.out_size, self.out_width or self.out_size)


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
    """Every layer of ``config``'s model, in forward order, with exact shapes (mnprof's own families only)."""
    if not config.builtin:
        raise ValueError(f"{config.family} is a user family: it has no layer plan, only traced layers")
    if config.family is Family.MOBILENETV2:
        return _v2_plan(config)
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


def v2_head_channels(alpha: float) -> int:
    """MobileNetV2's last 1x1 conv: 1280 channels, widened above alpha 1 but never narrowed below it (the
    paper: "we apply width multiplier to all layers except the very last convolutional layer"; TF-slim's
    released checkpoints below 1.0 keep 1280, its 1.3 and 1.4 use 1664 and 1792)."""
    return scale_channels(V2_HEAD_CHANNELS, alpha, Rounding.DIVISIBLE_BY_8) if alpha > 1 else V2_HEAD_CHANNELS


def _v2_plan(config: ModelConfig) -> tuple[LayerSpec, ...]:
    """MobileNetV2: stem, 17 inverted residual blocks, head conv, pool, classifier.

    Block ``i``: ``blocks.i.expand`` (1x1, t x the input channels, ReLU6; absent when t = 1),
    ``blocks.i.dw`` (3x3 depthwise, ReLU6), ``blocks.i.project`` (1x1 to the block's output, BatchNorm,
    no activation) and, where the stride is 1 and the channels match, ``blocks.i.add`` (the residual).
    Channels are ``make_divisible(c x alpha, 8)`` everywhere (TensorFlow's rule), the head aside.
    """
    alpha, relu6 = config.alpha, Activation.RELU6
    layers: list[LayerSpec] = []

    def conv(name: str, kind: LayerKind, c_in: int, c_out: int, kernel: int, stride: int, size: int,
             groups: int = 1, activation: Activation = relu6) -> int:  # fmt: skip
        out = conv_output_size(size, kernel, stride)
        layers.append(LayerSpec(name, kind, c_in, c_out, kernel, stride, groups, size, out, False, True, activation))
        return out

    channels = scale_channels(STEM_CHANNELS, alpha, Rounding.DIVISIBLE_BY_8)
    size = conv("stem", LayerKind.CONV, 3, channels, 3, 2, config.resolution)
    index = 0
    for expansion, stage_channels, repeats, first_stride in V2_STAGES:
        out_channels = scale_channels(stage_channels, alpha, Rounding.DIVISIBLE_BY_8)
        for repeat in range(repeats):
            index += 1
            stride = first_stride if repeat == 0 else 1
            prefix, hidden, block_in = f"blocks.{index}", channels * expansion, size
            if expansion != 1:
                conv(f"{prefix}.expand", LayerKind.POINTWISE, channels, hidden, 1, 1, size)
            size = conv(f"{prefix}.dw", LayerKind.DEPTHWISE, hidden, hidden, 3, stride, size, groups=hidden)
            conv(f"{prefix}.project", LayerKind.POINTWISE, hidden, out_channels, 1, 1, size, activation=Activation.NONE)
            if stride == 1 and channels == out_channels:
                layers.append(LayerSpec(f"{prefix}.add", LayerKind.ADD, out_channels, out_channels, 1, 1,
                                        out_channels, block_in, size, False, False, Activation.NONE))  # fmt: skip
            channels = out_channels
    head = v2_head_channels(alpha)
    size = conv("head", LayerKind.POINTWISE, channels, head, 1, 1, size)
    layers.append(LayerSpec("pool", LayerKind.POOL, head, head, size, 1, head, size, 1, False, False, Activation.NONE))
    layers.append(LayerSpec("fc", LayerKind.FC, head, config.num_classes, 1, 1, 1, 1, 1, True, False, Activation.NONE))
    return tuple(layers)


def layer_of(path: str, layer_names: set[str] | frozenset[str]) -> str | None:
    """The layer a module path belongs to: the path itself or its nearest enclosing path that is a layer name
    (``blocks.2.dw.bn`` -> ``blocks.2.dw``); a residual block's own forward is its ``.add`` layer
    (``blocks.3`` -> ``blocks.3.add``). ``None`` for a path outside every layer (the model's own forward)."""
    parts = path.split(".") if path else []
    while parts:
        candidate = ".".join(parts)
        if candidate in layer_names:
            return candidate
        if f"{candidate}.add" in layer_names:
            return f"{candidate}.add"
        parts.pop()
    return None
