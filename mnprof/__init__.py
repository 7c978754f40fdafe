"""mnprof: model analysis and profiling for MobileNet-style networks."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    """``__version__``, looked up when first asked for: importing the package stays light, so that the ``mnprof``
    command handles signals before anything heavy is imported (:mod:`mnprof._startup`); importlib.metadata alone
    takes tens of milliseconds."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("mnprof")
    except PackageNotFoundError:  # running from a source tree that was not installed
        found = "0.0.0+unknown"
    globals()["__version__"] = found
    return found
