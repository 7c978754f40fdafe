"""The one exception type that the command line turns into a one-line error and exit code 2, and the fence
around the user's own code (an import, a factory, a forward pass) that turns whatever it raises into one."""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout

__all__ = ["USER_CODE_LIMIT_ENV", "MnprofError", "one_line", "time_limit", "user_code", "user_code_limit_s"]

USER_CODE_LIMIT_ENV = "MNPROF_USER_CODE_TIMEOUT"
DEFAULT_USER_CODE_LIMIT_S = 300.0


class MnprofError(ValueError):
    """Bad input or an unusable file: the message says what was wrong and what is accepted."""


def one_line(error: BaseException) -> str:
    """An exception as ``Type: message`` on one line (for errors raised by the user's code)."""
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


class _TimeLimit(BaseException):
    """Raised into the user's code when its time is up: a BaseException, so that ``except Exception`` in the user's
    code does not swallow it (and it is raised again every second until the code gives up)."""


def user_code_limit_s() -> float:
    """Seconds one piece of the user's code (an import, a factory call, a forward pass) may take:
    ``$MNPROF_USER_CODE_TIMEOUT``, default 300."""
    text = os.environ.get(USER_CODE_LIMIT_ENV)
    if text is None:
        return DEFAULT_USER_CODE_LIMIT_S
    try:
        limit = float(text)
    except ValueError:
        limit = math.nan
    if not math.isfinite(limit) or limit <= 0:
        raise MnprofError(f"{USER_CODE_LIMIT_ENV}={text!r} is invalid; accepted: a number of seconds > 0")
    return limit


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`_TimeLimit` into the block after ``seconds`` (a real-time timer and SIGALRM; where there is
    none, or off the main thread, no limit). Code blocked inside a C call is interrupted when it returns to Python."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_signum: int, _frame: object) -> None:
        raise _TimeLimit(f"did not finish within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)  # an enclosing limit's time left (0: none)
    if outer:
        signal.setitimer(signal.ITIMER_REAL, min(seconds, outer), 1.0)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:  # the enclosing limit keeps running, less the time spent here
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 1e-3))


@contextmanager
def user_code(what: str) -> Iterator[None]:
    """Run the user's code (an import, a factory, a forward pass) contained: what it prints goes to stderr, never
    into mnprof's machine-readable stdout; it gets :func:`user_code_limit_s` seconds; and anything it raises,
    ``SystemExit`` and ``KeyboardInterrupt`` included, becomes a one-line :class:`MnprofError`: ``what`` and the
    error (the gate never passes by exiting, nor hangs on a factory that never returns)."""
    limit = user_code_limit_s()
    try:
        with redirect_stdout(sys.stderr), time_limit(limit):
            yield
    except MnprofError:
        raise
    except _TimeLimit:
        doing = (
            what.removesuffix(":").removesuffix(" raised").removesuffix(" failed").replace("cannot import", "import")
        )
        raise MnprofError(
            f"{doing} did not finish within {limit:g} s; accepted: user code that does, or a longer limit in "
            f"${USER_CODE_LIMIT_ENV} (seconds)"
        ) from None
    except (Exception, SystemExit, KeyboardInterrupt) as error:
        raise MnprofError(f"{what} {one_line(error)}") from None
