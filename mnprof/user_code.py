"""The fence around the user's own code (an import, a factory, a forward pass) in the process that runs it: whatever
it raises becomes a one-line :class:`~mnprof.errors.MnprofError`; the Python warnings it issues are held so that
they never come ahead of that line; torch's process-wide settings, the working directory, the umask and the
standard streams it changes are set back. In a worker process (:mod:`mnprof.worker`) each block also tells the
``mnprof`` process that the user's code runs and for how long it may, so that a crash or an overrun is reported
there as one line (:mod:`mnprof.supervisor`)."""

from __future__ import annotations

import math
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, redirect_stdout, suppress
from typing import Any

from mnprof import torch_state, worker
from mnprof.errors import MnprofError, one_line, sigint_seen

__all__ = [
    "USER_CODE_LIMIT_ENV",
    "MnprofWarning",
    "TorchStateChanged",
    "contain_threads",
    "held_warnings",
    "process_kept",
    "torch_state_kept",
    "torch_state_kept_each_call",
    "user_code",
    "user_code_limit_s",
    "warnings_held_for_run",
]

USER_CODE_LIMIT_ENV = "MNPROF_USER_CODE_TIMEOUT"
DEFAULT_USER_CODE_LIMIT_S = 300.0
MAX_USER_CODE_LIMIT_S = 86_400.0  # a day
MAX_SHOWN_WARNINGS = 10  # distinct held warnings shown after a command; the rest are counted


class MnprofWarning(UserWarning):
    """mnprof's own word about the user's code (it changed torch's settings): held like the code's warnings
    (:func:`held_warnings`), and shown as its message alone, without mnprof's file and line."""


class TorchStateChanged(MnprofWarning):
    """``who`` (``model F at F-0.5-64``) changed torch's settings (``changes``: ``threads 2 -> 1``), set back since;
    ``timed``: while its own model was timed, whose timing then ran under the change. The command line shows one
    line per model, every change it made (:func:`warnings_held_for_run`)."""

    def __init__(self, who: str, changes: list[str] | tuple[str, ...], timed: bool = False) -> None:
        self.who, self.changes, self.timed = who, list(changes), timed
        super().__init__(self.line(who, self.changes, timed))

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.who, self.changes, self.timed)

    @staticmethod
    def line(who: str, changes: list[str], timed: bool) -> str:
        listed = ", ".join(changes[:-1]) + f" and {changes[-1]}" if len(changes) > 1 else changes[0]
        kept = sum("set back" not in change for change in changes)  # the rest say why they are not
        text = f"{who} changed torch's {listed}"
        if kept:
            which = "set back" if kept == len(changes) else "the others set back"
            text += f"; {which} before {'any other model' if timed else 'anything else'} ran"
        if timed:
            text += f"{', but' if kept else ';'} its own timed calls ran under the change from the moment it was made"
        return text


def user_code_limit_s() -> float:
    """Seconds one piece of the user's code (an import, a factory call, a forward pass) may take:
    ``$MNPROF_USER_CODE_TIMEOUT``, default 300."""
    text = os.environ.get(USER_CODE_LIMIT_ENV)
    if text is None:
        return DEFAULT_USER_CODE_LIMIT_S
    limit = math.nan  # refused by any bound, as is infinity
    with suppress(ValueError):
        limit = float(text) if text.isascii() and "_" not in text else math.nan  # not ٣ or ５, nor 1_0
    if not 0 < limit <= MAX_USER_CODE_LIMIT_S:
        raise MnprofError(
            f"{USER_CODE_LIMIT_ENV}={text!r} is invalid; "
            f"accepted: a number of seconds in (0, {MAX_USER_CODE_LIMIT_S:g}]"
        )
    return limit


def _thread_failed(failure: threading.ExceptHookArgs) -> None:
    if failure.exc_type is SystemExit:  # a thread's way to end, as Python's own hook takes it
        return
    name = failure.thread.name if failure.thread is not None else "?"
    error = failure.exc_value if failure.exc_value is not None else failure.exc_type()
    with suppress(OSError):
        os.write(2, f"mnprof: warning: thread {name!r} raised {one_line(error)}\n".encode("utf-8", "backslashreplace"))


def contain_threads() -> None:
    """For the rest of the process, a thread (the user's code's) that raises is one warning line, not a traceback."""
    threading.excepthook = _thread_failed


_held: list[warnings.WarningMessage] | None = None  # what held_warnings() caught; None: nothing is held


@contextmanager
def warnings_held_for_run() -> Iterator[Callable[[], list[str]]]:
    """For the block (the command line's run), :func:`held_warnings` holds what it catches (outside it, mnprof as a
    library, warnings show as Python shows them); the function yielded gives them as ``file:line: Category:
    message`` lines, each distinct one once, at most :data:`MAX_SHOWN_WARNINGS` and then how many more."""
    global _held
    previous, _held = _held, []
    held = _held

    def lines() -> list[str]:
        changed: dict[str, tuple[list[str], bool]] = {}  # who -> every change it made, and whether timed
        for message in held:
            if isinstance(change := message.message, TorchStateChanged):
                changes, timed = changed.setdefault(change.who, ([], False))
                changes.extend(text for text in change.changes if text not in changes)
                changed[change.who] = (changes, timed or change.timed)
        shown = []
        for message in held:
            text = " ".join(str(message.message).split())
            if isinstance(message.message, TorchStateChanged):  # one line per model, where it first changed one
                text = TorchStateChanged.line(message.message.who, *changed[message.message.who])
            elif not issubclass(message.category, MnprofWarning):
                where = message.filename
                with suppress(ValueError):  # another drive (Windows)
                    relative = os.path.relpath(where)
                    where = where if relative.startswith(os.pardir) else relative
                text = f"{where}:{message.lineno}: {message.category.__name__}: {text}"
            shown.append(text)
        distinct = list(dict.fromkeys(shown))
        more = len(distinct) - MAX_SHOWN_WARNINGS
        return distinct[:MAX_SHOWN_WARNINGS] + ([f"and {more} more distinct warnings"] if more > 0 else [])

    try:
        yield lines
    finally:
        _held = previous


@contextmanager
def held_warnings() -> Iterator[None]:
    """Hold the Python warnings issued in the block (the user's code's, and torch's about it) within
    :func:`warnings_held_for_run`: a one-line error must be alone on stderr, and whether there will be one is known
    only when the command ends. The filters stay as they are: ``-W error`` still turns a warning into an error."""
    held = _held
    if held is None:
        yield
        return
    with warnings.catch_warnings(record=True) as caught:
        try:
            yield
        finally:
            held.extend(caught)


def _torch_state_changed(who: str, changes: list[str], timed: bool, failing: bool) -> None:
    """The :class:`TorchStateChanged` warning. While the code's own error propagates (``failing``), a warning that
    ``-W error`` turns into one gives way to it."""
    with suppress(Warning) if failing else nullcontext():
        warnings.warn(TorchStateChanged(who, changes, timed), stacklevel=3)


@contextmanager
def torch_state_kept(who: str, *, timed: bool = False) -> Iterator[None]:
    """Torch's process-wide settings (:mod:`mnprof.torch_state`) set back after the block, with one warning naming
    ``who`` (``model F at F-0.5-64``) and what changed, so that no other model is measured under the user's change;
    ``timed``: the block timed ``who``'s own model, whose timing then ran under the change."""
    before = torch_state.snapshot()
    failing = True
    try:
        yield
        failing = False
    finally:
        changes = torch_state.restore(before)
        if changes:
            _torch_state_changed(who, changes, timed, failing)


def torch_state_kept_each_call(call: Callable[[], Any], who: str) -> Callable[[], Any]:
    """``call`` (one timed call of ``who``'s model, among other models' calls) with torch's settings set back
    after each call, so that the next call, of whichever model, runs under mnprof's; a change is warned of once.
    The settings are read and set back outside the call, hence outside the time it measures."""
    warned: set[str] = set()

    def kept() -> Any:
        worker.now(f"{who}: timed")  # the model a crash in its call is reported against
        before = torch_state.snapshot()
        failing = True
        try:
            result = call()
            failing = False
            return result
        finally:
            changes = torch_state.restore(before)
            if changes and "; ".join(changes) not in warned:
                warned.add("; ".join(changes))
                _torch_state_changed(who, changes, True, failing)

    return kept


@contextmanager
def process_kept() -> Iterator[None]:
    """For the block (the user's code): the working directory (where relative outputs go), the umask and the standard
    streams (descriptors 0-2 and the ``sys`` objects, a closed one reopened) are restored after it; and a child
    process it forked that returns into mnprof's code ends there, silently (its exit code: 0, or its
    ``SystemExit``'s), instead of running on as a second mnprof. Whatever ends the process itself is the ``mnprof``
    process's to report (:mod:`mnprof.supervisor`)."""
    owner, cwd = os.getpid(), _cwd_now()  # None: already removed, nothing to return to
    umask = os.umask(0o022)
    os.umask(umask)
    kept = {}
    for descriptor in (0, 1, 2):
        with suppress(OSError):  # closed before the block: nothing to restore
            kept[descriptor] = os.dup(descriptor)
    streams = sys.stdin, sys.stdout, sys.stderr
    failure: BaseException | None = None
    try:
        yield
    except BaseException as error:
        failure = error
        raise
    finally:
        for descriptor, copy in kept.items():  # a descriptor closed or redirected (os.close(2)) cannot silence mnprof
            with suppress(OSError):
                os.dup2(copy, descriptor)
            os.close(copy)
        sys.stdin, sys.stdout, sys.stderr = streams
        if sys.stderr is not None and getattr(sys.stderr, "closed", False) and 2 in kept:
            with suppress(OSError, ValueError):
                sys.stderr = open(os.dup(2), "w", encoding="utf-8", errors="backslashreplace", buffering=1)  # noqa: SIM115
        if os.getpid() != owner:  # a forked child that returned into mnprof's code (or raised into it)
            with suppress(Exception):
                sys.stderr.flush()
            code = failure.code if isinstance(failure, SystemExit) else failure  # as Python exits with SystemExit
            os._exit(code if isinstance(code, int) else 0 if code is None else 1)
        os.umask(umask)
        if cwd is not None and _cwd_now() != cwd:  # unchanged: left alone (an unreadable one cannot be entered)
            try:
                os.chdir(cwd)
            except OSError as error:
                raise MnprofError(
                    f"the user's code left the working directory {cwd} and it cannot be entered again "
                    f"({one_line(error)}); accepted: code that leaves it in place"
                ) from None


def _cwd_now() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # removed
        return None


@contextmanager
def user_code(what: str, *, limited: bool = True, who: str | None = None) -> Iterator[None]:
    """Run the user's code (an import, a factory, a forward pass) contained: ``print`` goes to stderr (in a worker,
    everything it writes does); its warnings are held (:func:`held_warnings`); anything it raises, ``SystemExit``
    and ``KeyboardInterrupt`` included, becomes the one-line :class:`MnprofError` ``what`` and the error; the process
    is restored (:func:`process_kept`) and torch's settings too (:func:`torch_state_kept`, naming ``who``, default
    ``what`` up to its last colon). In a worker the ``mnprof`` process ends it with one line past
    :func:`user_code_limit_s` seconds (``limited=False``: no limit, for timing a model within its budget)."""
    limit = user_code_limit_s()
    if who is None:
        owner, colon, _ = what.removesuffix(":").rpartition(": ")
        who = owner if colon else "the user's code"
    doing = what.removesuffix(":").removesuffix(" raised").removesuffix(" failed").replace("cannot import", "import")
    late = (
        f"{doing} did not finish within {limit:g} s; accepted: user code that does, or a longer limit in "
        f"${USER_CODE_LIMIT_ENV} (seconds)"
    )
    worker.begin(doing, late, limit if limited else None)
    try:
        with (
            process_kept(),
            redirect_stdout(sys.stderr),
            held_warnings(),
            torch_state_kept(who, timed=not limited),
        ):
            yield
    except MnprofError:
        raise
    except BaseException as error:  # SystemExit, KeyboardInterrupt, GeneratorExit, a BaseException of its own
        if isinstance(error, KeyboardInterrupt) and sigint_seen():  # a real Ctrl-C: the run's interruption
            raise
        raise MnprofError(f"{what} {one_line(error)}") from None
    finally:
        worker.end()
