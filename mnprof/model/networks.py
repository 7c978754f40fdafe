"""MobileNetV1 (and its variants), MobileNetV2 and MobileNetV3 (Large and Small) as PyTorch modules, built from the
layer plans in ``arch.py``."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from mnprof.model.arch import CONV_KINDS, Activation, LayerKind, LayerSpec, layer_plan
from mnprof.model.config import Family, ModelConfig
from mnprof.model.families import build_user_model

__all__ = [
    "ConvBNReLU",
    "InvertedResidual",
    "MobileNetV1",
    "MobileNetV2",
    "MobileNetV3",
    "SqueezeExcite",
    "build_model",
    "module_paths",
]


ACTIVATIONS: dict[Activation, tuple[str, type[nn.Module]]] = {
    Activation.RELU: ("relu", nn.ReLU),
    Activation.RELU6: ("relu6", nn.ReLU6),
    Activation.HARDSWISH: ("hardswish", nn.Hardswish),
    Activation.HARDSIGMOID: ("hardsigmoid", nn.Hardsigmoid),
}
# MobileNetV3's classifier dropout (the reference implementations' rate); no arithmetic at inference.
V3_DROPOUT = 0.2


class ConvBNReLU(nn.Sequential):
    """Convolution, BatchNorm (where the plan has one) and the layer's activation (ReLU in MobileNetV1, ReLU6 or
    none in MobileNetV2, ReLU, hard-swish, hard-sigmoid or none in MobileNetV3): the unit every conv layer is made
    of."""

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
        )
        if spec.batch_norm:
            units["bn"] = nn.BatchNorm2d(spec.out_channels)
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


class SqueezeExcite(nn.Module):
    """MobileNetV3's squeeze-and-excite: global average pool, 1x1 conv (bias, ReLU), 1x1 conv (bias, hard-sigmoid),
    and the input multiplied channel by channel by that excitation (the plan's ``.se.scale``, this forward)."""

    def __init__(self, units: dict[str, LayerSpec]) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = ConvBNReLU(units["fc1"])
        self.fc2 = ConvBNReLU(units["fc2"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc2(self.fc1(self.pool(x)))


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expansion (ReLU6), 3x3 depthwise (ReLU6), linear 1x1 projection, and the
    input added back where the plan has a ``.add`` layer (stride 1, equal channels). MobileNetV3's adds its
    squeeze-and-excite after the depthwise conv where the plan has ``.se`` layers."""

    def __init__(self, specs: list[LayerSpec]) -> None:
        super().__init__()
        units = {spec.name.split(".", 2)[2]: spec for spec in specs}  # expand, dw, se.fc1, ..., project, add
        self.expand = ConvBNReLU(units["expand"]) if "expand" in units else nn.Identity()
        self.dw = ConvBNReLU(units["dw"])
        if "se.scale" in units:  # only where the plan has one: MobileNetV2's blocks keep their modules as they were
            self.se = SqueezeExcite({name[3:]: spec for name, spec in units.items() if name.startswith("se.")})
        self.project = ConvBNReLU(units["project"])
        self.residual = "add" in units

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dw(self.expand(x))
        if "se" in self._modules:
            out = self.se(out)
        out = self.project(out)
        return x + out if self.residual else out


def _plan_by_block(config: ModelConfig) -> tuple[dict[str, LayerSpec], OrderedDict[str, list[LayerSpec]]]:
    """The layer plan of an inverted-residual network (V2, V3) by name, and its blocks' layers (``blocks.<i>``, in
    the plan's order)."""
    plan = layer_plan(config)
    by_block: OrderedDict[str, list[LayerSpec]] = OrderedDict()
    for spec in plan:
        if spec.name.startswith("blocks."):
            by_block.setdefault(spec.name.split(".")[1], []).append(spec)
    return {spec.name: spec for spec in plan}, by_block


class MobileNetV2(nn.Module):
    """MobileNetV2 (Sandler et al. 2018, Table 2) for one configuration.

    Module paths follow the layer plan's names: ``stem``, ``blocks.<i>.expand`` / ``.dw`` / ``.project``,
    ``head``, ``pool``, ``fc``; a block's residual add is its forward, not a module.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        specs, by_block = _plan_by_block(config)
        self.stem = ConvBNReLU(specs["stem"])
        self.blocks = nn.Sequential(OrderedDict((index, InvertedResidual(block)) for index, block in by_block.items()))
        self.head = ConvBNReLU(specs["head"])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(specs["fc"].in_channels, specs["fc"].out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class MobileNetV3(nn.Module):
    """MobileNetV3-Large or -Small (Howard et al. 2019, Tables 1 and 2) for one configuration.

    Module paths follow the layer plan's names: ``stem``, ``blocks.<i>.expand`` / ``.dw`` / ``.se.pool`` /
    ``.se.fc1`` / ``.se.fc2`` / ``.project``, ``head``, ``pool``, ``fc1``, ``fc``; between ``fc1`` and ``fc`` its
    hard-swish (``fc1_act``) and the dropout, which belong to no layer's module (the plan's ``fc1`` carries the
    activation). A block's squeeze-and-excite gate and residual add are forwards, not modules.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        specs, by_block = _plan_by_block(config)
        self.stem = ConvBNReLU(specs["stem"])
        self.blocks = nn.Sequential(OrderedDict((index, InvertedResidual(block)) for index, block in by_block.items()))
        self.head = ConvBNReLU(specs["head"])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(specs["fc1"].in_channels, specs["fc1"].out_channels)
        self.fc1_act = nn.Hardswish(inplace=True)
        self.dropout = nn.Dropout(V3_DROPOUT)
        self.fc = nn.Linear(specs["fc"].in_channels, specs["fc"].out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.pool(self.head(self.blocks(self.stem(x)))), 1)
        return self.fc(self.dropout(self.fc1_act(self.fc1(x))))


def build_model(config: ModelConfig) -> nn.Module:
    """A freshly initialised network for ``config`` (its family's; a user family's from its factory), in eval mode."""
    if not config.builtin:
        return build_user_model(config)
    if config.family is Family.MOBILENETV2:
        return MobileNetV2(config).eval()
    if config.family in (Family.MOBILENETV3_LARGE, Family.MOBILENETV3_SMALL):
        return MobileNetV3(config).eval()
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
