"""Models for the latency-gate benchmark (``benchmarks/bench_gate.py``), following ``mnprof check --model``'s
factory contract ``factory(alpha, num_classes) -> nn.Module``.

``mobilenet`` is a MobileNetV2 (mnprof's, seeded) as a user would bring it: another architecture than the
gate's controls (mnprof's MobileNetV1 of similar MACs). With ``MNPROF_GATE_EXTRA=K`` in the environment,
every block's output goes ``K`` times through ``relu(x) - relu(-x)``, which is ``x``: more work per forward
pass (four more passes over each block's activations) with the same MACs and the same outputs. This is
the "code change that makes the model slower without touching its FLOPs" the gate must catch (fvcore lists
the new elementwise operators as uncounted, a separate finding; the benchmark reads the latency findings).
``MNPROF_GATE_BLOCKS=I,J,...`` (0-based block indices; default every block) puts the extra work after those blocks
only: a finer step, for the instructions gate (``benchmarks/bench_instruction_gate.py``).
"""

from __future__ import annotations

import os

import torch
from torch import nn

from mnprof.model.config import Family, ModelConfig
from mnprof.model.seeded import calibrated_model


class ExtraWork(nn.Module):
    def __init__(self, block: nn.Module, repeats: int) -> None:
        super().__init__()
        self.block, self.repeats = block, repeats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(x)
        for _ in range(self.repeats):
            x = torch.relu(x) - torch.relu(-x)  # x, computed the long way
        return x


def _blocks() -> set[int] | None:
    chosen = os.environ.get("MNPROF_GATE_BLOCKS", "").strip()
    return None if chosen in ("", "all") else {int(index) for index in chosen.split(",")}


def _mobilenet(alpha: float, num_classes: int, repeats: int) -> nn.Module:
    model = calibrated_model(ModelConfig(alpha, 224, num_classes, family=Family.MOBILENETV2))
    if repeats:
        chosen = _blocks()
        model.blocks = nn.Sequential(
            *(
                ExtraWork(block, repeats) if chosen is None or index in chosen else block
                for index, block in enumerate(model.blocks)
            )
        )
    return model.eval()


def mobilenet(alpha: float, num_classes: int) -> nn.Module:
    """The model under the gate: ``MNPROF_GATE_EXTRA`` extra ReLUs per block (default none)."""
    return _mobilenet(alpha, num_classes, int(os.environ.get("MNPROF_GATE_EXTRA", "0")))


def mobilenet_slower(alpha: float, num_classes: int) -> nn.Module:
    """The slowed model under its own name, to time it beside the unchanged one in the same passes."""
    return _mobilenet(alpha, num_classes, int(os.environ.get("MNPROF_GATE_SLOWER", "1")))
