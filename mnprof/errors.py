"""The one exception type that the command line turns into a one-line error and exit code 2 (:class:`MnprofError`),
an exception as one line, the interruption of a run by a signal, mnprof's own output, and the files a run must
never replace. The fence around the user's own code is :mod:`mnprof.user_code`; what no fence can catch (a segfault,
the OOM killer, ``os._exit``, a time limit) the ``mnprof`` process reports (:mod:`mnprof.supervisor`)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

__all__ = [
    "ENDING_SIGNALS",
    "MnprofError",
    "interrupted_by",
    "keep_unwritten",
    "mnprof_output",
    "note_interruption",
    "one_line",
    "read_by_this_run",
    "sigint_noted",
    "sigint_seen",
]


class MnprofError(ValueError):
    """Bad input or an unusable file: the message says what was wrong and what is accepted."""


def one_line(error: BaseException) -> str:
    """An exception as ``Type: message`` on one line (for errors raised by the user's code, whose ``str`` may
    itself fail)."""
    try:
        text = str(error)
    except BaseException as failure:  # noqa: BLE001 - the user's __str__ can raise anything, SystemExit included
        if isinstance(failure, KeyboardInterrupt) and _sigint_seen.is_set():
            raise  # a real Ctrl-C that arrived meanwhile
        text = f"(its message cannot be shown: its str() raised {type(failure).__name__})"
    return f"{type(error).__name__}: {' '.join(text.split())}"


_sigint_seen = threading.Event()  # a real Ctrl-C arrived during sigint_noted()


@contextmanager
def sigint_noted() -> Iterator[None]:
    """For the block (the command line's run, in the main thread), a real Ctrl-C is noted before it raises
    ``KeyboardInterrupt`` (:func:`note_interruption`), so that :func:`mnprof.user_code.user_code` tells it (exit 130)
    from one the user's code raises (its error, exit 2); SIGTERM and SIGHUP, where their default applies, interrupt
    the same way, so that what was finished is kept and no temporary or lock file is left behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handled = [signal.SIGINT] if signal.getsignal(signal.SIGINT) is signal.default_int_handler else []
    handled += [signum for signum in ENDING_SIGNALS if signal.getsignal(signum) is signal.SIG_DFL]
    _sigint_seen.clear()
    _interrupting[0] = signal.SIGINT
    previous = {signum: signal.signal(signum, note_interruption) for signum in handled}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


_interrupting = [signal.SIGINT]  # the signal that interrupted the run (see sigint_noted)
# Signals that end a process by default and interrupt mnprof's run instead (SIGHUP where the system has it).
ENDING_SIGNALS = (signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else []))


def interrupted_by() -> int:
    """The number of the signal that interrupted the command line's run (SIGINT, or one of :data:`ENDING_SIGNALS`)."""
    return int(_interrupting[0])


def note_interruption(signum: int, frame: object) -> None:
    """A signal interrupts the command line's run: noted (:func:`interrupted_by`, :func:`sigint_seen`), then raised
    as ``KeyboardInterrupt`` as Python's own handler does (the handler of :func:`sigint_noted` and of
    :func:`mnprof._startup.run_begins`)."""
    _sigint_seen.set()
    _interrupting[0] = signum
    signal.default_int_handler(signal.SIGINT, frame)


@contextmanager
def mnprof_output() -> Iterator[None]:
    """mnprof writes its own output (a table, a JSON document, help): within the block, ``sys.stdout`` in mnprof's
    main thread is mnprof's output (in a worker, the channel to the ``mnprof`` process, :mod:`mnprof.worker`;
    elsewhere, standard output as ever). Keep the block to the write itself: render first."""
    stdout = sys.stdout
    if not hasattr(stdout, "writing"):
        yield
        return
    previous, stdout.writing = stdout.writing, True
    try:
        yield
    finally:
        stdout.flush()
        stdout.writing = previous


_UNWRITTEN: dict[str, str] = {}  # files this run reads and must never replace (resolved path -> what each is)


def keep_unwritten(path: str, what: str) -> None:
    """From now on, no output of this run may replace ``path`` (by any spelling): a file it reads, such as the source
    of a user's module it imported (``--out`` naming it would overwrite the code being run)."""
    with suppress(OSError, RuntimeError):
        _UNWRITTEN[os.path.realpath(path)] = what


def read_by_this_run(path: str | os.PathLike[str]) -> str | None:
    """What ``path`` is, if it is a file :func:`keep_unwritten` protects; else ``None``."""
    try:
        return _UNWRITTEN.get(os.path.realpath(path))
    except (OSError, RuntimeError, ValueError):
        return None


def sigint_seen() -> bool:
    """Whether a real Ctrl-C (or another interrupting signal) arrived during :func:`sigint_noted`."""
    return _sigint_seen.is_set()
