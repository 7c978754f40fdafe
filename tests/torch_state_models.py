"""User factories that change torch's process-wide settings (the tests of ``tests/test_hostile_torch_state.py``).

Each builds the tiny family's model (``tests/tiny_family.py``) and changes one setting: in the factory, after the
model is built, or in every forward pass (so also while the model is timed)."""

from __future__ import annotations

import torch
from torch import nn

from tests.tiny_family import Tiny


def float64_factory(alpha: float, num_classes: int) -> nn.Module:
    """Builds a float32 model, then leaves float64 as torch's default dtype."""
    model = Tiny(alpha, num_classes)
    torch.set_default_dtype(torch.float64)
    return model


def grad_off_factory(alpha: float, num_classes: int) -> nn.Module:
    """Leaves grad mode off for the whole process (``torch.set_grad_enabled(False)`` outside a ``with``)."""
    torch.set_grad_enabled(False)
    return Tiny(alpha, num_classes)


class _Changing(Tiny):
    """Changes a setting in its forward pass."""

    change: str = ""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.change == "threads":
            torch.set_num_threads(1)
        elif self.change == "dtype":
            torch.set_default_dtype(torch.float64)
        return super().forward(x)


def one_thread_forward(alpha: float, num_classes: int) -> nn.Module:
    model = _Changing(alpha, num_classes)
    model.change = "threads"
    return model


def float64_forward(alpha: float, num_classes: int) -> nn.Module:
    model = _Changing(alpha, num_classes)
    model.change = "dtype"
    return model
