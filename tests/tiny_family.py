"""A small user family for the tests of ``--model package.module:factory`` in every command.

Three blocks with the family's own width multiplier: a 3x3 stem, an inverted-residual block with a residual
add (1x1 expansion, 3x3 depthwise, linear 1x1 projection; ReLU6), and a depthwise separable block of stride 2,
then a global pool and a classifier. ``tiny_at`` takes the resolution too (the factory contract's optional
third argument) and widens its classifier's input with it, so that each resolution is a different model.
"""

from __future__ import annotations

import torch
from torch import nn


def _unit(c_in: int, c_out: int, kernel: int, stride: int, groups: int = 1, act: type[nn.Module] | None = nn.ReLU6):
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False)]
    layers.append(nn.BatchNorm2d(c_out))
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


class Residual(nn.Module):
    def __init__(self, channels: int, expansion: int = 4) -> None:
        super().__init__()
        hidden = channels * expansion
        self.expand = _unit(channels, hidden, 1, 1)
        self.dw = _unit(hidden, hidden, 3, 1, groups=hidden)
        self.project = _unit(hidden, channels, 1, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(self.dw(self.expand(x)))


class Tiny(nn.Module):
    def __init__(self, alpha: float, num_classes: int, hidden: int = 0) -> None:
        super().__init__()
        c1, c2 = max(1, int(16 * alpha)), max(1, int(32 * alpha))
        self.stem = _unit(3, c1, 3, 2)
        self.residual = Residual(c1)
        self.dw = _unit(c1, c1, 3, 2, groups=c1)
        self.pw = _unit(c1, c2, 1, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c2 + hidden, num_classes)
        self.hidden = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.pw(self.dw(self.residual(self.stem(x)))))
        x = torch.flatten(x, 1)
        if self.hidden:
            x = torch.cat([x, x.new_zeros(x.shape[0], self.hidden)], 1)
        return self.fc(x)


def tiny(alpha: float, num_classes: int) -> nn.Module:
    return Tiny(alpha, num_classes)


def tiny_at(alpha: float, num_classes: int, resolution: int) -> nn.Module:
    return Tiny(alpha, num_classes, hidden=resolution // 32)


def only_224(alpha: float, num_classes: int) -> nn.Module:
    """A model whose classifier is sized for 224-pixel inputs: its forward fails at any other resolution."""
    channels = max(1, int(8 * alpha))
    return nn.Sequential(nn.Conv2d(3, channels, 32, 32), nn.Flatten(), nn.Linear(channels * 7 * 7, num_classes))


def no_conv(alpha: float, num_classes: int) -> nn.Module:
    """Nothing mnprof can count: no convolution or linear module."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())


class Shared(nn.Module):
    """One depthwise unit applied twice (weight sharing): one module, two layers."""

    def __init__(self, alpha: float, num_classes: int) -> None:
        super().__init__()
        channels = max(1, int(16 * alpha))
        self.stem = _unit(3, channels, 3, 2)
        self.dw = _unit(channels, channels, 3, 1, groups=channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dw(self.dw(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def shared(alpha: float, num_classes: int) -> nn.Module:
    return Shared(alpha, num_classes)


def sleeping(alpha: float, num_classes: int) -> nn.Module:
    """A factory that never returns in time (it waits on a weights server that does not answer)."""
    import time

    time.sleep(30)
    return tiny(alpha, num_classes)


def swallowing(alpha: float, num_classes: int) -> nn.Module:
    """A factory that catches every Exception while it waits, and waits again."""
    import time

    for _ in range(30):
        try:  # noqa: SIM105 - the point: a factory that swallows errors
            time.sleep(1)
        except Exception:
            pass
    return tiny(alpha, num_classes)


class Boom(BaseException):
    """Not an Exception: a factory may raise anything."""


def raises_base(alpha: float, num_classes: int) -> nn.Module:
    raise Boom("custom BaseException")


class TrainRaises(Tiny):
    def train(self, mode: bool = True) -> TrainRaises:
        raise RuntimeError("train() overridden to raise")


def train_raises(alpha: float, num_classes: int) -> nn.Module:
    return TrainRaises(alpha, num_classes)


def bn_no_affine(alpha: float, num_classes: int) -> nn.Module:
    """A valid model whose BatchNorm has no gamma and beta."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8, affine=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(8, num_classes),
    )  # fmt: skip


class BatchOfOne(Tiny):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 1:
            raise RuntimeError("refuses a batch of more than one")
        return super().forward(x)


def batch_of_one(alpha: float, num_classes: int) -> nn.Module:
    return BatchOfOne(alpha, num_classes)


class PrintsToDescriptor(Tiny):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import os

        os.write(1, b"noise from the model\n")
        return super().forward(x)


def prints_fd(alpha: float, num_classes: int) -> nn.Module:
    import os

    os.write(1, b"noise from the factory\n")
    return PrintsToDescriptor(alpha, num_classes)


def nonsquare(alpha: float, num_classes: int) -> nn.Module:
    """A model whose layers are not square: a 1x7 kernel and a stride of 2 down the height only."""
    channels = max(1, int(8 * alpha))
    return nn.Sequential(
        nn.Conv2d(3, channels, (1, 7), stride=(2, 1), padding=(0, 3)),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(channels, num_classes),
    ).eval()


def nonsquare_separable(alpha: float, num_classes: int) -> nn.Module:
    """A depthwise 3x1 conv of stride 2 down the height, then a pointwise conv: a separable pair, not square."""
    channels = max(1, int(8 * alpha))
    return nn.Sequential(
        nn.Conv2d(3, channels, 1),
        nn.Conv2d(channels, channels, (3, 1), stride=(2, 1), padding=(1, 0), groups=channels),
        nn.Conv2d(channels, 2 * channels, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * channels, num_classes),
    ).eval()


class Valued(nn.Module):
    """A forward that reads a value (``if y.sum() ...``): it cannot run on the meta device."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if y.sum() > -1e30:  # always true; but only a real tensor can say so
            y = torch.relu(y)
        return self.fc(y.mean((2, 3)))


def valued(alpha: float, num_classes: int) -> nn.Module:
    return Valued(num_classes).eval()


def _stubborn() -> None:
    import time

    while True:  # swallows whatever is raised into it, and waits again
        try:  # noqa: SIM105 - the point: a factory that swallows everything
            time.sleep(0.01)
        except BaseException:  # noqa: S110
            pass


def stopping_the_timer(alpha: float, num_classes: int) -> nn.Module:
    """A factory that stops mnprof's timer (as a library's own timeout might) and then never returns."""
    import signal

    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.alarm(0)
    _stubborn()
    return tiny(alpha, num_classes)


def taking_sigalrm_over(alpha: float, num_classes: int) -> nn.Module:
    """A factory that installs its own SIGALRM handler (which ignores mnprof's alarm) and then never returns."""
    import signal

    signal.signal(signal.SIGALRM, lambda _signum, _frame: None)
    _stubborn()
    return tiny(alpha, num_classes)


def unpicklable(alpha: float, num_classes: int) -> nn.Module:
    """A working model that holds a lock: ``copy.deepcopy`` of it fails (counting copies the model it traces)."""
    import threading

    model = tiny(alpha, num_classes)
    model.guard = threading.Lock()  # type: ignore[assignment]
    return model
