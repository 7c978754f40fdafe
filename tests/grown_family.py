"""A user family for the instructions gate's end-to-end test: mnprof's MobileNetV1 (seeded), and with
``MNPROF_TEST_GROWN=1`` in the environment the same model doing more elementwise work at the same MACs: every
block's output goes once more through ``relu(x) - relu(-x)``, which is ``x``."""

from __future__ import annotations

import os

import torch
from torch import nn

from mnprof.model.config import ModelConfig
from mnprof.model.seeded import calibrated_model


class ExtraWork(nn.Module):
    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(x)
        return torch.relu(x) - torch.relu(-x)  # x, computed the long way


def mobilenet(alpha: float, num_classes: int) -> nn.Module:
    model = calibrated_model(ModelConfig(alpha, 224, num_classes))
    if os.environ.get("MNPROF_TEST_GROWN") == "1":
        model.blocks = nn.Sequential(*(ExtraWork(block) for block in model.blocks))
    return model.eval()
