"""MobileNetV1 (and its variants) and MobileNetV2 as PyTorch modules, built from the layer plans in ``arch.py``."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from mnprof.model.arch import CONV_KINDS, Activation, LayerKind, LayerSpec, layer_plan
from mnprof.model.config import Family, ModelConfig
from mnprof.model.families import build_user_model

__all__ = ["ConvBNReLU", "InvertedResidual", "MobileNetV1", "MobileNetV2", "build_model", "module_paths"]


ACTIVATIONS = {Activation.RELU: ("relu", nn.ReLU), Activation.RELU6: ("relu6", nn.ReLU6)}


class ConvBNReLU(nn.Sequential):
    """Convolution, BatchNorm and the layer's activation (ReLU in MobileNetV1, ReLU6 or none in MobileNetV2):
    the unit every conv layer is made of."""

    def __init__(self, spec: LayerSpec) -> None:
        units: OrderedDict[str, nn.Module] = OrderedDict(
            conv=nn.Conv2d(
                spec.in_channels,
                spec.out_channels,
                kernel_size=spec.kernel,
                stride=spec.stride,
                padding=spec.kernel // 2,
                groups=spec.groups,
                bias=spec.bias,
            ),
            bn=nn.BatchNorm2d(spec.out_channels),
        )
        if spec.activation in ACTIVATIONS:
            name, activation = ACTIVATIONS[spec.activation]
            units[name] = activation(inplace=True)
        super().__init__(units)


class MobileNetV1(nn.Module):
    """MobileNetV1 (Howard et al. 2017, Table 1) for one configuration.

    Module paths follow the layer plan's names: ``stem``, ``blocks.<i>.dw`` and
    ``blocks.<i>.pw`` (``blocks.<i>.conv`` in the full-convolution variant), ``pool``, ``fc``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        plan = layer_plan(config)
        stem, *body, pool, fc = plan
        self.stem = ConvBNReLU(stem)
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        for spec in body:
            _, index, unit = spec.name.split(".")
            blocks.setdefault(index, nn.Sequential())
            blocks[index].add_module(unit, ConvBNReLU(spec))
        self.blocks = nn.Sequential(blocks)
        assert pool.kind is LayerKind.POOL and fc.kind is LayerKind.FC  # the plan's own invariant
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(fc.in_channels, fc.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expansion (ReLU6), 3x3 depthwise (ReLU6), linear 1x1 projection, and the
    input added back where the plan has a ``.add`` layer (stride 1, equal channels)."""

    def __init__(self, specs: list[LayerSpec]) -> None:
        super().__init__()
        units = {spec.name.rsplit(".", 1)[1]: spec for spec in specs}
        self.expand = ConvBNReLU(units["expand"]) if "expand" in units else nn.Identity()
        self.dw = ConvBNReLU(units["dw"])
        self.project = ConvBNReLU(units["project"])
        self.residual = "add" in units

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.dw(self.expand(x)))
        return x + out if self.residual else out


class MobileNetV2(nn.Module):
    """MobileNetV2 (Sandler et al. 2018, Table 2) for one configuration.

    Module paths follow the layer plan's names: ``stem``, ``blocks.<i>.expand`` / ``.dw`` / ``.project``,
    ``head``, ``pool``, ``fc``; a block's residual add is its forward, not a module.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        plan = layer_plan(config)
        by_block: OrderedDict[str, list[LayerSpec]] = OrderedDict()
        for spec in plan:
            if spec.name.startswith("blocks."):
                by_block.setdefault(spec.name.split(".")[1], []).append(spec)
        specs = {spec.name: spec for spec in plan}
        self.stem = ConvBNReLU(specs["stem"])
        self.blocks = nn.Sequential(OrderedDict((index, InvertedResidual(block)) for index, block in by_block.items()))
        self.head = ConvBNReLU(specs["head"])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(specs["fc"].in_channels, specs["fc"].out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def build_model(config: ModelConfig) -> nn.Module:
    """A freshly initialised network for ``config`` (its family's; a user family's from its factory), in eval mode."""
    if not config.builtin:
        return build_user_model(config)
    if config.family is Family.MOBILENETV2:
        return MobileNetV2(config).eval()
    return MobileNetV1(config).eval()


def module_paths(spec: LayerSpec) -> tuple[str, str]:
    """(op module, unit module) of a planned layer in :class:`MobileNetV1`: ``blocks.3.dw.conv`` and
    ``blocks.3.dw`` for a convolution (its unit adds BatchNorm and ReLU), the layer itself for pool and FC; a
    traced layer of a user's model: its own module, both times."""
    if spec.module is not None:
        return spec.module, spec.module
    if spec.kind in CONV_KINDS:
        return f"{spec.name}.conv", spec.name
    return spec.name, spec.name
