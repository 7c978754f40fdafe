"""MobileNetV1 and its variants as PyTorch modules, built from the layer plan in ``arch.py``."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from mnprof.model.arch import CONV_KINDS, LayerKind, LayerSpec, layer_plan
from mnprof.model.config import ModelConfig

__all__ = ["ConvBNReLU", "MobileNetV1", "build_model", "module_paths"]


class ConvBNReLU(nn.Sequential):
    """Convolution, BatchNorm, ReLU: the unit every conv layer of Table 1 is made of."""

    def __init__(self, spec: LayerSpec) -> None:
        super().__init__(
            OrderedDict(
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
                relu=nn.ReLU(inplace=True),
            )
        )


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


def build_model(config: ModelConfig) -> MobileNetV1:
    """A freshly initialised MobileNetV1 for ``config``, in eval mode."""
    return MobileNetV1(config).eval()


def module_paths(spec: LayerSpec) -> tuple[str, str]:
    """(op module, unit module) of a planned layer in :class:`MobileNetV1`: ``blocks.3.dw.conv`` and
    ``blocks.3.dw`` for a convolution (its unit adds BatchNorm and ReLU), the layer itself for pool and FC."""
    if spec.kind in CONV_KINDS:
        return f"{spec.name}.conv", spec.name
    return spec.name, spec.name
