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
    try:
        limit = float(text) if text.isascii() and "_" not in text else math.nan  # not ٣ or ５, nor 1_0
    except ValueError:
        limit = math.nan
    if not math.isfinite(limit) or not 0 < limit <= MAX_USER_CODE_LIMIT_S:
        raise MnprofError(
            f"{USER_CODE_LIMIT_ENV}={text!r} is invalid; "
            f"accepted: a number of seconds in (0, {MAX_USER_CODE_LIMIT_S:g}]"
        )
    return limit


def _thread_failed(failure: threading.ExceptHookArgs) -> None:
    """A thread (in practice one the user's code started) ended by an exception: one warning line, not the traceback
    Python prints."""
    if failure.exc_type is SystemExit:  # a thread's way to end, as Python's own hook takes it
        return
    name = failure.thread.name if failure.thread is not None else "?"
    error = failure.exc_value if failure.exc_value is not None else failure.exc_type()
    line = f"mnprof: warning: thread {name!r} raised {one_line(error)}\n"
    with suppress(OSError):
        os.write(2, line.encode("utf-8", "backslashreplace"))


def contain_threads() -> None:
    """For the rest of the process (the command line's run), a thread that raises is one warning line on stderr
    (:func:`_thread_failed`) instead of a traceback."""
    threading.excepthook = _thread_failed


_held: list[warnings.WarningMessage] | None = None  # what held_warnings() caught; None: nothing is held


@contextmanager
def warnings_held_for_run() -> Iterator[Callable[[], list[str]]]:
    """For the block (the command line's run), :func:`held_warnings` holds what it catches; the function it
    yields gives them, as ``file:line: Category: message`` lines, each distinct one once, at most
    :data:`MAX_SHOWN_WARNINGS` and then how many more. Outside it (mnprof as a library) warnings are shown as
    Python shows them."""
    global _held
    previous, _held = _held, []
    held = _held

    def lines() -> list[str]:
        shown = []
        torch_changes: dict[str, tuple[list[str], bool]] = {}  # who -> every change it made, and whether timed
        for message in held:
            if isinstance(message.message, TorchStateChanged):
                change = message.message
                changes, timed = torch_changes.setdefault(change.who, ([], False))
                changes.extend(text for text in change.changes if text not in changes)
                torch_changes[change.who] = (changes, timed or change.timed)
        for message in held:
            where = message.filename
            with suppress(ValueError):  # another drive (Windows)
                relative = os.path.relpath(where)
                where = where if relative.startswith(os.pardir) else relative
            text = " ".join(str(message.message).split())
            if isinstance(message.message, TorchStateChanged):  # one line per model, where it first changed one
                shown.append(TorchStateChanged.line(message.message.who, *torch_changes[message.message.who]))
                continue
            if issubclass(message.category, MnprofWarning):
                shown.append(text)
                continue
            shown.append(f"{where}:{message.lineno}: {message.category.__name__}: {text}")
        distinct = list(dict.fromkeys(shown))
        shown = distinct[:MAX_SHOWN_WARNINGS]
        if len(distinct) > len(shown):
            shown.append(f"and {len(distinct) - len(shown)} more distinct warnings")
        return shown

    try:
        yield lines
    finally:
        _held = previous


@contextmanager
def held_warnings() -> Iterator[None]:
    """Hold the Python warnings issued in the block (the user's code, and torch's warnings about it: a
    ``UserWarning`` from a factory, a ``TracerWarning`` from tracing its model) instead of printing them as they
    come, within :func:`warnings_held_for_run`: a one-line error must be alone on stderr, and whether there will be
    one is known only when the command ends. The command line shows them after a command that succeeded, each
    once, one line each, and drops them with an error. The filters stay as they are: ``-W error`` (or
    ``PYTHONWARNINGS=error``) still turns a warning into an error, the way to see one that a failure dropped."""
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
    """Torch's process-wide settings (:mod:`mnprof.torch_state`: default dtype, threads, grad mode ...) as they
    were before the block, set back after it, with one warning naming ``who`` (``model F at F-0.5-64``) and what
    changed: no other model is measured under what the user's code changed. ``timed``: the block timed ``who``'s
    own model, whose timing then ran under the change."""
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


def _child_code(error: BaseException | None) -> int:
    """The exit code of a child process the user's code forked and that came back into mnprof's code."""
    if error is None:
        return 0
    if isinstance(error, SystemExit):
        return error.code if isinstance(error.code, int) else (0 if error.code is None else 1)
    return 1


@contextmanager
def _standard_streams_kept() -> Iterator[None]:
    """Standard input, output and error as they were before the block, for mnprof's own lines after it: the file
    descriptors 0-2 (code that closes or redirects one, ``os.close(2)``, must not leave mnprof unable to say
    what went wrong) and the ``sys`` stream objects (reassigned, or closed: a new stream on the same
    descriptor)."""
    kept = {}
    for descriptor in (0, 1, 2):
        with suppress(OSError):  # closed before the block: nothing to restore
            kept[descriptor] = os.dup(descriptor)
    streams = sys.stdin, sys.stdout, sys.stderr
    try:
        yield
    finally:
        for descriptor, copy in kept.items():
            with suppress(OSError):
                os.dup2(copy, descriptor)
            os.close(copy)
        sys.stdin, sys.stdout, sys.stderr = streams
        if sys.stderr is not None and getattr(sys.stderr, "closed", False) and 2 in kept:
            with suppress(OSError, ValueError):
                sys.stderr = open(os.dup(2), "w", encoding="utf-8", errors="backslashreplace", buffering=1)  # noqa: SIM115


@contextmanager
def process_kept() -> Iterator[None]:
    """For the block (the user's code), what mnprof goes on with after it stays mnprof's: the working directory,
    the umask and the standard streams are restored (a factory that calls ``os.chdir`` must not move where mnprof
    writes its relative outputs, one that sets ``os.umask(0o777)`` make them unreadable, nor one that closes stderr
    silence mnprof's error); and a child process the code forked that returns into mnprof's code ends there,
    silently (its exit code: 0, or its ``SystemExit``'s), instead of running on as a second mnprof. Whatever ends
    the process itself (``os._exit``, ``exec``, a signal) is the ``mnprof`` process's to report
    (:mod:`mnprof.supervisor`)."""
    owner = os.getpid()
    try:
        cwd: str | None = os.getcwd()
    except OSError:  # already removed: nothing to return to
        cwd = None
    umask = os.umask(0o022)
    os.umask(umask)
    failure: BaseException | None = None
    try:
        with _standard_streams_kept():
            yield
    except BaseException as error:
        failure = error
        raise
    finally:
        if os.getpid() != owner:  # a forked child that returned into mnprof's code (or raised into it)
            with suppress(Exception):
                sys.stderr.flush()
            os._exit(_child_code(failure))
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
    """Run the user's code (an import, a factory, a forward pass) contained: what it prints with ``print`` goes to
    stderr (in a worker, everything it writes does, :mod:`mnprof.worker`); its Python warnings are held
    (:func:`held_warnings`); anything it raises, ``SystemExit`` and ``KeyboardInterrupt`` included, becomes a
    one-line :class:`MnprofError`: ``what`` and the error. In a worker the ``mnprof`` process is told the code runs,
    and ends it with one line if it takes more than :func:`user_code_limit_s` seconds (``limited=False``: no limit,
    for timing a user's model, which takes as long as its budget says) or ends the process. Torch's process-wide
    settings are set back after it, with one warning naming ``who`` (default: ``what`` up to its last colon,
    ``model F at F-0.5-64``) and what it changed (:func:`torch_state_kept`)."""
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
    except KeyboardInterrupt as error:
        if sigint_seen():  # a real Ctrl-C: the command line's interruption, not the user's code's error
            raise
        raise MnprofError(f"{what} {one_line(error)}") from None
    except BaseException as error:  # SystemExit, GeneratorExit, a BaseException of its own
        raise MnprofError(f"{what} {one_line(error)}") from None
    finally:
        worker.end()
