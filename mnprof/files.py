"""Files mnprof reads and writes: stable JSON, the versioned table document, atomic writes, checked reads."""

from __future__ import annotations

import json
import os
import stat
import tempfile
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mnprof.errors import MnprofError
from mnprof.provenance import count_provenance

__all__ = [
    "TABLE_SCHEMA_VERSION",
    "atomic_write",
    "atomic_write_text",
    "check_regular",
    "check_writable",
    "dumps",
    "printable",
    "read_json_file",
    "table_document",
]

# Bump when a key is renamed or removed or its meaning changes; adding keys keeps the version.
# 2: timed rows' noisy, ci_halfwidth_pct, throughput_ips and the GFLOP/s follow the headline latency (the
# host-adjusted median, latency_ms_adjusted) instead of the median.
TABLE_SCHEMA_VERSION = 2


def table_document(
    rows: Sequence[Mapping[str, Any]], *, view: str, unit: str, kind: str = "mnprof.table"
) -> dict[str, Any]:
    """The JSON document for a table: ``schema_version``, ``kind``, ``environment``, ``rows`` (flat objects)."""
    return {
        "schema_version": TABLE_SCHEMA_VERSION,
        "kind": kind,
        "view": view,
        "unit": unit,
        "environment": count_provenance(),
        "rows": [dict(row) for row in rows],
    }


def dumps(document: Mapping[str, Any]) -> str:
    """Stable, diff-friendly JSON (sorted keys, two-space indent, trailing newline); NaN becomes null."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and value != value:
            return None
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        if isinstance(value, list):
            return [clean(item) for item in value]
        return value

    return json.dumps(clean(document), indent=2, sort_keys=True, allow_nan=False) + "\n"


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


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory and ``os.replace``.

    Readers see the old file or the new one, never a partial one; on failure the old file is untouched.
    """
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def atomic_write(path: Path, write: Callable[[Any], object]) -> None:
    """Call ``write(binary_file)`` on a temporary file beside ``path``, then move it into place.

    Only a regular file (or a new path) is ever replaced: see :func:`check_regular`.
    """
    path = Path(path)
    check_regular(path)
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise MnprofError(f"cannot write {path}: {error.strerror}; accepted: a path you can write") from None
    try:
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
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_json_file(path: Path, what: str, hint: str) -> Any:
    """The parsed JSON of ``path``, every string made :func:`printable`; a missing, unreadable or corrupt file
    (NaN or Infinity included) is a one-line :class:`MnprofError`.

    ``what`` names the file in the message ("baseline", "results file"), ``hint`` says what to do about it.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MnprofError(f"{what} {path} does not exist; {hint}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise MnprofError(f"{what} {path} cannot be read ({error}); {hint}") from None
    try:
        return _printable(json.loads(text, parse_constant=_refuse_constant))
    except json.JSONDecodeError as error:
        raise MnprofError(f"{what} {path} is corrupt (invalid JSON at line {error.lineno}); {hint}") from None
    except ValueError as error:  # NaN or Infinity, which JSON does not have and no count or time may be
        raise MnprofError(f"{what} {path} is corrupt ({error}); {hint}") from None
    except RecursionError:
        raise MnprofError(f"{what} {path} is corrupt (nested too deeply to be an mnprof file); {hint}") from None


def printable(text: str) -> str:
    """``text`` with every control or format character (escape sequences, newlines, bidi overrides) shown as
    U+FFFD: what a file says may reach a terminal, a Markdown table or a CI annotation, and must stay text."""
    return "".join("\ufffd" if unicodedata.category(character).startswith("C") else character for character in text)


def _printable(value: Any) -> Any:
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable(key): _printable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_printable(item) for item in value]
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")
