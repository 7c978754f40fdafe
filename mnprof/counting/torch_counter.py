"""PyTorch's own counter, ``torch.utils.flop_counter.FlopCounterMode``, behind one small adapter.

It is maintained upstream and counts at the dispatcher (no tracing, unlike fvcore's deprecated
torch.jit path), so it sees every operator the model runs.

Convention (torch 2.x): one FLOP is a multiply or an add, so a multiply-accumulate is 2 FLOPs:
convolutions (``aten.convolution``) and linear layers (``aten.addmm``, bias not counted) count
``2 x MACs``; BatchNorm, activations, pooling and residual adds are not counted. Products of two tensors count
``2 x MACs`` as ``aten.mm``, ``aten.bmm`` or ``aten.baddbmm`` (the add not counted); on the CPU
``scaled_dot_product_attention`` runs a fused kernel it has no formula for (0, listed here as uncounted).
mnprof reports its count in MACs (FLOPs / 2, exact: every count it makes is even), so it sits beside the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["TorchCount", "count_torch"]


@dataclass(frozen=True)
class TorchCount:
    """What FlopCounterMode counted for one input: FLOPs in total and per operator, and the same in MACs."""

    flops: int
    flops_by_operator: dict[str, int]
    # operators that do products FlopCounterMode has no formula for (it charges them 0 and does not list them),
    # with their calls: the CPU's fused attention kernels
    uncounted: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """MACs: FLOPs / 2 (FlopCounterMode counts a multiply-accumulate as 2)."""
        return self.flops // 2

    @property
    def by_operator(self) -> dict[str, int]:
        """MACs per operator (``aten.convolution``, ``aten.addmm``, ...)."""
        return {operator: flops // 2 for operator, flops in self.flops_by_operator.items()}


# Products FlopCounterMode does not count on the CPU: scaled_dot_product_attention's CPU kernel and
# nn.MultiheadAttention's fused inference path.
UNCOUNTED = ("aten._scaled_dot_product_flash_attention_for_cpu", "aten._native_multi_head_attention")


class _Uncounted(TorchDispatchMode):
    """Notes the calls of :data:`UNCOUNTED` operators (FlopCounterMode lists only what it counts)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = f"aten.{func._overloadpacket.__name__}"
        if name in UNCOUNTED:
            self.calls[name] = self.calls.get(name, 0) + 1
        return func(*args, **(kwargs or {}))


def count_torch(model: nn.Module, inputs: torch.Tensor) -> TorchCount:
    """Run ``model`` on ``inputs`` under FlopCounterMode and return its totals by operator."""
    uncounted = _Uncounted()
    with torch.no_grad(), FlopCounterMode(display=False) as mode, uncounted:
        model(inputs)
    by_operator = {str(operator): int(flops) for operator, flops in mode.get_flop_counts().get("Global", {}).items()}
    odd = {operator: flops for operator, flops in by_operator.items() if flops % 2}
    if odd:
        raise ValueError(f"FlopCounterMode counted an odd number of FLOPs, not whole MACs: {odd}")
    return TorchCount(int(mode.get_total_flops()), by_operator, uncounted.calls)
