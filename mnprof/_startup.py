"""What the ``mnprof`` command does before anything heavy is imported.

Python imports click, rich and torch for a second or more before a command runs. Meanwhile Python's own handling
would print a ``KeyboardInterrupt`` traceback on Ctrl-C and end the process without a word on SIGTERM or SIGHUP; and
an environment that cannot import those libraries (a malformed entry point of any installed distribution, which
torch's import reads; too little memory or address space) would print the library's traceback. Here, from the first
line of mnprof's code (:mod:`mnprof.__main__` installs the handlers before it imports the command line):

- an interrupt is the one line ``mnprof: error: interrupted ...`` and exit 128 + its number (130 SIGINT, 143 SIGTERM,
  129 SIGHUP): at once while nothing has been written yet, as an interruption of the run while it runs
  (:func:`run_begins`), and ignored once its output is complete (:func:`run_ends`);
- an environment that cannot import mnprof's dependencies is one line naming the cause and what to change
  (:func:`broken_environment`), exit 2.

This module imports only :mod:`os`, :mod:`signal`, :mod:`sys` and :mod:`resource` (and what Python has loaded
already). What runs before it is Python's own start, some tens of milliseconds: a signal there ends the process by
its default action, silently, with the status a shell reports as 130, 143 or 129 all the same (a Ctrl-C while
``site`` runs its ``.pth`` files, an editable install's finder among them, is Python's own traceback).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from contextlib import suppress  # loaded with the interpreter already

try:  # now, while there is memory: it says which limit took it away when too little is left to import it
    import resource
except ImportError:  # not a Unix
    resource = None  # type: ignore[assignment]

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing itself takes milliseconds to import
    from collections.abc import Callable
    from types import FrameType, TracebackType

__all__ = [
    "INTERRUPTED",
    "SIGNALS",
    "broken_environment",
    "exit_if_broken",
    "install_signal_handlers",
    "interrupted_message",
    "run_begins",
    "run_ends",
]

# The signals that interrupt mnprof (SIGHUP where the system has it).
SIGNALS = (signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else []))
INTERRUPTED = "interrupted; files already written are complete, nothing was half-written"

# A signal within this many seconds of the one that interrupted the run is the same request (SIGTERM then SIGINT
# from a CI runner, a double Ctrl-C): the run is already ending with its one line. Later ones interrupt again.
REPEAT_IGNORED_S = 2.0
_interrupted_at = [-REPEAT_IGNORED_S]  # time.monotonic() of the last interrupt of the run

_phase = ["starting"]  # starting: nothing written yet; running: the command's run; over: its output is complete
_interrupt: list[Callable[[int, FrameType | None], object] | None] = [None]  # how the run is interrupted


def interrupted_message(signum: int) -> str:
    """:data:`INTERRUPTED`, naming the signal where it was not Ctrl-C (which goes without saying)."""
    if signum == signal.SIGINT:
        return INTERRUPTED
    return INTERRUPTED.replace("interrupted", f"interrupted ({signal.Signals(signum).name})", 1)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """The handler of :data:`SIGNALS` (see the module)."""
    phase = _phase[0]
    if phase == "over":  # the output is complete: nothing is left to interrupt
        return
    now = time.monotonic()
    if now - _interrupted_at[0] < REPEAT_IGNORED_S:  # a second signal while the first one's line is written
        return
    _interrupted_at[0] = now
    interrupt = _interrupt[0]
    if phase == "running" and interrupt is not None:
        interrupt(signum, frame)
        return
    # Before the run (Python importing click, rich, torch): nothing was written, nothing needs finishing.
    line = f"mnprof: error: {interrupted_message(signum)}\n"
    with suppress(OSError):  # no stderr: the exit code says it
        os.write(2, line.encode("utf-8", "backslashreplace"))
    os._exit(128 + signum)


def install_signal_handlers() -> None:
    """Handle :data:`SIGNALS` as the module says, each where Python's default is in place (a signal the process was
    started ignoring, ``nohup``'s SIGHUP, stays ignored; a host's own handler stays). In the main thread only."""
    for signum in SIGNALS:
        default = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
        try:
            if signal.getsignal(signum) is default:
                signal.signal(signum, _on_signal)
        except (ValueError, OSError):  # not the main thread, or a signal this system will not let be caught
            continue


def run_begins(interrupt: Callable[[int, FrameType | None], object]) -> None:
    """The command's run begins: from now on a signal calls ``interrupt(signum, frame)``, which raises the
    ``KeyboardInterrupt`` the command line turns into its one line (:func:`mnprof.errors.note_interruption`)."""
    _interrupt[0] = interrupt
    _phase[0] = "running"


def run_ends() -> None:
    """The run is over and its output complete: an interrupt is ignored from now on, through the exit handlers and
    the interpreter's shutdown (``SIG_IGN``, which the shutdown leaves in place; a Python handler it would reset to
    the signal's default action, which ends the process without a word)."""
    _phase[0] = "over"
    for signum in SIGNALS:
        try:
            signal.signal(signum, signal.SIG_IGN)  # runs a signal already pending first: _on_signal ignores it
        except (ValueError, OSError):
            continue


# ---------------------------------------------------------------- an environment that cannot import what mnprof needs

_MEMORY_WORDS = ("failed to map segment", "cannot allocate memory", "out of memory")


def _describe(error: BaseException) -> str:
    """``Type: message`` on one line."""
    try:
        text = " ".join(str(error).split())
    except Exception:  # noqa: BLE001 - a message that cannot be shown
        text = ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and the errors it was raised from or during."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain and len(chain) < 16:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _frame_modules(traceback: TracebackType | None) -> list[str]:
    """The modules of a traceback's frames, outermost first."""
    names = []
    while traceback is not None:
        name = traceback.tb_frame.f_globals.get("__name__")
        names.append(name if isinstance(name, str) else "")
        traceback = traceback.tb_next
    return names


def _not_mnprofs(name: str) -> bool:
    """Whether ``name`` is a module of an installed package: neither mnprof's nor Python's own (the import
    machinery, the ``python -m`` runner, the standard library that a package imports in turn)."""
    top = name.split(".")[0]
    own = ("mnprof", "__main__", "_frozen_importlib", "_frozen_importlib_external")
    return bool(top) and top not in own and top not in sys.stdlib_module_names


def _failing_package(error: BaseException) -> str | None:
    """The package mnprof imported that failed (``torch``): the outermost frame of another package's code, else
    the module an ``ImportError`` names."""
    for name in _frame_modules(error.__traceback__):
        if _not_mnprofs(name):
            return name.split(".")[0]
    named = getattr(error, "name", None) if isinstance(error, ImportError) else None
    return named.split(".")[0] if isinstance(named, str) and _not_mnprofs(named) else None


def _out_of_memory(error: BaseException) -> bool:
    import errno  # preloaded by Python itself

    for each in _chain(error):
        if isinstance(each, MemoryError):
            return True
        if isinstance(each, OSError) and each.errno == errno.ENOMEM:
            return True
        if isinstance(each, (ImportError, OSError)) and any(word in str(each).lower() for word in _MEMORY_WORDS):
            return True
        if isinstance(each, SystemError) and _memory_limits():  # the interpreter's own failure, short of memory
            return True
    return False


def _memory_limits() -> str:
    """The limits of this process that take memory away (``ulimit -v``, ``ulimit -d``), as text; '' where none."""
    limits = []
    try:
        for name, option, what in (("RLIMIT_AS", "-v", "address space"), ("RLIMIT_DATA", "-d", "data segment")):
            soft, _ = resource.getrlimit(getattr(resource, name))
            if soft != resource.RLIM_INFINITY:
                limits.append(f"the {what} is limited to {soft // 1024} KiB (ulimit {option})")
    except Exception:  # noqa: BLE001 - not a Unix, or too little memory left even for this: say what is known
        pass
    return "; " + "; ".join(limits) if limits else ""


def _bad_line(text: str) -> str:
    """Where an ``entry_points.txt`` is malformed, in words (the first line that is neither a ``[group]`` header, a
    comment nor ``name = value``); '' where no such line is found."""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")) or (stripped.startswith("[") and stripped.endswith("]")):
            continue
        if "=" not in stripped:
            return f"line {number} {stripped[:80]!r} has no '='"
    return ""


def _unreadable_entry_points() -> str | None:
    """The first installed distribution whose entry points cannot be read, as it is looked up by
    ``importlib.metadata.entry_points()``, in words: its name, version, file and what is wrong; None where all can."""
    from importlib import metadata

    seen = set()
    for distribution in metadata.distributions():
        key = getattr(distribution, "_normalized_name", None)  # entry_points() reads the first of a name only
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        try:
            distribution.entry_points  # noqa: B018 - parsed here, as entry_points() parses them
        except Exception as error:  # noqa: BLE001 - whatever the parser raises on a malformed file
            try:
                name = f"{distribution.metadata['Name']} {distribution.version}"
            except Exception:  # noqa: BLE001 - metadata as broken as its entry points
                name = "(unnamed)"
            where = getattr(distribution, "_path", None)
            path = os.path.join(str(where), "entry_points.txt") if where is not None else "entry_points.txt"
            try:
                what = _bad_line(distribution.read_text("entry_points.txt") or "")
            except Exception:  # noqa: BLE001 - unreadable
                what = ""
            return f"the installed distribution {name} has a malformed {path} ({what or _describe(error)})"
    return None


def broken_environment(error: BaseException) -> str | None:
    """The one-line error (without ``mnprof: error:``) for ``error``, raised while mnprof imported what it needs,
    where the environment is what is wrong: too little memory or address space, an installed distribution's
    malformed entry points, a dependency missing or unable to load. None for anything else (an error in mnprof's own
    code, whose traceback is wanted)."""
    try:
        return _broken_environment(error)
    except Exception:  # noqa: BLE001 - too little memory left even to describe it
        if _out_of_memory(error):
            return (
                "too little memory or address space to import what mnprof needs; accepted: a larger limit "
                "(ulimit -v unlimited) or more free memory"
            )
        return None


def _broken_environment(error: BaseException) -> str | None:
    package = _failing_package(error)
    if _out_of_memory(error):
        return (
            f"too little memory or address space to import {package or 'what mnprof needs'} "
            f"({_describe(error)}{_memory_limits()}); accepted: a larger limit (ulimit -v unlimited) or more free "
            "memory"
        )
    modules = _frame_modules(error.__traceback__)
    if any(name.startswith(("importlib.metadata", "importlib_metadata")) for name in modules):
        try:
            broken = _unreadable_entry_points()
        except Exception:  # noqa: BLE001 - looking for it failed as well: say what is known
            broken = None
        reader = f"importing {package}" if package else "mnprof"
        if broken is not None:
            return (
                f"{broken}, and {reader} reads every installed distribution's entry points; accepted: lines "
                "'name = module:object' under '[group]' headers: repair the file, or remove that distribution"
            )
        return (
            f"an installed distribution's metadata cannot be read ({_describe(error)}), and {reader} reads it; "
            "accepted: an environment whose distributions' metadata is well formed: repair or remove the broken one"
        )
    if "TORCH_DEVICE_BACKEND_AUTOLOAD" in str(error):  # torch loads the device backends distributions register
        return (
            f"importing torch failed: {_describe(error)}; accepted: TORCH_DEVICE_BACKEND_AUTOLOAD=0, or repair or "
            "remove the distribution whose 'torch.backends' entry point names that extension"
        )
    if isinstance(error, (ImportError, OSError)) and package is not None:
        return (
            f"cannot import {package} ({_describe(error)}); accepted: an environment where mnprof's dependencies "
            f"import: install or repair {package} (e.g. pip install --force-reinstall of the distribution providing it)"
        )
    return None


def exit_if_broken(error: BaseException) -> None:
    """Where :func:`broken_environment` names ``error``'s cause, write it as the one line ``mnprof: error: ...``
    and end the process with exit code 2; else return (the caller raises ``error`` as ever)."""
    problem = broken_environment(error)
    if problem is None:
        return
    line = f"mnprof: error: {' '.join(problem.split())}\n"
    with suppress(OSError):
        os.write(2, line.encode("utf-8", "backslashreplace"))
    os._exit(2)  # nothing was written, nothing is left to finish
