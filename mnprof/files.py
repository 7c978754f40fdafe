"""Files mnprof reads and writes: stable JSON, the versioned table document, atomic writes, checked reads."""

from __future__ import annotations

import functools
import json
import math
import os
import stat
import tempfile
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mnprof.errors import MnprofError, read_by_this_run
from mnprof.provenance import count_provenance

__all__ = [
    "TABLE_SCHEMA_VERSION",
    "atomic_write",
    "atomic_write_all",
    "atomic_write_text",
    "check_creatable",
    "check_regular",
    "check_writable",
    "dumps",
    "make_parent",
    "printable",
    "read_json_file",
    "read_text_file",
    "table_document",
]

# Bump when a key is renamed or removed or its meaning changes; adding keys keeps the version.
# 2: timed rows' noisy, ci_halfwidth_pct, throughput_ips and the GFLOP/s follow the headline latency (the
# host-adjusted median, latency_ms_adjusted) instead of the median.
# 3: the headline latency is the 5th percentile of the calls (latency_ms_p5); noisy, ci_halfwidth_pct,
# the rates and the default latency_ms follow it.
# 4: noisy judges the headline's interval relative to its run (rel_ci_halfwidth_pct) where three or more
# configurations were timed together.
TABLE_SCHEMA_VERSION = 4


def table_document(
    rows: Sequence[Mapping[str, Any]], *, view: str, unit: str | None, kind: str = "mnprof.table"
) -> dict[str, Any]:
    """The JSON document for a table: ``schema_version``, ``kind``, ``environment``, ``rows`` (flat objects);
    ``unit`` (macs or flops) where the rows count operations."""
    document: dict[str, Any] = {"schema_version": TABLE_SCHEMA_VERSION, "kind": kind, "view": view}
    if unit is not None:
        document["unit"] = unit
    return {**document, "environment": count_provenance(), "rows": [dict(row) for row in rows]}


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


# ------------------------------------------------------------------------------ published schemas

SCHEMAS_DIR = Path(__file__).parent / "schemas"
SCHEMAS = ("results", "baseline", "settings", "table")


@functools.cache
def schema(name: str) -> dict[str, Any]:
    """The published JSON Schema (draft 2020-12) of one of mnprof's files: ``mnprof/schemas/<name>.schema.json``."""
    return json.loads((SCHEMAS_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@functools.cache
def _validator(name: str) -> Any:
    import jsonschema  # 65 ms, paid only by the commands that read a file

    # JSON Schema counts 5.0 as an integer; no count or size mnprof writes is a float, so 5.0 is refused.
    strict = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: type(value) is int
    )
    validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=strict)
    return validator(schema(name))


def _short(value: Any) -> str:
    if isinstance(value, (dict, list)):
        text = type(value).__name__
    else:  # a TOML date or time is no JSON value: shown as text
        text = json.dumps(value, ensure_ascii=False, default=str)
    text = {"dict": "an object", "list": "an array"}.get(text, text)
    return text if len(text) <= 40 else text[:37] + "..."


def _accepted(error: Any) -> str:
    """What the schema accepts where ``error`` failed, in words."""
    keyword, value = error.validator, error.validator_value
    words = {"object": "an object", "array": "an array", "string": "text", "number": "a number",
             "integer": "an integer", "boolean": "true or false", "null": "null"}  # fmt: skip
    if keyword in ("oneOf", "anyOf"):  # each alternative's first failure, in words
        return " or ".join(dict.fromkeys(_accepted(sub) for sub in error.context if not sub.relative_path))
    if keyword == "type":
        types = value if isinstance(value, list) else [value]
        return " or ".join(words.get(t, t) for t in types)
    if keyword == "required":
        return "an object with " + ", ".join(value)
    bounds = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
    if keyword in bounds:
        return f"a number {bounds[keyword]} {value}"
    if keyword == "enum":
        return "one of " + ", ".join(json.dumps(v) for v in value)
    if keyword == "const":
        return json.dumps(value)
    if keyword in ("minItems", "minLength"):
        return f"at least {value} item(s)"
    if keyword == "minProperties":
        return f"an object with at least {value} key(s)"
    if keyword == "pattern":
        return f"text matching {value}"
    if keyword == "not" and isinstance(value, dict) and set(value) == {"pattern"}:
        return f"text with nothing matching {value['pattern']}"
    if keyword == "additionalProperties" and value is False:
        return "only " + ", ".join(error.schema.get("properties", {}))
    return " ".join(str(error.message).split())[:120]


def schema_problem(document: Any, name: str) -> str | None:
    """The first place where ``document`` breaks the published schema ``name``, in one line (its JSON path, what
    is there and what is accepted), or None."""
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator(name).iter_errors(document))
    if error is None:
        return None
    if error.validator == "required":
        missing = next((key for key in error.validator_value if key not in error.instance), "?")
        return f"{error.json_path} lacks {missing}; accepted: {_accepted(error)}"
    if error.validator == "additionalProperties" and error.validator_value is False:
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"{error.json_path}: unknown key {printable(str(extra[0]))!r}; accepted: {_accepted(error)}"
    if "propertyNames" in error.schema_path:  # a key, not a value, is wrong
        accepted = f"keys matching {error.validator_value}" if error.validator == "pattern" else _accepted(error)
        return f"{error.json_path} has the key {_short(error.instance)}; accepted: {accepted}"
    return f"{error.json_path} is {_short(error.instance)}; accepted: {_accepted(error)}"
