"""The ``mnprof`` process: runs each command in a worker process (:mod:`mnprof.worker`) and outlives it.

A user's model is code mnprof did not write; a segfault in an extension, ``abort()``, the OOM killer's SIGKILL,
``os._exit`` or ``exec`` in it would end any process it runs in without a word. So this process never imports
torch and never runs the user's code: it starts the worker (``spawn``: a new interpreter, never a ``fork`` of one
holding torch) in a process group of its own, passes it its interrupts, enforces the user code's time limits, and
waits. What the worker writes for standard output comes over the pipe and is printed when the command is done;
what the user's code prints goes to standard error. If the worker ends before it said it was done, however it
ended, this process writes one line naming what was running and how it ended, and exits 2; the measurements
already kept in the results file stay there, for ``--resume``.

This module imports only the standard library and :mod:`mnprof.worker`, :mod:`mnprof._startup`.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass, field

from mnprof import _startup, worker

__all__ = ["IN_PROCESS", "death", "supervise"]

IN_PROCESS = "--in-process"  # mnprof's first argument: run the command in this process (no boundary)
EXIT_USAGE = 2
POLL_S = 0.2  # how often the worker's life is checked where the system cannot say when it ends (no pidfd)
KILL_GRACE_S = 5.0  # after a forwarded interrupt (or its done), how long the worker has before it is ended
CANNOT_START = 120  # the worker's exit code where it cannot import mnprof or its libraries (it wrote its one line)
WORKER_CODE = f"""\
import sys
if sys.path and sys.path[0] == "":  # as the mnprof command has it: the working directory last, where it cannot shadow
    sys.path.append(sys.path.pop(0))
try:
    from mnprof import _startup
    _startup.install_signal_handlers()
    from mnprof.cli.worker import main
except BaseException as error:
    try:
        problem = _startup.broken_environment(error) if isinstance(error, Exception) else None
    except BaseException:
        problem = None
    problem = problem or (
        f"mnprof's worker process cannot import mnprof ({{type(error).__name__}}: {{error}}) with {{sys.executable}}; "
        "accepted: a Python environment where mnprof is installed"
    )
    sys.stderr.write(f"mnprof: error: {{' '.join(problem.split())}}\\n")
    raise SystemExit({CANNOT_START})
main()
"""


@dataclass
class _Worker:
    """What the worker has told this process so far."""

    process: subprocess.Popen[bytes]
    shared: int | None = None  # what runs now, in shared memory (mnprof.worker.now)
    output: bytearray = field(default_factory=bytearray)
    blocks: list[tuple[str, str, float | None]] = field(default_factory=list)  # doing, late line, deadline
    last: str | None = None  # the last block of user code that began
    kept: tuple[str, int] | None = None  # the results file and how many measurements it holds
    lock: str | None = None  # the results file's writer lock, while the worker holds it
    code: int | None = None  # the exit code it said it is done with

    def take(self, kind: bytes, payload: bytes) -> None:
        if kind == b"O":
            self.output += payload
        elif kind == b"E" and self.blocks:
            self.blocks.pop()
        elif kind in (b"B", b"K", b"D"):
            value = json.loads(payload)
            if kind == b"B":
                limit = value["limit_s"]
                self.blocks.append((value["doing"], value["late"], None if limit is None else time.monotonic() + limit))
                self.last = value["doing"]
            elif kind == b"K":
                self.kept, self.lock = (value["path"], value["count"]), value["lock"]
            else:
                self.code = value["code"]


def death(returncode: int) -> str:
    """How a process that ended with ``returncode`` (as :mod:`subprocess` gives it) ended, in words."""
    if returncode >= 0:
        return f"exited with code {returncode} before finishing"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        return f"died of signal {-returncode}"
    description = signal.strsignal(-returncode)
    how = f"died of {name} ({description.lower()})" if description else f"died of {name}"
    return how + (", as the kernel's out-of-memory killer ends a process" if -returncode == signal.SIGKILL else "")


def _kept_line(kept: tuple[str, int] | None) -> str:
    return f"; {kept[1]} measurements kept in {kept[0]}; add --resume to finish the rest" if kept and kept[1] else ""


def _describe(state: _Worker, returncode: int) -> str:
    """The line for a worker that ended with ``returncode``: what ran (the model timed now, where the shared file
    says), how it ended, and what is kept; no guess at what the user's code did where none was running."""
    how, kept = death(returncode), _kept_line(state.kept)
    if not state.blocks:
        return f"mnprof's worker process {how}{f' (after {state.last})' if state.last else ''}{kept}"
    if returncode >= 0:
        how += " (the code called os._exit or exec, or ended the process)"
    doing, _, deadline = state.blocks[-1]
    now = worker.read_now(state.shared) if state.shared is not None and deadline is None else ""
    return f"{now or doing}: the process running it {how}{kept}"


def _error(message: str) -> None:
    line = f"mnprof: error: {' '.join(message.split())}\n"
    if os.isatty(2):  # over a progress bar the worker left on the terminal, and its hidden cursor shown again
        line = "\r\x1b[2K" + line + "\x1b[?25h"
    with suppress(OSError):
        os.write(2, line.encode("utf-8", "backslashreplace"))


def _remove_lock(lock: str | None) -> None:
    """Remove the results lock a dead worker left behind, if no other process holds it now."""
    if lock is None:
        return
    with suppress(OSError):  # none left, or another sweep holds it now
        descriptor = os.open(lock, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(lock)  # removed while locked, as the store itself does
        finally:
            os.close(descriptor)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with suppress(OSError):
        os.killpg(process.pid, signal.SIGKILL)
    with suppress(OSError):
        process.kill()
    process.wait()


def _write_output(data: bytes) -> int | None:
    """Write the worker's output to standard output; an exit code if the system refuses it."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(1, view) :]
    except BrokenPipeError:  # the reader stopped early (| head): nothing is wrong
        return None
    except OSError as error:
        reason = error.strerror or error
        _error(f"standard output cannot be written ({reason}); accepted: a stdout with room, or --out FILE")
        return EXIT_USAGE
    return None


def _shared_now() -> int | None:
    """The small shared file the worker writes what runs now into (:func:`mnprof.worker.now`); ``None``: none."""
    with suppress(AttributeError, OSError):  # not Linux: a crash while timing names the families, not the configuration
        descriptor = os.memfd_create("mnprof-now")
        os.ftruncate(descriptor, worker.NOW_BYTES)
        return descriptor
    return None


def _start(args: list[str]) -> tuple[subprocess.Popen[bytes], int, int | None]:
    read, write = os.pipe()
    shared = _shared_now()
    stdout = sys.__stdout__
    described = {
        "fd": write,
        "now": shared,
        "tty": stdout is not None and os.isatty(1),
        "encoding": getattr(stdout, "encoding", None),
        "errors": getattr(stdout, "errors", None),
    }
    environment = dict(os.environ)
    environment[worker.CHANNEL_ENV] = json.dumps(described)
    if described["tty"] and "COLUMNS" not in environment:  # the worker's own stdout is stderr: tell it the width
        with suppress(OSError):
            environment["COLUMNS"] = str(os.get_terminal_size(1).columns)
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", WORKER_CODE, *args],
            stdin=subprocess.DEVNULL if os.isatty(0) else None,  # a background group reading the terminal would stop
            stdout=2 if _valid(2) else subprocess.DEVNULL,  # what the user's code prints: to standard error
            pass_fds=(write,) if shared is None else (write, shared),
            env=environment,
            process_group=0,  # its own group: a time limit ends it and every process it started
        )
    finally:
        os.close(write)
    return process, read, shared


def _valid(descriptor: int) -> bool:
    try:
        os.fstat(descriptor)
    except OSError:
        return False
    return True


def supervise(args: list[str], *, ending: bool = False) -> int:
    """Run ``mnprof ARGS`` in a worker and return the exit code (see the module). ``ending``: this process ends
    with the code (the ``mnprof`` command): from the outcome on, an interrupt is ignored (the output is whole);
    otherwise the signal handlers are restored."""
    interrupts: list[tuple[int, float]] = []
    started: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, _frame: object) -> None:
        interrupts.append((signum, time.monotonic()))
        for process in started:  # none yet: passed on once it is started
            with suppress(OSError):
                os.killpg(process.pid, signum)

    previous = {}
    for signum in _startup.SIGNALS:
        with suppress(ValueError, OSError):
            if signal.getsignal(signum) not in (signal.SIG_IGN, None):  # nohup's SIGHUP stays ignored
                previous[signum] = signal.signal(signum, forward)
    try:
        try:
            process, read, shared = _start(args)
        except OSError as error:
            reason = error.strerror or error
            _error(
                f"mnprof cannot start its worker process ({sys.executable}: {reason}); "
                "accepted: a Python that can run mnprof"
            )
            return EXIT_USAGE
        started.append(process)
        for signum, _ in interrupts[:1]:  # one that came as it started
            with suppress(OSError):
                os.killpg(process.pid, signum)
        try:
            return _wait(_Worker(process, shared=shared), read, interrupts)
        finally:
            os.close(read)
            if shared is not None:
                os.close(shared)
    finally:
        if ending:
            _startup.run_ends()  # the outcome is known (and its output written): an interrupt now is ignored
        else:
            for signum, handler in previous.items():
                with suppress(ValueError, OSError):
                    signal.signal(signum, handler)


def _timeout(state: _Worker, interrupts: list[tuple[int, float]], polling: bool) -> float | None:
    """How long the next wait may take: until the nearest time limit, or an interrupt's grace, runs out."""
    due = [deadline for _, _, deadline in state.blocks if deadline is not None]
    due += [interrupts[0][1] + KILL_GRACE_S] if interrupts else []
    wait = max(min(due) - time.monotonic(), 0.0) + 0.01 if due else None
    return min(wait or POLL_S, POLL_S) if polling else wait


def _wait(state: _Worker, read: int, interrupts: list[tuple[int, float]]) -> int:
    process, buffer, ended = state.process, bytearray(), None
    with suppress(AttributeError, OSError):  # Linux: readable when the worker ends, so waiting takes no CPU at all
        ended = os.pidfd_open(process.pid)
    watched = [read] if ended is None else [read, ended]
    try:
        while True:
            ready, _, _ = select.select(watched, [], [], _timeout(state, interrupts, polling=ended is None))
            if read in ready:
                chunk = os.read(read, 1 << 16)
                buffer += chunk
                if not chunk:  # closed: the worker and every program holding the pipe are gone
                    watched.remove(read)
            exited = process.poll() is not None
            if exited:  # what is left in the pipe (a program it started may hold it open: no waiting)
                os.set_blocking(read, False)
                with suppress(OSError):
                    while chunk := os.read(read, 1 << 16):
                        buffer += chunk
            for kind, payload in worker.decode_frames(buffer):
                state.take(kind, payload)
            if state.code is not None:
                return _finish(state)
            late = [line for _, line, deadline in state.blocks if deadline is not None and time.monotonic() > deadline]
            if late:  # the innermost block past its limit
                return _end(state, late[-1] + _kept_line(state.kept), EXIT_USAGE)
            if interrupts and not exited and time.monotonic() - interrupts[0][1] > KILL_GRACE_S:
                signum = interrupts[0][0]  # the worker has not ended (its code is in a long C call)
                return _end(state, _startup.interrupted_message(signum) + _kept_line(state.kept), 128 + signum)
            if exited:
                return _died(state, interrupts)
    finally:
        if ended is not None:
            os.close(ended)


def _end(state: _Worker, line: str, code: int) -> int:
    """End the worker's whole process group, remove the lock it held, write ``line``, and return ``code``."""
    _kill_group(state.process)
    _remove_lock(state.lock)
    _error(line)
    return code


def _finish(state: _Worker) -> int:
    """The worker said it is done: its output, then its code (whatever it does after saying so)."""
    code = state.code if state.code is not None else EXIT_USAGE
    failed = _write_output(bytes(state.output))
    with suppress(subprocess.TimeoutExpired):
        state.process.wait(timeout=KILL_GRACE_S)
    if state.process.poll() is None:
        _kill_group(state.process)
    return failed if failed is not None else code


def _died(state: _Worker, interrupts: list[tuple[int, float]]) -> int:
    """The worker ended without saying it was done."""
    returncode, signum = state.process.returncode, interrupts[0][0] if interrupts else 0
    _remove_lock(state.lock)
    if signum and returncode == 128 + signum:  # it wrote its line (still starting: nothing to keep)
        return returncode
    if returncode == CANNOT_START and state.last is None and state.kept is None:  # it wrote its line
        return EXIT_USAGE
    if signum and returncode == -signum:  # ended by the interrupt itself
        _error(_startup.interrupted_message(signum) + _kept_line(state.kept))
        return 128 + signum
    _error(_describe(state, returncode))
    return EXIT_USAGE
