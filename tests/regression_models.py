"""Small MobileNet-like factories for the regression-gate tests: one baseline and real regressions.

Each follows the factory contract of ``mnprof check --model``:
``factory(alpha: float, num_classes: int) -> torch.nn.Module``.
"""

from __future__ import annotations

import os
import warnings

import torch
from torch import nn


def _unit(c_in: int, c_out: int, kernel: int, stride: int, groups: int = 1, bias: bool = False) -> list[nn.Module]:
    conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=bias)
    return [conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def _net(
    alpha: float,
    num_classes: int,
    *,
    width: int = 32,
    stride: int = 2,
    extra_block: bool = False,
    bias: bool = False,
    hidden: int | None = None,
) -> nn.Module:
    c1, c2 = max(1, int(16 * alpha)), max(1, int(width * alpha))
    layers = _unit(3, c1, 3, 2)
    layers += _unit(c1, c1, 3, stride, groups=c1, bias=bias) + _unit(c1, c2, 1, 1, bias=bias)
    if extra_block:
        layers += _unit(c2, c2, 3, 1, groups=c2) + _unit(c2, c2, 1, 1)
    head: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if hidden:
        head += [nn.Linear(c2, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)]
    else:
        head += [nn.Linear(c2, num_classes)]
    return nn.Sequential(*layers, *head)


def tiny(alpha: float, num_classes: int) -> nn.Module:
    return _net(alpha, num_classes)


def tiny_widened(alpha: float, num_classes: int) -> nn.Module:
    return _net(alpha, num_classes, width=48)


def tiny_narrowed(alpha: float, num_classes: int) -> nn.Module:
    return _net(alpha, num_classes, width=24)


def tiny_extra_block(alpha: float, num_classes: int) -> nn.Module:
    return _net(alpha, num_classes, extra_block=True)


def tiny_lost_stride(alpha: float, num_classes: int) -> nn.Module:
    return _net(alpha, num_classes, stride=1)


def tiny_bias(alpha: float, num_classes: int) -> nn.Module:
    return _net(alpha, num_classes, bias=True)


def tiny_classifier(alpha: float, num_classes: int) -> nn.Module:
    return _net(alpha, num_classes, hidden=64)


def raising(alpha: float, num_classes: int) -> nn.Module:
    raise RuntimeError("weights server unreachable")


def not_a_module(alpha: float, num_classes: int) -> object:
    return {"alpha": alpha}


NOT_CALLABLE = 3


def exiting(alpha: float, num_classes: int) -> nn.Module:
    raise SystemExit(0)  # a factory that exits must not make the gate pass


def hard_exiting(alpha: float, num_classes: int) -> nn.Module:
    os._exit(0)  # ends a process at once, no cleanup: must not end mnprof's with 0 (the gate would pass)


def executing(alpha: float, num_classes: int) -> nn.Module:
    os.execv("/bin/true", ["true"])  # would replace mnprof by a program that exits 0 with no output: the gate passes


def forking(alpha: float, num_classes: int) -> nn.Module:
    """Forks a child that returns too (a user's bug): it must end there, not carry on as a second mnprof."""
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)  # the child, were it to run on, would print its whole table before the parent goes on
    return tiny(alpha, num_classes)


def printing_from_a_thread(alpha: float, num_classes: int) -> nn.Module:
    """Starts a thread that keeps printing after the factory returned, in Python and to file descriptor 1."""
    import threading
    import time

    def chatter() -> None:
        for _ in range(300):
            print("chatter from a thread", flush=True)  # noqa: T201
            os.write(1, b"raw chatter from a thread\n")
            time.sleep(0.01)

    threading.Thread(target=chatter, daemon=True).start()
    return tiny(alpha, num_classes)


def leaving_noise(alpha: float, num_classes: int) -> nn.Module:
    """Leaves an exit handler that prints to stdout and then exits 0, and a thread that raises: neither may put text
    into the JSON, print a traceback or change the exit code."""
    import atexit
    import sys
    import threading

    def goodbye() -> None:
        print("goodbye from an exit handler")  # noqa: T201
        sys.exit(0)

    def fail() -> None:
        raise RuntimeError("a thread failed")

    atexit.register(goodbye)
    thread = threading.Thread(target=fail, name="worker")
    thread.start()
    thread.join()
    model = tiny(alpha, num_classes)
    model.farewell = _Farewell()  # printed whenever mnprof lets go of the model, outside any fence
    return model


class _Farewell:
    def __del__(self) -> None:
        print("farewell from a finaliser")  # noqa: T201


class _Unhashable(nn.Sequential):
    __hash__ = None  # type: ignore[assignment] - torch keeps modules in sets: every walk over it raises TypeError


def unhashable(alpha: float, num_classes: int) -> nn.Module:
    return _Unhashable(*tiny(alpha, num_classes))


class _ExitingWalk(nn.Sequential):
    def named_modules(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
        raise SystemExit(0)  # outside any forward pass: must not end mnprof with 0


def exiting_walk(alpha: float, num_classes: int) -> nn.Module:
    return _ExitingWalk(*tiny(alpha, num_classes))


def closing_stderr(alpha: float, num_classes: int) -> nn.Module:
    os.close(2)  # then fails: mnprof must still be able to say so
    raise RuntimeError("failed after closing stderr")


def widened_exiting_at_exit(alpha: float, num_classes: int) -> nn.Module:
    import atexit

    atexit.register(lambda: os._exit(0))  # at the end, exit 0 whatever the gate said: must not pass a regression
    return tiny_widened(alpha, num_classes)


def wandering(alpha: float, num_classes: int) -> nn.Module:
    os.chdir(os.environ["MNPROF_TEST_WANDER_TO"])  # must not move where mnprof writes a relative --out
    return tiny(alpha, num_classes)


def printing(alpha: float, num_classes: int) -> nn.Module:
    print("loading weights ...")  # noqa: T201 - a chatty factory: its text must not reach check's JSON
    return tiny(alpha, num_classes)


def tiny_at(alpha: float, num_classes: int, resolution: int) -> nn.Module:
    """The factory contract's optional third argument: a network that depends on the input size."""
    return _net(alpha, num_classes, hidden=16 if resolution <= 32 else 32)


def warning_not_a_module(alpha: float, num_classes: int) -> object:
    warnings.warn("weights are stale", stacklevel=1)  # then a broken factory: the error must be stderr's one line
    return {"alpha": alpha}


class _WarnsThenFails(nn.Module):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        torch.tensor(images)  # torch's own UserWarning (copy-construct from a tensor), from its C++ side
        raise RuntimeError("head expects 7x7 features")


def returning_a_coroutine(alpha: float, num_classes: int) -> object:
    async def build() -> nn.Module:
        return tiny(alpha, num_classes)

    return build()  # refused; Python warns "never awaited" when mnprof lets go of it, after the fence


def warning_forward_raises(alpha: float, num_classes: int) -> nn.Module:
    return _WarnsThenFails()


def warning_tiny(alpha: float, num_classes: int) -> nn.Module:
    warnings.warn("weights are stale", stacklevel=1)  # a model that works: its warning is shown once, after
    return tiny(alpha, num_classes)


def tiny_widened_at_half(alpha: float, num_classes: int) -> nn.Module:
    """``tiny``, widened at alpha 0.5 exactly: a regression that only a configuration of its own can show."""
    return _net(alpha, num_classes, width=48 if alpha == 0.5 else 32)


def tiny_upsampled(alpha: float, num_classes: int) -> nn.Module:
    """tiny behind a bilinear upsample, which fvcore and thop charge and no convention of theirs explains."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear"), tiny(alpha, num_classes))
