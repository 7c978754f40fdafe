"""The one exception type that the command line turns into a one-line error and exit code 2."""

from __future__ import annotations

__all__ = ["MnprofError"]


class MnprofError(ValueError):
    """Bad input or an unusable file: the message says what was wrong and what is accepted."""
