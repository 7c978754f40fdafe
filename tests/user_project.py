"""A user's project as the CI integrations' tests make one: the model module of a tiny family, grown by changing its
width (tests/test_pre_commit.py runs the real pre-commit on it, tests/test_action.py the GitHub Action's script)."""

from __future__ import annotations

NETS = """\
from torch import nn

WIDTH = 16


def tiny(alpha: float, num_classes: int) -> nn.Module:
    c = max(1, int(WIDTH * alpha))
    return nn.Sequential(
        nn.Conv2d(3, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes),
    )
"""


def grown(source: str = NETS) -> str:
    """The model module with its layer widened: every count grows."""
    return source.replace("WIDTH = 16", "WIDTH = 24")
