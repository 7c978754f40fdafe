"""The one exception type that the command line turns into a one-line error and exit code 2, and the fence
around the user's own code (an import, a factory, a forward pass) that turns whatever it raises into one."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout

__all__ = ["MnprofError", "one_line", "user_code"]


class MnprofError(ValueError):
    """Bad input or an unusable file: the message says what was wrong and what is accepted."""


def one_line(error: BaseException) -> str:
    """An exception as ``Type: message`` on one line (for errors raised by the user's code)."""
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


@contextmanager
def user_code(what: str) -> Iterator[None]:
    """Run the user's code (an import, a factory, a forward pass) contained: what it prints goes to stderr, never
    into mnprof's machine-readable stdout, and anything it raises, ``SystemExit`` and ``KeyboardInterrupt``
    included, becomes a one-line :class:`MnprofError`: ``what`` and the error (the gate never passes by exiting)."""
    try:
        with redirect_stdout(sys.stderr):
            yield
    except MnprofError:
        raise
    except (Exception, SystemExit, KeyboardInterrupt) as error:
        raise MnprofError(f"{what} {one_line(error)}") from None
