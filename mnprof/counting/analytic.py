"""Closed-form params and MACs per layer, from the configuration alone (no model is run).

Convention (the paper's "Mult-Adds"): one MAC is one multiply-accumulate of a convolution or
fully connected layer. Bias additions, BatchNorm, ReLU and pooling cost 0 MACs here; the
reconciliation module says what the other counters charge for them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property

from mnprof.model.arch import CONV_KINDS, LayerKind, LayerSpec, layer_plan
from mnprof.model.config import DIVISIBLE_FAMILIES, ModelConfig

__all__ = [
    "AnalyticCount",
    "LayerCount",
    "ParamConvention",
    "analytic_count",
    "conv_macs",
    "conv_params",
    "depthwise_separable_macs",
    "linear_macs",
    "linear_params",
]


class ParamConvention(StrEnum):
    """Which tensors count as parameters."""

    PYTORCH = "pytorch"  # model.parameters(): conv and FC weights and biases, BatchNorm gamma and beta
    PAPER = "paper"  # conv and FC weights and biases only
    # TF-slim's published counts: 1001 classes (a background class). MobileNetV1: BatchNorm without gamma
    # (scale=False) but with beta and the two moving statistics, which it stores as variables. MobileNetV2:
    # conv and FC weights and the FC bias only (its README's numbers leave BatchNorm out); MobileNetV3: conv and FC
    # weights and biases (the squeeze-and-excite convs and both FC layers have them), no BatchNorm.
    TFSLIM = "tfslim"


def conv_macs(
    out_height: int, out_width: int, kernel: int, in_channels: int, out_channels: int, groups: int = 1
) -> int:
    """Standard convolution: ``Ho * Wo * F^2 * (N / groups) * M`` (the seed's formula for groups=1)."""
    return out_height * out_width * kernel * kernel * (in_channels // groups) * out_channels


def depthwise_separable_macs(out_height: int, out_width: int, kernel: int, in_channels: int, out_channels: int) -> int:
    """Depthwise ``F x F`` then pointwise ``1 x 1``: ``Ho * Wo * N * (F^2 + M)`` (the seed's formula)."""
    return out_height * out_width * in_channels * (kernel * kernel + out_channels)


def linear_macs(in_features: int, out_features: int) -> int:
    """Fully connected layer, one input vector: ``N * M``."""
    return in_features * out_features


def conv_params(kernel: int, in_channels: int, out_channels: int, groups: int = 1, bias: bool = False) -> int:
    """Weights ``F^2 * (N / groups) * M``, plus ``M`` with a bias."""
    return kernel * kernel * (in_channels // groups) * out_channels + (out_channels if bias else 0)


def linear_params(in_features: int, out_features: int, bias: bool = True) -> int:
    """Weights ``N * M``, plus ``M`` with a bias."""
    return in_features * out_features + (out_features if bias else 0)


@dataclass(frozen=True)
class LayerCount:
    """Analytic counts of one planned layer."""

    spec: LayerSpec
    macs: int
    params: int  # weights and bias of the layer itself (the paper's convention)
    bias_params: int
    batch_norm_channels: int  # channels of the BatchNorm that follows it, for its params (0 if none, or shared)
    # (input, output) elements of one image as traced, for a layer of a user's model (any shape); None: from the
    # plan's square shapes.
    elements: tuple[int, int] | None = None

    @property
    def out_elements(self) -> int:
        if self.elements is not None:
            return self.elements[1]
        channels, height, width = self.spec.out_shape
        return channels * height * width

    @property
    def in_elements(self) -> int:
        if self.elements is not None:
            return self.elements[0]
        channels, height, width = self.spec.in_shape
        return channels * height * width


def _count_layer(spec: LayerSpec) -> LayerCount:
    if spec.kind is LayerKind.FC:
        macs = linear_macs(spec.in_channels, spec.out_channels)
        params = linear_params(spec.in_channels, spec.out_channels, spec.bias)
    elif spec.kind in (LayerKind.POOL, LayerKind.ADD, LayerKind.SCALE):
        macs = params = 0
    else:
        macs = conv_macs(spec.out_size, spec.out_size, spec.kernel, spec.in_channels, spec.out_channels, spec.groups)
        params = conv_params(spec.kernel, spec.in_channels, spec.out_channels, spec.groups, spec.bias)
    bias = spec.out_channels if spec.bias else 0
    return LayerCount(spec, macs, params, bias, spec.out_channels if spec.batch_norm else 0)


@dataclass(frozen=True)
class AnalyticCount:
    """Analytic counts of one configuration, per layer and in total.

    ``planned``: the layers are mnprof's layer plan for a built-in family; False for a user family's layers
    traced from shapes (:func:`mnprof.counting.traced.traced_count`), whose execution order and kept tensors
    are not known, so that :meth:`peak_working_set` and TF-slim's parameter convention do not apply.
    """

    config: ModelConfig
    layers: tuple[LayerCount, ...]
    planned: bool = True

    @cached_property
    def macs(self) -> int:
        """Conv and FC multiply-accumulates for one image."""
        return sum(layer.macs for layer in self.layers)

    @cached_property
    def batch_norm_channels(self) -> int:
        return sum(layer.batch_norm_channels for layer in self.layers)

    @cached_property
    def batch_norm_elements(self) -> int:
        """Elements that pass through a BatchNorm, for one image."""
        return sum(layer.out_elements for layer in self.layers if layer.spec.batch_norm)

    @cached_property
    def activations(self) -> int:
        """Output elements of every conv and linear layer for one image (fvcore's ActivationCountAnalysis)."""
        return sum(layer.out_elements for layer in self.layers if layer.spec.kind in (*CONV_KINDS, LayerKind.FC))

    def working_sets(self, batch_size: int = 1) -> dict[str, int]:
        """Elements alive at each layer of one inference of ``batch_size`` images, by layer name, in plan order.

        Model of execution, as an inference runtime runs the network: one layer at a time; a layer's input
        and output are alive together; BatchNorm is folded into its convolution and the activation is
        applied in place (neither adds a tensor); a residual block's input stays alive until its add, which
        reads it and the block's output and writes a third tensor; a squeeze-and-excite's input stays alive
        through its pool and 1x1 convs until its gate. Weights are not included.

        Only for a layer plan (``planned``): a user's model may branch and keep tensors in ways its traced
        layers do not show.
        """
        if not self.planned:
            raise ValueError("the working set needs a layer plan; traced layers do not say what stays alive")
        alive_at: dict[str, int] = {}
        kept = gated = 0
        adds = {_block(layer.spec.name) for layer in self.layers if layer.spec.kind is LayerKind.ADD}
        for layer in self.layers:
            block = _block(layer.spec.name)
            if layer.spec.kind is LayerKind.ADD:
                alive = layer.in_elements + 2 * layer.out_elements  # block input, block output, the sum
            else:
                alive = layer.in_elements + layer.out_elements + (kept if block in adds else 0)
            # MobileNetV3's squeeze-and-excite: the tensor it gates stays alive through its pool and two 1x1 convs
            # (the gate itself reads it and writes the output: its own input and output)
            alive += gated if layer.spec.name.endswith((".se.fc1", ".se.fc2")) else 0
            if layer.spec.name.endswith(".se.pool"):
                gated = layer.in_elements
            elif layer.spec.kind is LayerKind.SCALE:
                gated = 0
            alive_at[layer.spec.name] = batch_size * alive
            if block in adds and layer.spec.name.endswith((".expand", ".dw")) and not kept:
                kept = layer.in_elements  # the block input, kept for the add
            if layer.spec.kind is LayerKind.ADD:
                kept = 0
        return alive_at

    def peak_working_set(self, batch_size: int = 1) -> int:
        """Elements alive at once at the busiest layer of one inference of ``batch_size`` images
        (:meth:`working_sets`' model of execution)."""
        return max(self.working_sets(batch_size).values())

    def macs_of(self, kinds: Iterable[LayerKind]) -> int:
        wanted = set(kinds)
        return sum(layer.macs for layer in self.layers if layer.spec.kind in wanted)

    def params_of(self, kinds: Iterable[LayerKind]) -> int:
        wanted = set(kinds)
        return sum(layer.params for layer in self.layers if layer.spec.kind in wanted)

    @cached_property
    def conv_macs(self) -> int:
        return self.macs_of(CONV_KINDS)

    @cached_property
    def fc_macs(self) -> int:
        return self.macs_of([LayerKind.FC])

    @cached_property
    def pool_in_elements(self) -> int:
        """Elements entering the global pools (one for MobileNets; none or several in a user's model)."""
        return sum(layer.in_elements for layer in self.layers if layer.spec.kind is LayerKind.POOL)

    @cached_property
    def pool_out_elements(self) -> int:
        return sum(layer.out_elements for layer in self.layers if layer.spec.kind is LayerKind.POOL)

    @cached_property
    def pool(self) -> LayerCount:
        return next(layer for layer in self.layers if layer.spec.kind is LayerKind.POOL)

    @cached_property
    def fc(self) -> LayerCount:
        """The classifier: the last FC layer (MobileNetV3 has another before it)."""
        return next(layer for layer in reversed(self.layers) if layer.spec.kind is LayerKind.FC)

    def params(self, convention: ParamConvention = ParamConvention.PYTORCH) -> int:
        """Parameter count under ``convention`` (see :class:`ParamConvention`)."""
        paper = sum(layer.params for layer in self.layers)
        if convention is ParamConvention.PAPER:
            return paper
        if convention is ParamConvention.PYTORCH:
            return paper + 2 * self.batch_norm_channels  # gamma and beta
        if not self.planned:
            raise ValueError("TF-slim's parameter convention is defined for mnprof's own families only")
        # TF-slim: one more (background) class in the classifier; for MobileNetV1 also beta + moving mean +
        # moving variance.
        fc = self.fc.spec
        extra_class = linear_params(fc.in_channels, fc.out_channels + 1) - self.fc.params
        if self.config.family in DIVISIBLE_FAMILIES:  # MobileNetV2 and V3: no BatchNorm in the published counts
            return paper + extra_class
        return paper + extra_class + 3 * self.batch_norm_channels


def _block(name: str) -> str:
    """The block a planned layer belongs to: ``blocks.3`` for ``blocks.3.dw`` and ``blocks.3.se.fc1``."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "blocks" and len(parts) > 2 else name.rsplit(".", 1)[0]


def analytic_count(config: ModelConfig) -> AnalyticCount:
    """Count a built-in ``config`` from its layer plan alone (a user family's: from its traced shapes, with
    :func:`mnprof.counting.traced.traced_count`)."""
    return AnalyticCount(config, tuple(_count_layer(spec) for spec in layer_plan(config)))
