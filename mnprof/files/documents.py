"""Documents mnprof writes and reads: stable, diff-friendly JSON out; checked reads in (a missing, oversized or
corrupt file is one line), every string read made printable before it can reach a terminal."""

from __future__ import annotations

import json
import math
import stat
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mnprof.errors import MnprofError

__all__ = ["MAX_READ_BYTES", "dumps", "printable", "read_json_file", "read_text_file"]

# Bound when mnprof is imported: a user's module that replaces json.dumps (or json.loads) reaches its own JSON, not
# the documents mnprof writes or the files it reads.
_json_dumps, _json_loads = json.dumps, json.loads


def dumps(document: Mapping[str, Any]) -> str:
    """Stable, diff-friendly JSON (sorted keys, two-space indent, trailing newline); NaN and infinities (a rate
    divided by a zero peak, a latency that underflowed) become null: JSON has no such numbers."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        if isinstance(value, list):
            return [clean(item) for item in value]
        return value

    return _json_dumps(clean(document), indent=2, sort_keys=True, allow_nan=False) + "\n"


MAX_READ_BYTES = 512 * 2**20  # a results file of every configuration, runtime and raw sample is a few MiB


def read_text_file(path: Path, what: str, hint: str) -> str:
    """The text of ``path`` (UTF-8): a missing or unreadable file, one that is not a regular file (a device, FIFO or
    directory, by a link too) or is over :data:`MAX_READ_BYTES` is a one-line :class:`MnprofError`.

    ``what`` names the file in the message ("baseline", "results file"), ``hint`` says what to do about it.
    """
    try:
        status = Path(path).stat()  # follows a link: what is read is what it points to
        if not stat.S_ISREG(status.st_mode):
            raise MnprofError(f"{what} {path} is not a regular file (a device, FIFO or directory); {hint}")
        if status.st_size > MAX_READ_BYTES:
            raise MnprofError(
                f"{what} {path} is {status.st_size / 2**20:,.0f} MiB, more than mnprof reads "
                f"({MAX_READ_BYTES / 2**20:,.0f} MiB); {hint}"
            )
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MnprofError(f"{what} {path} does not exist; {hint}") from None
    except UnicodeDecodeError as error:
        raise MnprofError(f"{what} {path} cannot be read ({error}); {hint}") from None
    except OSError as error:  # permissions, a link loop, a name too long
        raise MnprofError(f"{what} {path} cannot be read ({error.strerror or error}); {hint}") from None


def read_json_file(path: Path, what: str, hint: str) -> Any:
    """The parsed JSON of ``path`` (read by :func:`read_text_file`), every string made :func:`printable`; a
    corrupt file (NaN or Infinity included) is a one-line :class:`MnprofError` too."""
    text = read_text_file(path, what, hint)
    try:
        document = _json_loads(
            text, parse_constant=_refuse_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys
        )
        return _printable(document)
    except json.JSONDecodeError as error:
        raise MnprofError(f"{what} {path} is corrupt (invalid JSON at line {error.lineno}); {hint}") from None
    except ValueError as error:  # NaN or Infinity, which JSON does not have and no count or time may be
        raise MnprofError(f"{what} {path} is corrupt ({error}); {hint}") from None
    except RecursionError:
        raise MnprofError(f"{what} {path} is corrupt (nested too deeply to be an mnprof file); {hint}") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different: a key given twice (``"params": 9, "params": 3``) would be read
    as the last one silently, so an edited baseline could hide a count behind another."""
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise ValueError(f"the key {printable(twice)!r} is given twice in one object")
    return document


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


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 overflows to infinity, which no count or time may be
        raise ValueError(f"{text[:40]} is too large for a number mnprof writes (it overflows to infinity)")
    return value
