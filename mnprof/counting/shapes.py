"""A counter for any model, from shapes alone: every conv and linear layer's MACs by the closed-form
formulas of :mod:`mnprof.counting.analytic`, applied to shapes captured on PyTorch's meta device.

On the meta device tensors have shapes and no data: a forward pass there does no arithmetic and holds no
memory for activations or weights, so this counts a model in a fraction of the time a tracing counter
takes. It is the "analytic" count for a family without a layer plan; for MobileNetV1, V2 and V3 it must
equal the plan's count exactly, layer by layer, so each is a witness for the other.

Convention: the paper's Mult-Adds. One MAC is one multiply-accumulate of a ``nn.Conv2d`` or
``nn.Linear`` (grouped convolutions by ``in_channels / groups``), of a product of two tensors (``matmul``,
``bmm``, ``baddbmm``, a two-operand ``einsum`` that contracts, ``scaled_dot_product_attention``'s Q K^T and
weighted sum of V, every head and image) and of an ``nn.MultiheadAttention`` (its projections and both
products); bias additions, BatchNorm, activations, softmax, pooling and residual adds cost 0. Params are the
conv and linear layers' weights and biases (an attention module's too: the paper's convention); ``params_all`` is
every parameter of the model.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
from torch import nn

from mnprof.counting.analytic import linear_macs
from mnprof.counting.products import Product, ProductsMode, attention_products, product_names
from mnprof.model.config import ModelConfig
from mnprof.model.networks import build_model
from mnprof.user_code import user_code

__all__ = [
    "SHAPE_KEEPING",
    "ShapeCount",
    "ShapeLayer",
    "conv_rule",
    "count_config_shapes",
    "count_shapes",
    "linear_rule",
    "passthrough",
]


@dataclass(frozen=True)
class ShapeLayer:
    """One conv or linear module as the meta-device pass saw it."""

    path: str  # the module's path in the model (``blocks.3.dw.conv``); a product's ``matmul.<i>``, ``sdpa.<i>``, ...
    # "conv" or "linear"; "matmul" for a product of two tensors, "attention" for a part of an nn.MultiheadAttention
    # (``<path>.in_proj``, ``.scores``, ``.values``, ``.out_proj``)
    kind: str
    in_shape: tuple[int, ...]  # of one image (batch dimension dropped)
    out_shape: tuple[int, ...]
    macs: int  # for one image
    params: int  # the module's weights and bias


@dataclass(frozen=True)
class ShapeCount:
    """The shape counter's result: per layer, in call order, and totals for one image."""

    layers: tuple[ShapeLayer, ...]
    params_all: int  # every parameter of the model (numel), BatchNorm included

    @cached_property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @cached_property
    def params(self) -> int:
        """Conv and linear weights and biases (the paper's convention)."""
        return sum(layer.params for layer in self.layers)

    def by_module(self) -> dict[str, int]:
        """MACs per module path (a module called twice counts twice)."""
        totals: dict[str, int] = {}
        for layer in self.layers:
            totals[layer.path] = totals.get(layer.path, 0) + layer.macs
        return totals


def _own_params(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters(recurse=False))


def conv_rule(module: nn.Conv2d, inputs: torch.Tensor, output: torch.Tensor) -> tuple[int, int]:
    """``Ho * Wo * Fh * Fw * (N / groups) * M`` (the seed's formula, any kernel shape)."""
    _, out_channels, out_height, out_width = output.shape
    kernel_height, kernel_width = module.kernel_size
    per_position = kernel_height * kernel_width * (module.in_channels // module.groups) * out_channels
    return out_height * out_width * per_position, _own_params(module)


def linear_rule(module: nn.Linear, inputs: torch.Tensor, output: torch.Tensor) -> tuple[int, int]:
    """``N * M`` at every position the layer is applied to (one for a classifier)."""
    rows = math.prod(inputs.shape[1:-1])
    return rows * linear_macs(module.in_features, module.out_features), _own_params(module)


SHAPE_KEEPING = (
    nn.modules.batchnorm._BatchNorm,
    nn.ReLU,
    nn.ReLU6,
    nn.Hardtanh,
    nn.Identity,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Dropout,
)


def passthrough(x: torch.Tensor) -> torch.Tensor:
    return x


RULES: dict[type[nn.Module], Callable[[Any, torch.Tensor, torch.Tensor], tuple[int, int]]] = {
    nn.Conv2d: conv_rule,
    nn.Linear: linear_rule,
}


def count_shapes(model: nn.Module, resolution: int, *, channels: int = 3, owned: bool = False) -> ShapeCount:
    """Count ``model`` on one ``channels`` x ``resolution`` x ``resolution`` image from shapes alone.

    The pass runs on a copy of the model on the meta device (no arithmetic, no memory), whose BatchNorm and
    activation modules pass their input through. ``owned``: ``model`` is already on the meta device and
    the caller does not need it afterwards, so it is used as it is (no copy).
    """
    meta = model if owned else copy.deepcopy(model).to("meta")
    layers: list[ShapeLayer] = []
    names = {module: name for name, module in meta.named_modules()}
    handles = []

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        rule = next(rule for kind, rule in RULES.items() if isinstance(module, kind))
        macs, params = rule(module, inputs[0], output)
        kind = "conv" if isinstance(module, nn.Conv2d) else "linear"
        layers.append(
            ShapeLayer(names[module], kind, tuple(inputs[0].shape[1:]), tuple(output.shape[1:]), macs, params)
        )

    calls: dict[str, int] = {}

    def products(found: list[Product], path: str = "") -> None:
        for name, product in zip(product_names(found, path, calls), found, strict=True):
            kind = "attention" if path else "matmul"
            shape_in, shape_out = (product.batch, product.m, product.k), (product.batch, product.m, product.n)
            layers.append(ShapeLayer(name, kind, shape_in, shape_out, product.macs, product.params))

    def attention(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        products(attention_products(module, args, kwargs), names[module])

    for module in meta.modules():
        if isinstance(module, nn.MultiheadAttention):
            handles.append(module.register_forward_hook(attention, with_kwargs=True))
        elif isinstance(module, tuple(RULES)):
            handles.append(module.register_forward_hook(hook))
        elif isinstance(module, SHAPE_KEEPING):
            # These keep the shape, and their meta kernels are slow Python decompositions (BatchNorm was 50 of
            # 58 ms at 1.0-224): on the meta copy they pass their input through.
            module.forward = passthrough  # type: ignore[method-assign]
    try:
        with torch.no_grad(), ProductsMode(products, lambda elements: None):
            meta.eval()(torch.empty(1, channels, resolution, resolution, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return ShapeCount(tuple(layers), sum(parameter.numel() for parameter in meta.parameters()))


def count_config_shapes(configs: Iterable[ModelConfig]) -> list[ShapeCount]:
    """Built-in configurations counted by shapes; each width's model is built once, on the meta device."""
    models: dict[tuple[Any, ...], nn.Module] = {}
    counts = []
    for config in configs:
        if not config.builtin:  # a user's factory may not build on the meta device: built, then copied there
            with user_code(f"model {config.family} at {config.id}: forward failed:"):
                counts.append(count_shapes(build_model(config), config.resolution))
            continue
        if config.width_key not in models:
            with torch.device("meta"):
                models[config.width_key] = build_model(config)
        counts.append(count_shapes(models[config.width_key], config.resolution, owned=True))
    return counts
