"""Atomic writes (a temporary file beside the target, then ``os.replace``; several files all or none) and the
checks, before any work, that a path can be written and is a regular file."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mnprof.errors import MnprofError, read_by_this_run

__all__ = [
    "atomic_write",
    "atomic_write_all",
    "atomic_write_text",
    "check_creatable",
    "check_regular",
    "check_writable",
    "make_parent",
]


def check_regular(path: Path) -> None:
    """Refuse a target that exists and is not a regular file (a device, FIFO, socket or symbolic link): mnprof
    replaces its outputs whole, which would replace such a node with a file."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # nothing there: the parent directory is checked apart
        return
    except OSError as error:
        reason = error.strerror
        raise MnprofError(f"--out {path} cannot be inspected ({reason}); accepted: a path you can write") from None
    if stat.S_ISDIR(mode):
        raise MnprofError(f"--out {path} is a directory; accepted: a file path")
    if not stat.S_ISREG(mode):
        kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file (a device, FIFO or socket)"
        raise MnprofError(f"--out {path} is {kind}; accepted: a regular file or a new path")


def check_writable(path: Path) -> None:
    """Fail early, before any work, when ``path`` cannot be written (or is not a regular file)."""
    check_regular(path)
    parent = path.parent
    if not parent.is_dir():
        raise MnprofError(f"--out {path}: directory {parent} does not exist; accepted: a path in an existing directory")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise MnprofError(f"--out {path} is not writable; accepted: a path you can write")


def check_creatable(path: Path) -> None:
    """As :func:`check_writable`, for mnprof's own default output place (``reports/baseline.json``), whose missing
    directories :func:`make_parent` creates just before the file is written: the nearest directory that exists
    must be one this process can write in, and nothing between it and the file may be another kind of node.
    A path the user named keeps :func:`check_writable`'s rule: its directory must exist."""
    check_regular(path)
    ancestor = path.parent
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise MnprofError(f"--out {path}: {ancestor} is not a directory; accepted: a path in a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise MnprofError(f"--out {path} is not writable; accepted: a path you can write")


def make_parent(path: Path) -> None:
    """Create ``path``'s missing directories (see :func:`check_creatable`), right before the file is written."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise MnprofError(
            f"cannot create the directory of {path}: {error.strerror or error}; accepted: a path you can write"
        ) from None


def _encoded(text: str) -> bytes:
    """``text`` as UTF-8; a path that is not UTF-8 (its bytes kept as surrogates) is shown as ``\\udcff``, as JSON
    writes it, instead of failing the write."""
    return text.encode("utf-8", "backslashreplace")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory and ``os.replace``.

    Readers see the old file or the new one, never a partial one; on failure the old file is untouched.
    """
    atomic_write(path, lambda handle: handle.write(_encoded(text)))


def atomic_write(path: Path, write: Callable[[Any], object]) -> None:
    """Call ``write(binary_file)`` on a temporary file beside ``path``, then move it into place.

    Only a regular file (or a new path) is ever replaced: see :func:`check_regular`.
    """
    _atomic_write(Path(path), write)


def atomic_write_all(texts: Mapping[Path, str]) -> None:
    """Write several text files all or none: every one to a temporary file beside it first, and only when all
    are written (a full disk or a file-size limit stops it before any is replaced) moved into place."""
    staged: list[tuple[str, Path]] = []
    try:
        for path, text in texts.items():
            staged.append((_staged(Path(path), lambda handle, text=text: handle.write(_encoded(text))), path))
        for temporary, path in staged:
            os.replace(temporary, path)
    except OSError as error:
        reason = error.strerror or str(error)
        failed = getattr(error, "filename", None) or "a file"
        raise MnprofError(
            f"cannot write {failed}: {reason} (nothing was replaced); accepted: a path with room to write"
        ) from None
    finally:
        for temporary, _ in staged:
            Path(temporary).unlink(missing_ok=True)


def _staged(path: Path, write: Callable[[Any], object]) -> str:
    """A temporary file beside ``path`` holding what ``write`` wrote, with ``path``'s mode (or the umask's)."""
    _check_unwritten(path)
    check_regular(path)
    descriptor, temporary = _temporary(path)
    try:
        _fill(descriptor, temporary, path, write)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        error.filename = str(path)
        raise
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return temporary


def _temporary(path: Path) -> tuple[int, str]:
    # a short prefix: a name near the 255-byte limit would otherwise make the temporary one too long
    return tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=".tmp", dir=path.parent)


def _fill(descriptor: int, temporary: str, path: Path, write: Callable[[Any], object]) -> None:
    """Write through ``write`` into the open temporary file, to disk, and give it ``path``'s mode (or the umask's)."""
    with os.fdopen(descriptor, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    if path.exists():
        os.chmod(temporary, path.stat().st_mode & 0o777)
    else:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)


def _check_unwritten(path: Path) -> None:
    what = read_by_this_run(path)
    if what is not None:
        raise MnprofError(f"--out {path} is {what}, which this run reads; accepted: another path")


def _atomic_write(path: Path, write: Callable[[Any], object]) -> None:
    _check_unwritten(path)
    check_regular(path)
    try:
        descriptor, temporary = _temporary(path)
    except OSError as error:
        raise MnprofError(f"cannot write {path}: {error.strerror}; accepted: a path you can write") from None
    try:
        _fill(descriptor, temporary, path, write)
        os.replace(temporary, path)
    except OSError as error:  # a full disk, a file-size limit (EFBIG), a quota: the old file is untouched
        Path(temporary).unlink(missing_ok=True)
        reason = error.strerror or str(error)
        raise MnprofError(
            f"cannot write {path}: {reason} (it is left as it was); accepted: a path with room to write"
        ) from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
