"""Factories that end the process they run in, for the process-boundary tests (tests/test_boundary.py).

Each follows the factory contract (``factory(alpha, num_classes) -> nn.Module``) and misbehaves only at alpha 0.5,
so that a grid of ``--alpha 1.0,0.5`` finishes one configuration first; the ``*_forward`` ones build a working
model whose forward pass misbehaves from its ``$CRASH_AFTER_CALLS``-th call on (default: the first).
"""

from __future__ import annotations

import ctypes
import os
import signal
import time

from torch import nn

from tests.regression_models import tiny


def _crash(how: str) -> None:
    if how == "segfault":
        ctypes.string_at(0)  # reads address 0: SIGSEGV inside a C call
    elif how == "abort":
        os.abort()
    elif how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's OOM killer does
    elif how == "exit0":
        os._exit(0)
    elif how == "exec":
        os.execv("/bin/true", ["/bin/true"])
    elif how == "sleep_in_c":
        libc = ctypes.CDLL(None)
        libc.sleep(3600)  # blocked in C: no Python code runs until it returns
    elif how == "sleep":
        time.sleep(3600)


def _factory(how: str):
    def factory(alpha: float, num_classes: int) -> nn.Module:
        if alpha == 0.5:
            _crash(how)
        return tiny(alpha, num_classes)

    factory.__name__ = how
    return factory


segfault = _factory("segfault")
abort = _factory("abort")
kill = _factory("kill")
exit0 = _factory("exit0")
exec_ = _factory("exec")
sleep_in_c = _factory("sleep_in_c")


class _CrashingForward(nn.Module):
    """A working model whose forward pass crashes from its ``after``-th call on."""

    def __init__(self, inner: nn.Module, how: str, after: int) -> None:
        super().__init__()
        self.inner, self.how, self.after, self.calls = inner, how, after, 0

    def forward(self, x):  # noqa: ANN001, ANN201 - a model's forward
        self.calls += 1
        if self.calls >= self.after:
            _crash(self.how)
        return self.inner(x)


def _forward_factory(how: str):
    def factory(alpha: float, num_classes: int) -> nn.Module:
        model = tiny(alpha, num_classes)
        if alpha != 0.5:
            return model
        return _CrashingForward(model, how, int(os.environ.get("CRASH_AFTER_CALLS", "1")))

    return factory


segfault_forward = _forward_factory("segfault")
kill_forward = _forward_factory("kill")


def recording_pid(alpha: float, num_classes: int) -> nn.Module:
    """A working model whose factory writes the id of the process it runs in to ``$MNPROF_TEST_PID_FILE``."""
    with open(os.environ["MNPROF_TEST_PID_FILE"], "w", encoding="utf-8") as handle:
        handle.write(str(os.getpid()))
    return tiny(alpha, num_classes)


def writing_stdout_buffer(alpha: float, num_classes: int) -> nn.Module:
    """A working model whose factory starts a thread that keeps writing bytes to ``sys.stdout.buffer`` (as a
    C-minded library might) after the factory returned, outside any fence."""
    import sys
    import threading

    def chatter() -> None:
        for _ in range(400):
            sys.stdout.buffer.write(b"bytes from a thread\n")
            sys.stdout.buffer.flush()
            time.sleep(0.01)

    threading.Thread(target=chatter, daemon=True).start()
    return tiny(alpha, num_classes)
