"""User families for the training-step counts (tests/test_training.py): which weights train and which inputs need a
gradient decide what a backward pass costs."""

from __future__ import annotations

from torch import nn

FROZEN = True  # tests flip it between a baseline and a check: the pointwise layer starts to train


class Small(nn.Module):
    """A 3x3 stem (after the image is scaled: still no gradient), a depthwise and a pointwise conv, and a linear."""

    def __init__(self, alpha: float, num_classes: int, frozen: bool) -> None:
        super().__init__()
        width = max(8, int(16 * alpha))
        self.stem = nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.dw = nn.Conv2d(width, width, 3, padding=1, groups=width, bias=False)
        self.pw = nn.Conv2d(width, 2 * width, 1)
        self.pw.requires_grad_(not frozen)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = self.bn(self.stem(x * 0.5)).relu()
        x = self.pw(self.dw(x)).relu()
        return self.fc(x.mean((2, 3)))


def small(alpha: float, num_classes: int) -> nn.Module:
    return Small(alpha, num_classes, frozen=FROZEN)


def trainable(alpha: float, num_classes: int) -> nn.Module:
    return Small(alpha, num_classes, frozen=False)
