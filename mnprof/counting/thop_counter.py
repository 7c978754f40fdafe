"""thop's ``profile`` behind one small adapter (the only module that imports thop).

mnprof uses ``ultralytics-thop``, the maintained fork of thop (same import name): it resolves
counting rules through a layer's base classes, counts in integers, and removes its hooks
even when the forward pass fails.

Convention (ultralytics-thop 2.2): one op is one multiply-add for convolutions and linear
layers (bias not counted); BatchNorm counts 2 per element, doubled (4) with the affine
transform; adaptive average pooling counts one add per pooled input and one divide per
output; ReLU counts 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["ThopCount", "count_thop"]


@dataclass(frozen=True)
class ThopCount:
    """What thop counted for one input: totals, per leaf module, and per module type."""

    total: int
    params: int
    by_module: dict[str, int]
    by_type: dict[str, int]


def _exact(value: float) -> int:
    as_int = int(value)
    if as_int != value:
        raise ValueError(f"thop returned a fractional count {value!r}")
    return as_int


def _flatten(info: dict[str, Any], prefix: str = "") -> dict[str, int]:
    flat: dict[str, int] = {}
    for name, (ops, _params, children) in info.items():
        path = f"{prefix}{name}"
        nested = _flatten(children, f"{path}.")
        own = _exact(ops) - sum(nested.values())  # a module's rule counts its own arithmetic, children apart
        flat.update(nested)
        if own or not children:
            flat[path] = own
    return flat


def count_thop(model: nn.Module, inputs: torch.Tensor) -> ThopCount:
    """Profile ``model`` on ``inputs`` with thop and return its totals and breakdowns."""
    from thop import profile  # imported here: profiling is the only thing that needs it

    ops, params, info = profile(model, inputs=(inputs,), verbose=False, ret_layer_info=True)
    by_module = _flatten(info)
    modules = dict(model.named_modules())
    by_type: dict[str, int] = {}
    for path, value in by_module.items():
        kind = type(modules[path]).__name__
        by_type[kind] = by_type.get(kind, 0) + value
    functional = _exact(ops) - sum(by_module.values())  # products run outside any module (torch.matmul, ...)
    if functional:
        by_type["functional"] = functional
    return ThopCount(_exact(ops), _exact(params), by_module, by_type)
