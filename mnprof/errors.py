"""The one exception type that the command line turns into a one-line error and exit code 2, and the fence
around the user's own code (an import, a factory, a forward pass) that turns whatever it raises into one, and
holds the Python warnings it issues so that they never come ahead of that line."""

from __future__ import annotations

import atexit
import io
import math
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, redirect_stdout, suppress
from typing import Any

from mnprof import torch_state

__all__ = [
    "ENDING_SIGNALS",
    "USER_CODE_LIMIT_ENV",
    "contain_threads",
    "MnprofError",
    "MnprofWarning",
    "TorchStateChanged",
    "end_process",
    "ended_on_overrun",
    "held_warnings",
    "interrupted_by",
    "keep_unwritten",
    "one_line",
    "read_by_this_run",
    "process_kept",
    "mnprof_output",
    "note_interruption",
    "reserve_stdout",
    "sigint_noted",
    "stdout_to_stderr",
    "time_limit",
    "torch_state_kept",
    "torch_state_kept_each_call",
    "user_code",
    "user_code_limit_s",
    "warnings_held_for_run",
    "whole_write",
]

USER_CODE_LIMIT_ENV = "MNPROF_USER_CODE_TIMEOUT"
DEFAULT_USER_CODE_LIMIT_S = 300.0
MAX_USER_CODE_LIMIT_S = 86_400.0  # a day; the timer cannot take much more than a C time_t
GRACE_S = (0.5, 10.0)  # the watchdog's grace after a limit: as long as the limit, within these bounds
MAX_SHOWN_WARNINGS = 10  # distinct held warnings shown after a command; the rest are counted


class MnprofError(ValueError):
    """Bad input or an unusable file: the message says what was wrong and what is accepted."""


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
    """For the block (the command line's run), a real Ctrl-C (SIGINT) is noted before it raises
    ``KeyboardInterrupt`` as Python's own handler does, so that :func:`user_code` tells it from a
    ``KeyboardInterrupt`` the user's code raises: the first interrupts mnprof (exit 130, even while mnprof runs a
    model's forward pass inside the fence), the second is an error of that code (exit 2). Only where Python's
    default handler is installed, in the main thread (the ``mnprof`` command's own handlers, installed before it
    imports anything heavy, call :func:`note_interruption` just the same). SIGTERM (``timeout``, a CI runner
    ending a job) and SIGHUP (the terminal closed), where their default applies, interrupt the same way, so that
    what was finished is kept and no temporary or lock file is left behind; :func:`interrupted_by` then says which
    signal it was (the exit code is 128 + its number)."""
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
    """A signal interrupts the command line's run: noted (:func:`interrupted_by`, and a real Ctrl-C for
    :func:`user_code`), then raised as ``KeyboardInterrupt`` as Python's own handler does. The handler
    :func:`sigint_noted` installs, and the one the ``mnprof`` command has from its first line on calls it while the
    run runs (:func:`mnprof._startup.run_begins`)."""
    _sigint_seen.set()
    _interrupting[0] = signum
    signal.default_int_handler(signal.SIGINT, frame)


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
        limit = float(text) if text.isascii() and "_" not in text else math.nan  # not ٣ or ５, nor 1_0
    except ValueError:
        limit = math.nan
    if not math.isfinite(limit) or not 0 < limit <= MAX_USER_CODE_LIMIT_S:
        raise MnprofError(
            f"{USER_CODE_LIMIT_ENV}={text!r} is invalid; "
            f"accepted: a number of seconds in (0, {MAX_USER_CODE_LIMIT_S:g}]"
        )
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
    started, outer = time.monotonic(), 0.0
    try:  # the timer is armed inside: a limit short enough to expire at once still restores everything
        outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)  # an enclosing limit's time left (0: none)
        if outer:
            signal.setitimer(signal.ITIMER_REAL, min(seconds, outer), 1.0)
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:  # the enclosing limit keeps running, less the time spent here
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 1e-3), 1.0)


_on_overrun: Callable[[str], object] | None = None  # ends the process for the command line; None: a library
_ending = threading.RLock()  # held while mnprof writes a file, and by the watchdog as it ends the process
_running = threading.local()  # the messages of the limited blocks a thread is in (see _watchdog)


@contextmanager
def ended_on_overrun(end: Callable[[str], object]) -> Iterator[None]:
    """For the block (the command line's whole run), user code that outlives its time limit by a grace (as long
    as the limit, 0.5 to 10 s) because it defeated the timer -- it stopped it (``signal.alarm(0)``,
    ``setitimer(ITIMER_REAL, 0)``), took SIGALRM over, or swallows what is raised into it -- is ended by a watchdog
    thread: it calls ``end(message)``, which must end the process (the command line writes the one-line error and
    calls ``os._exit(2)``). Not while a file is being written (:func:`whole_write`): that finishes first, so that
    nothing is left half-written. Outside the block (mnprof as a library) only the timer applies: a library does
    not end its host's process. Code that holds the GIL inside one C call is beyond both (an outer timeout's)."""
    global _on_overrun
    previous, _on_overrun = _on_overrun, end
    try:
        yield
    finally:
        _on_overrun = previous


@contextmanager
def whole_write() -> Iterator[None]:
    """A file being written (a temporary file, then its rename): the watchdog of :func:`ended_on_overrun` waits
    for the block to finish before it ends the process."""
    with _ending:
        yield


@contextmanager
def _watchdog(seconds: float, message: str) -> Iterator[None]:
    """Call the :func:`ended_on_overrun` function with ``message`` if the block is still running after
    ``seconds`` plus the grace (nothing where there is none)."""
    end = _on_overrun
    if end is None:
        yield
        return
    finished = False
    running = _running.__dict__.setdefault("blocks", [])  # this thread's limited blocks, innermost last
    running.append(message)

    def expire() -> None:
        with _ending:
            if not finished:
                end(running[-1])  # the innermost block is the one that does not return (a factory in a forward)

    grace = min(max(seconds, GRACE_S[0]), GRACE_S[1])
    timer = threading.Timer(seconds + grace, expire)
    timer.name, timer.daemon = "mnprof-user-code-watchdog", True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        with _ending:  # a watchdog already ending the process holds it: nothing runs after this block
            finished = True
            running.pop()


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to standard output to standard error for the block: ``print`` and
    ``sys.stdout``, and file descriptor 1 itself (``os.write(1, ...)``, ``sys.__stdout__``, C extensions), so that
    nothing the user's code prints can reach mnprof's machine-readable output."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no file descriptor 1 (an embedding host): Python-level redirection only
        with redirect_stdout(sys.stderr):
            yield
        return
    try:
        if sys.__stdout__ is not None:
            sys.__stdout__.flush()
        os.dup2(2, 1)
        with redirect_stdout(sys.stderr):
            yield
    finally:
        if sys.__stdout__ is not None:
            with suppress(OSError, ValueError):
                sys.__stdout__.flush()
        os.dup2(saved, 1)
        os.close(saved)


class _ReservedStdout(io.TextIOBase):
    """``sys.stdout`` for the command line's whole run (see :func:`reserve_stdout`). Text reaches the real standard
    output only when mnprof's own thread writes inside :func:`mnprof_output`; everything else -- another thread (one
    the user's code started), a finaliser (``__del__``) that garbage collection runs at any moment, an exit handler
    -- goes to standard error. What mnprof asks of its stdout (``isatty``, ``encoding``, ``fileno``) is answered
    for the real one."""

    def __init__(self, own: io.TextIOWrapper, thread: threading.Thread) -> None:
        super().__init__()
        self._own, self._thread, self.writing = own, thread, False

    def _target(self) -> Any:
        if self.writing and threading.current_thread() is self._thread:
            return self._own
        other = sys.stderr if sys.stderr is not self else None
        return other if other is not None else sys.__stderr__

    def write(self, text: str) -> int:
        target = self._target()
        return target.write(text) if target is not None else len(text)

    def flush(self) -> None:
        self._own.flush()  # a stdout that cannot take mnprof's output (a full disk) must say so, as the real one would
        target = self._target()
        if target is not None and target is not self._own:
            with suppress(OSError, ValueError, AttributeError):
                target.flush()

    def fileno(self) -> int:
        return self._own.fileno()

    def isatty(self) -> bool:
        return self._own.isatty()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._own.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self._own.errors

    @property
    def line_buffering(self) -> bool:
        return self._own.line_buffering

    @property
    def buffer(self) -> Any:
        target = self._target()
        return target.buffer if target is not None else None

    def reconfigure(self, **options: Any) -> None:
        self._own.reconfigure(**options)


def reserve_stdout() -> None:
    """For the rest of the process (the command line's run), standard output is mnprof's alone: its descriptor is
    kept privately, and only what mnprof writes inside :func:`mnprof_output` reaches it; file descriptor 1 itself,
    and ``sys.stdout`` at any other moment or in any other thread, are standard error. Text the user's code prints
    -- from a thread it started, a finaliser, an exit handler, ``os.write(1, ...)``, a C library -- then cannot get
    into ``--format json``. Nothing happens where there is no descriptor 1 or 2 (closed: ``>&-``), or
    ``sys.stdout`` is not the process's own stream (a test's capture): :func:`stdout_to_stderr` still covers the
    user's code while it runs."""
    stdout = sys.stdout
    if not isinstance(stdout, io.TextIOWrapper) or stdout is not sys.__stdout__:
        return
    try:
        if stdout.fileno() != 1:
            return
        stdout.flush()
        own = os.dup(1)
    except (OSError, ValueError):
        return
    try:
        os.dup2(2, 1)
    except OSError:
        os.close(own)
        return
    stream = io.TextIOWrapper(
        open(own, "wb"),  # noqa: SIM115 - kept open for the rest of the process
        encoding=stdout.encoding,
        errors=stdout.errors,
        newline=None,
        line_buffering=stdout.line_buffering,
        write_through=stdout.write_through,
    )
    sys.stdout = _ReservedStdout(stream, threading.current_thread())


@contextmanager
def mnprof_output() -> Iterator[None]:
    """mnprof writes its own output (a table, a JSON document, help): within the block, ``sys.stdout`` in mnprof's
    thread is the real standard output (after :func:`reserve_stdout`; always, without it). Keep the block to the
    write itself: render first."""
    stdout = sys.stdout
    if not isinstance(stdout, _ReservedStdout):
        yield
        return
    previous, stdout.writing = stdout.writing, True
    try:
        yield
    finally:
        stdout.flush()
        stdout.writing = previous


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


class _ProcessExit(BaseException):
    """The user's code called ``os._exit``: raised in its place (see :func:`process_kept`)."""


_real_exit = os._exit  # mnprof's own way out (the watchdog's), whatever the user's code does to os._exit


def end_process(code: int) -> None:
    """End the process now with ``code``, without cleanup: ``os._exit`` as it was before any user code ran."""
    _real_exit(code)


_EXECS = ("execv", "execve")  # what os.execl, execlp, execvp, ... call in the end (os.py looks them up each time)


def _child_code(error: BaseException | None) -> int:
    """The exit code of a child process the user's code forked and that came back into mnprof's code."""
    if error is None:
        return 0
    if isinstance(error, SystemExit):
        return error.code if isinstance(error.code, int) else (0 if error.code is None else 1)
    return 1


_real_register, _real_unregister = atexit.register, atexit.unregister
_exit_handlers: dict[int, list[Callable[[], None]]] = {}  # id of a handler the user's code registered -> wrappers


def _contained_exit_handler(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
    """``atexit.register`` while the user's code runs: the handler runs at exit all the same, but what it raises
    (``sys.exit(0)`` included) is one warning line instead of a traceback; what it prints goes to stderr (see
    :func:`reserve_stdout`). A failing run ends without exit handlers (:func:`mnprof.cli.console_main`)."""

    def contained() -> None:
        try:
            function(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - anything the user's handler raises
            name = getattr(function, "__qualname__", None) or type(function).__name__
            line = f"mnprof: warning: exit handler {name} of the user's code raised {one_line(error)}\n"
            with suppress(OSError):
                os.write(2, line.encode("utf-8", "backslashreplace"))

    _exit_handlers.setdefault(id(function), []).append(contained)
    _real_register(contained)
    return function


def _unregister_contained(function: Callable[..., Any]) -> None:
    """``atexit.unregister`` while the user's code runs: the handlers it registered through mnprof's wrapper too."""
    for contained in _exit_handlers.pop(id(function), []):
        _real_unregister(contained)
    _real_unregister(function)


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
    """For the block (the user's code), the process stays mnprof's: ``os._exit`` raises instead of ending it (a
    factory that calls ``os._exit(0)`` must not pass the gate), and so does ``os.exec*`` (which would replace
    mnprof by another program: the gate would end with that program's exit code and no output); the working
    directory, the umask and the standard streams are restored after it (a factory that calls ``os.chdir`` must
    not move where mnprof writes its relative outputs, nor one that closes stderr silence mnprof's error). In a
    child process the code forked, ``os._exit`` and ``os.exec*`` work as ever, and a child that returns into
    mnprof's code ends there, silently (its exit code: 0, or its ``SystemExit``'s), instead of running on as a
    second mnprof. The code could still end the process by other means (a signal to itself); an exit handler it
    registers cannot turn a failure into success (see :func:`mnprof.cli.console_main`)."""
    import posix  # the module os._exit and os.exec* come from; patched too, so that posix._exit is caught as well

    owner = os.getpid()

    def refuse(code: int) -> None:
        if os.getpid() != owner:  # a forked child ending: let it
            _real_exit(code)
        raise _ProcessExit(f"called os._exit({code})")

    def refused_exec(name: str) -> Callable[..., None]:
        real = getattr(posix, name)

        def refused(path: object, *args: object) -> None:
            if os.getpid() != owner:  # a forked child running another program: as ever
                real(path, *args)
            raise _ProcessExit(f"called os.{name}({path!r}, ...), which would replace mnprof by another program")

        return refused

    try:
        cwd: str | None = os.getcwd()
    except OSError:  # already removed: nothing to return to
        cwd = None
    saved = os._exit, posix._exit, *(getattr(os, name) for name in _EXECS), *(getattr(posix, name) for name in _EXECS)
    registered = atexit.register, atexit.unregister
    umask = os.umask(0o022)
    os.umask(umask)
    os._exit = posix._exit = refuse  # type: ignore[assignment]
    for name in _EXECS:
        setattr(os, name, refused_exec(name))
        setattr(posix, name, getattr(os, name))
    atexit.register, atexit.unregister = _contained_exit_handler, _unregister_contained  # type: ignore[assignment]
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
            _real_exit(_child_code(failure))
        os._exit, posix._exit = saved[:2]  # type: ignore[assignment]
        atexit.register, atexit.unregister = registered  # type: ignore[assignment]
        for index, name in enumerate(_EXECS):
            setattr(os, name, saved[2 + index])
            setattr(posix, name, saved[2 + len(_EXECS) + index])
        os.umask(umask)  # a factory's os.umask(0o777) would make every file mnprof writes unreadable
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
    """Run the user's code (an import, a factory, a forward pass) contained: what it prints goes to stderr, never
    into mnprof's machine-readable stdout; its Python warnings are held (:func:`held_warnings`); it gets
    :func:`user_code_limit_s` seconds; and anything it raises, ``SystemExit`` and ``KeyboardInterrupt`` included,
    becomes a one-line :class:`MnprofError`: ``what`` and the error (the gate never passes by exiting, nor hangs
    on a factory that never returns, even one that stops the timer: see :func:`ended_on_overrun`).
    ``limited=False``: no time limit (timing a user's model, which takes as long as its budget says). Torch's
    process-wide settings are set back after it, with one warning naming ``who`` (default: ``what`` up to its last
    colon, ``model F at F-0.5-64``) and what it changed (:func:`torch_state_kept`)."""
    limit = user_code_limit_s()
    if who is None:
        owner, colon, _ = what.removesuffix(":").rpartition(": ")
        who = owner if colon else "the user's code"
    doing = what.removesuffix(":").removesuffix(" raised").removesuffix(" failed").replace("cannot import", "import")
    late = (
        f"{doing} did not finish within {limit:g} s; accepted: user code that does, or a longer limit in "
        f"${USER_CODE_LIMIT_ENV} (seconds)"
    )
    try:
        with (
            process_kept(),
            stdout_to_stderr(),
            held_warnings(),
            torch_state_kept(who, timed=not limited),  # set back after the timer stops; its warning held
            time_limit(limit) if limited else nullcontext(),
            _watchdog(limit, late) if limited else nullcontext(),  # for code that defeats the timer
        ):
            yield
    except MnprofError:
        raise
    except _TimeLimit:
        raise MnprofError(late) from None
    except KeyboardInterrupt as error:
        if _sigint_seen.is_set():  # a real Ctrl-C: the command line's interruption, not the user's code's error
            raise
        raise MnprofError(f"{what} {one_line(error)}") from None
    except BaseException as error:  # SystemExit, GeneratorExit, a BaseException of its own
        raise MnprofError(f"{what} {one_line(error)}") from None
