"""The worker side of the process boundary (:mod:`mnprof.supervisor` is the other): the process that runs a command,
its models and the user's code, and tells the ``mnprof`` process what it is doing over a pipe.

The ``mnprof`` process starts this one (``python -c`` calling :func:`mnprof.cli.worker.main`) with its standard
output connected to standard error, so that nothing the user's code prints, by any means (``print``,
``os.write(1, ...)``, a C library), can reach mnprof's output, which travels over the pipe instead
(:class:`Channel`), with the user code's time limits (:func:`begin`, :func:`end`, called by
:func:`mnprof.user_code.user_code`), the measurements kept so far (:func:`kept`) and the exit code (:func:`done`).

Frames: one byte for the kind, four for the length (big-endian), then the payload: ``O`` output bytes, ``B`` a
limited or unlimited block of user code begins (JSON: ``doing``, ``late``, ``limit_s``), ``E`` it ends, ``K`` a
measurement was kept (JSON: ``path``, ``count``, ``lock``), ``D`` the command is done (JSON: ``code``). Which
model's timed call runs now changes too often for a frame (it would wake the ``mnprof`` process between timed
calls): :func:`now` writes it into a small shared file instead, read only if this process dies. Outside a worker
(mnprof as a library, the tests, ``mnprof --in-process``) every function here does nothing.

This module imports only the standard library: the ``mnprof`` process imports it too.
"""

from __future__ import annotations

import io
import json
import mmap
import os
import struct
import sys
import threading
from contextlib import suppress
from typing import Any

__all__ = ["CHANNEL_ENV", "Channel", "begin", "connect", "decode_frames", "done", "end", "kept", "now", "read_now"]

CHANNEL_ENV = "MNPROF_WORKER_CHANNEL"  # set by the mnprof process: the pipe's descriptor and stdout's nature, JSON
HEADER = struct.Struct(">cI")

NOW_BYTES = 256  # the shared record of what runs now: two bytes of length, then UTF-8

_channel: Channel | None = None
_now: Any = None  # the shared record's mmap, in a worker
_now_text = [""]


class Channel(io.RawIOBase):
    """The write end of the pipe to the ``mnprof`` process: whole frames, one writer at a time; as a raw stream,
    mnprof's own standard output (``O`` frames)."""

    def __init__(self, descriptor: int) -> None:
        self.descriptor, self.owner, self._lock = descriptor, os.getpid(), threading.Lock()

    def send(self, kind: bytes, payload: bytes) -> None:
        if os.getpid() != self.owner:  # a child the user's code forked: never speaks for the worker
            return
        frame = HEADER.pack(kind, len(payload)) + payload
        with self._lock:
            view = memoryview(frame)
            while view:
                view = view[os.write(self.descriptor, view) :]

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        payload = bytes(data)
        self.send(b"O", payload)
        return len(payload)


def decode_frames(buffer: bytearray) -> list[tuple[bytes, bytes]]:
    """The whole frames at the start of ``buffer``, removed from it (a partial frame stays)."""
    frames = []
    while len(buffer) >= HEADER.size:
        kind, length = HEADER.unpack_from(buffer)
        if len(buffer) < HEADER.size + length:
            break
        frames.append((kind, bytes(buffer[HEADER.size : HEADER.size + length])))
        del buffer[: HEADER.size + length]
    return frames


def _send(kind: bytes, value: dict[str, Any] | None = None) -> None:
    """A frame to the ``mnprof`` process (a JSON payload), where this process is its worker."""
    if _channel is not None:
        _channel.send(kind, b"" if value is None else json.dumps(value).encode("utf-8"))


def begin(doing: str, late: str, limit_s: float | None) -> None:
    """The user's code ``doing`` (``model F at F-0.5-64: counting``) runs now, for at most ``limit_s`` seconds
    (``None``: as long as it takes); past that the ``mnprof`` process ends this one and writes ``late``."""
    _send(b"B", {"doing": doing, "late": late, "limit_s": limit_s})


def end() -> None:
    """The innermost block :func:`begin` announced is over."""
    _send(b"E")


def kept(path: str, count: int, lock: str | None) -> None:
    """``count`` measurements are now kept in the results file ``path`` (what ``--resume`` would continue from),
    whose writer lock is the file ``lock`` (removed by the ``mnprof`` process if this one dies holding it)."""
    _send(b"K", {"path": path, "count": count, "lock": lock})


def now(doing: str) -> None:
    """What runs now (``model F at F-0.5-64: timed``), for the ``mnprof`` process's line if this process dies:
    a write to shared memory, no system call (called between timed calls)."""
    if _now is None or doing == _now_text[0]:
        return
    _now_text[0] = doing
    data = doing.encode("utf-8", "replace")[: NOW_BYTES - 2]
    _now[2 : 2 + len(data)] = data
    _now[0:2] = len(data).to_bytes(2, "big")


def read_now(descriptor: int) -> str:
    """What :func:`now` last wrote in the shared file ``descriptor`` ('' if nothing)."""
    with suppress(OSError):
        data = os.pread(descriptor, NOW_BYTES, 0)
        return data[2 : 2 + int.from_bytes(data[:2], "big")].decode("utf-8", "replace")
    return ""


def done(code: int) -> None:
    """The command is over with exit ``code``: what the ``mnprof`` process exits with, whatever happens after."""
    _send(b"D", {"code": code})


class ReservedStdout(io.TextIOBase):
    """``sys.stdout`` in a worker: mnprof's own writes (on its main thread, inside
    :func:`mnprof.errors.mnprof_output`) go to the channel; anything else written to it (the user's code, from any
    thread) goes to standard error."""

    def __init__(self, own: io.TextIOWrapper, tty: bool) -> None:
        self.own, self.tty, self.writing, self.thread = own, tty, False, threading.main_thread()

    def _target(self) -> Any:
        if self.writing and threading.current_thread() is self.thread:
            return self.own
        return sys.stderr

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self.own.flush()
        if sys.stderr is not None:
            sys.stderr.flush()

    def fileno(self) -> int:
        return 1  # standard error's, in a worker

    def isatty(self) -> bool:
        return self.tty  # the mnprof process's standard output: decides colours and widths

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.own.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self.own.errors

    @property
    def buffer(self) -> Any:  # the binary stream of whichever stream a write would go to now
        return getattr(self._target(), "buffer", None)

    def reconfigure(self, **options: Any) -> None:
        self.own.reconfigure(**options)


def connect() -> bool:
    """Take the channel the ``mnprof`` process described in ``$MNPROF_WORKER_CHANNEL`` (and hide it from the user's
    code, and the variable from the programs it runs); ``False`` where there is none (not a worker)."""
    global _channel, _now
    setting = os.environ.pop(CHANNEL_ENV, None)
    if setting is None:
        return False
    described = json.loads(setting)
    _channel = Channel(described["fd"])
    os.set_inheritable(described["fd"], False)  # a program the user's code runs does not hold the pipe open
    if described["now"] is not None:
        os.set_inheritable(described["now"], False)
        _now = mmap.mmap(described["now"], NOW_BYTES)
    own = io.TextIOWrapper(
        io.BufferedWriter(_channel),
        encoding=described.get("encoding") or "utf-8",
        errors=described.get("errors") or "strict",
        write_through=True,
    )
    sys.stdout = ReservedStdout(own, bool(described.get("tty")))
    return True
