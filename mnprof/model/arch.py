"""MobileNetV1's, V2's and V3's architectures as data: a pure layer plan computed from a configuration.

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
    "v3_last_channels",
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

# MobileNetV3 (Howard et al. 2019, Tables 1 and 2): bottlenecks (kernel, expanded channels, output channels,
# squeeze-and-excite, activation, stride) after a 16-channel 3x3 stem of stride 2 (hard-swish); then a 1x1 conv
# (BatchNorm, hard-swish), the global pool, a 1x1 conv without BatchNorm on the pooled vector (built as a Linear
# layer, hard-swish) to V3_LAST_CHANNELS, and the classifier.
V3_STEM_CHANNELS = 16
V3_LARGE_BLOCKS: tuple[tuple[int, int, int, bool, str, int], ...] = (
    (3, 16, 16, False, "relu", 1),
    (3, 64, 24, False, "relu", 2),
    (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2),
    (5, 120, 40, True, "relu", 1),
    (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hardswish", 2),
    (3, 200, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1),
    (3, 480, 112, True, "hardswish", 1),
    (3, 672, 112, True, "hardswish", 1),
    (5, 672, 160, True, "hardswish", 2),
    (5, 960, 160, True, "hardswish", 1),
    (5, 960, 160, True, "hardswish", 1),
)
V3_SMALL_BLOCKS: tuple[tuple[int, int, int, bool, str, int], ...] = (
    (3, 16, 16, True, "relu", 2),
    (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hardswish", 2),
    (5, 240, 40, True, "hardswish", 1),
    (5, 240, 40, True, "hardswish", 1),
    (5, 120, 48, True, "hardswish", 1),
    (5, 144, 48, True, "hardswish", 1),
    (5, 288, 96, True, "hardswish", 2),
    (5, 576, 96, True, "hardswish", 1),
    (5, 576, 96, True, "hardswish", 1),
)
# The 1x1 conv after the last bottleneck (Large 960, Small 576: six times the last bottleneck's 160 and 96) and
# the layer after the pool (Large 1280, Small 1024), per family value.
V3_HEAD_CHANNELS = {"mobilenetv3-large": 960, "mobilenetv3-small": 576}
V3_LAST_CHANNELS = {"mobilenetv3-large": 1280, "mobilenetv3-small": 1024}
# Squeeze-and-excite: the squeezed channels are a quarter of the expanded ones (paper section 5.3), made divisible
# by 8 as the reference implementations do.
V3_SQUEEZE_FACTOR = 4


class LayerKind(StrEnum):
    """What a layer is, in the paper's vocabulary (Table 2)."""

    CONV = "conv"  # full convolution: the 3x3 stem, and the blocks of the "full" variant
    DEPTHWISE = "depthwise"
    POINTWISE = "pointwise"
    POOL = "pool"
    FC = "fc"
    ADD = "add"  # MobileNetV2's residual: the block's input added to its output (no weights, no MACs)
    # MobileNetV3's squeeze-and-excite gate: the block's expanded tensor multiplied, channel by channel, by the
    # excitation (one multiply per element; no weights, and no MACs in the paper's Mult-Adds)
    SCALE = "scale"
    # Traced in a user's model only: a product of two activations (attention's Q K^T and its weighted sum of V, any
    # matmul, bmm, baddbmm or two-operand einsum between tensors), MACs from the shapes, no weights; and a softmax
    # (no MACs), noted for the counters that list it
    MATMUL = "matmul"
    SOFTMAX = "softmax"


class Activation(StrEnum):
    """What follows a layer's BatchNorm."""

    RELU = "relu"  # MobileNetV1
    RELU6 = "relu6"  # MobileNetV2: min(max(x, 0), 6)
    NONE = "none"  # MobileNetV2's linear bottleneck: the projection has no activation
    HARDSWISH = "hardswish"  # MobileNetV3: x * relu6(x + 3) / 6
    HARDSIGMOID = "hardsigmoid"  # MobileNetV3's squeeze-and-excite gate: relu6(x + 3) / 6


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
    # A traced layer's module path in a user's model (mnprof.counting.traced.traced_count); None in mnprof's plans,
    # whose module paths follow from the name (mnprof.model.networks.module_paths).
    module: str | None = None
    # A traced layer that is not square (a 1x7 kernel, a 224x160 input): its widths; None where equal to the height.
    in_width: int | None = None
    out_width: int | None = None
    kernel_width: int | None = None
    stride_width: int | None = None
    # A traced product's operator (``matmul``, ``bmm``, ``baddbmm``, ``einsum``, ``sdpa``, ``mha``) and the aten
    # operator PyTorch runs it as (``mm``, ``bmm``, ``baddbmm``; empty where FlopCounterMode has no formula for it):
    # what each counter's rule reads; None in mnprof's plans.
    op: str | None = None
    aten: str = ""

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
    if config.family in (Family.MOBILENETV3_LARGE, Family.MOBILENETV3_SMALL):
        return _v3_plan(config)
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
    layers.append(
        LayerSpec("fc", LayerKind.FC, channels, config.num_classes, 1, 1, 1, 1, 1, True, False, Activation.NONE)
    )
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


def v3_last_channels(family: Family, alpha: float) -> int:
    """MobileNetV3's layer after the pool (Large 1280, Small 1024), never narrowed below alpha 1 (the paper, as
    for MobileNetV2's last layer) and widened above it by the same make-divisible-by-8 rule as every other layer."""
    base = V3_LAST_CHANNELS[family.value]
    return scale_channels(base, alpha, Rounding.DIVISIBLE_BY_8) if alpha > 1 else base


def _v3_plan(config: ModelConfig) -> tuple[LayerSpec, ...]:
    """MobileNetV3-Large or -Small: stem, the bottlenecks of Table 1 or 2, head conv, pool, two FC layers.

    Block ``i``: ``blocks.i.expand`` (1x1, BatchNorm, the block's activation; absent where the expanded channels
    equal the input's), ``blocks.i.dw`` (k x k depthwise, BatchNorm, activation), where the table marks SE the
    squeeze-and-excite ``blocks.i.se.pool`` (global average pool), ``blocks.i.se.fc1`` (1x1 conv with bias, no
    BatchNorm, ReLU), ``blocks.i.se.fc2`` (1x1 conv with bias, hard-sigmoid) and ``blocks.i.se.scale`` (the gate:
    the expanded tensor times the excitation), then ``blocks.i.project`` (1x1, BatchNorm, linear) and, at stride 1
    with equal channels, ``blocks.i.add``. Then ``head`` (1x1, BatchNorm, hard-swish), ``pool``, ``fc1`` (Linear
    with bias, hard-swish; dropout follows it, no arithmetic) and ``fc``. Channels are ``make_divisible(c x
    alpha, 8)``; a block's expanded channels are its actual input times the table's expansion factor (expanded /
    input as printed), made divisible by 8, as TF-slim builds them and as MobileNetV2's are here (at alpha 1 the
    table's numbers; at 0.75 this reproduces the published counts, ``make_divisible(expanded x alpha, 8)`` does
    not: ``mnprof paper --model mobilenetv3-large``); the SE's squeezed channels are ``make_divisible(expanded //
    4, 8)``; ``fc1`` is :func:`v3_last_channels`.
    """
    family = config.family
    assert isinstance(family, Family)
    alpha, div8 = config.alpha, Rounding.DIVISIBLE_BY_8
    layers: list[LayerSpec] = []
    blocks = V3_LARGE_BLOCKS if family is Family.MOBILENETV3_LARGE else V3_SMALL_BLOCKS
    channels = scale_channels(V3_STEM_CHANNELS, alpha, div8)
    size = _v3_conv(layers, "stem", LayerKind.CONV, 3, channels, 3, 2, config.resolution, Activation.HARDSWISH)
    table_in = V3_STEM_CHANNELS  # the block's input channels as the table prints them (alpha 1)
    for index, block in enumerate(blocks, start=1):
        channels, size = _v3_block(layers, f"blocks.{index}", block, channels, table_in, size, alpha)
        table_in = block[2]
    head = scale_channels(V3_HEAD_CHANNELS[family.value], alpha, div8)
    size = _v3_conv(layers, "head", LayerKind.POINTWISE, channels, head, 1, 1, size, Activation.HARDSWISH)
    _v3_shape_only(layers, "pool", LayerKind.POOL, head, size, size, 1)
    last = v3_last_channels(family, alpha)
    layers.append(LayerSpec("fc1", LayerKind.FC, head, last, 1, 1, 1, 1, 1, True, False, Activation.HARDSWISH))
    layers.append(LayerSpec("fc", LayerKind.FC, last, config.num_classes, 1, 1, 1, 1, 1, True, False, Activation.NONE))
    return tuple(layers)


def _v3_block(
    layers: list[LayerSpec],
    prefix: str,
    block: tuple[int, int, int, bool, str, int],
    channels: int,
    table_in: int,
    size: int,
    alpha: float,
) -> tuple[int, int]:
    """One bottleneck of Table 1 or 2 appended to ``layers``; returns its output channels and size."""
    kernel, expanded, out, se, act, stride = block
    activation, block_in, div8 = Activation(act), size, Rounding.DIVISIBLE_BY_8
    # The expansion factor (expanded / input, as printed) times the block's actual input, made divisible by 8:
    # TF-slim's expand_input_by_factor, and MobileNetV2's hidden = input x t here.
    hidden = scale_channels(channels * (expanded / table_in), 1.0, div8)
    out_channels = scale_channels(out, alpha, div8)
    if hidden != channels:
        _v3_conv(layers, f"{prefix}.expand", LayerKind.POINTWISE, channels, hidden, 1, 1, size, activation)
    size = _v3_conv(layers, f"{prefix}.dw", LayerKind.DEPTHWISE, hidden, hidden, kernel, stride, size, activation,
                    hidden)  # fmt: skip
    if se:
        squeezed = scale_channels(hidden // V3_SQUEEZE_FACTOR, 1.0, div8)
        _v3_shape_only(layers, f"{prefix}.se.pool", LayerKind.POOL, hidden, size, size, 1)
        _v3_conv(layers, f"{prefix}.se.fc1", LayerKind.POINTWISE, hidden, squeezed, 1, 1, 1, Activation.RELU,
                 bias=True, batch_norm=False)  # fmt: skip
        _v3_conv(layers, f"{prefix}.se.fc2", LayerKind.POINTWISE, squeezed, hidden, 1, 1, 1, Activation.HARDSIGMOID,
                 bias=True, batch_norm=False)  # fmt: skip
        _v3_shape_only(layers, f"{prefix}.se.scale", LayerKind.SCALE, hidden, 1, size, size)
    _v3_conv(layers, f"{prefix}.project", LayerKind.POINTWISE, hidden, out_channels, 1, 1, size, Activation.NONE)
    if stride == 1 and channels == out_channels:
        _v3_shape_only(layers, f"{prefix}.add", LayerKind.ADD, out_channels, 1, block_in, size)
    return out_channels, size


def _v3_conv(layers: list[LayerSpec], name: str, kind: LayerKind, c_in: int, c_out: int, kernel: int, stride: int,
             size: int, activation: Activation, groups: int = 1, bias: bool = False,
             batch_norm: bool = True) -> int:  # fmt: skip
    """A conv layer appended to ``layers``; returns its output size."""
    out = conv_output_size(size, kernel, stride)
    layers.append(LayerSpec(name, kind, c_in, c_out, kernel, stride, groups, size, out, bias, batch_norm,
                            activation))  # fmt: skip
    return out


def _v3_shape_only(layers: list[LayerSpec], name: str, kind: LayerKind, channels: int, kernel: int, in_size: int,
                   out_size: int) -> None:  # fmt: skip
    """A layer without weights (a pool, the SE gate, a residual add) appended to ``layers``."""
    layers.append(LayerSpec(name, kind, channels, channels, kernel, 1, channels, in_size, out_size, False, False,
                            Activation.NONE))  # fmt: skip


def layer_of(path: str, layer_names: set[str] | frozenset[str]) -> str | None:
    """The layer a module path belongs to: the path itself or its nearest enclosing path that is a layer name
    (``blocks.2.dw.bn`` -> ``blocks.2.dw``); a residual block's own forward is its ``.add`` layer
    (``blocks.3`` -> ``blocks.3.add``), a squeeze-and-excite module's its ``.scale`` layer (``blocks.4.se`` ->
    ``blocks.4.se.scale``). ``None`` for a path outside every layer (the model's own forward)."""
    parts = path.split(".") if path else []
    while parts:
        candidate = ".".join(parts)
        if candidate in layer_names:
            return candidate
        for own in (f"{candidate}.add", f"{candidate}.scale"):
            if own in layer_names:
                return own
        parts.pop()
    return None
