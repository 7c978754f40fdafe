"""The project's settings file: ``[tool.mnprof]`` of ``./pyproject.toml``, read and validated in one place.

Every command reads it before it starts (:class:`mnprof.cli.options.Command`), so that a wrong setting is the same
one-line error whichever command meets it first, and no output of the run may replace the file (``--out
pyproject.toml``). What the settings mean is :mod:`mnprof.check.settings`' (the gate's defaults) and
:mod:`mnprof.model.families`' (``[tool.mnprof.families]``); their shape is ``mnprof/schemas/settings.schema.json``.
"""

from __future__ import annotations

import math
import os
import tomllib
from pathlib import Path
from typing import Any

from mnprof.errors import MnprofError, keep_unwritten
from mnprof.files.documents import read_text_file
from mnprof.files.schemas import schema_problem

__all__ = ["PYPROJECT", "tool_table"]

PYPROJECT = Path("pyproject.toml")


def tool_table(pyproject: Path | None = None) -> dict[str, Any]:
    """``[tool.mnprof]`` of ``pyproject`` (default ./pyproject.toml), checked against the settings schema: empty
    where there is no such file or table. From then on no output of this run may replace the file."""
    path = pyproject if pyproject is not None else PYPROJECT
    if not os.path.lexists(path):
        return {}
    # a directory, FIFO or device in its place, a dangling link or a loop: refused, not taken for "no settings"
    text = read_text_file(path, "settings file", "accepted: a readable pyproject.toml, or none")
    try:
        tool = tomllib.loads(text).get("tool", {})
    except tomllib.TOMLDecodeError as error:
        raise MnprofError(f"{path} is not valid TOML ({error}); fix it or remove [tool.mnprof]") from None
    except RecursionError:
        raise MnprofError(f"{path} is nested too deeply to read; fix it or remove [tool.mnprof]") from None
    except ValueError as error:  # an integer of more digits than Python converts (4,300): no setting needs one
        problem = f"{path} holds a number mnprof cannot read ({error})"
        raise MnprofError(f"{problem}; fix it or remove [tool.mnprof]") from None
    keep_unwritten(str(path), f"the {path.name} mnprof reads its settings from")
    table = tool.get("mnprof", {}) if isinstance(tool, dict) else None
    if not isinstance(table, dict):
        raise MnprofError(f"{path}: [tool.mnprof] is not a table; accepted: a [tool.mnprof] table of settings")
    where = _not_finite(table, "")
    if where is not None:  # TOML has nan and inf; a schema's bounds do not catch NaN (no comparison holds)
        raise MnprofError(f"{path} [tool.mnprof]: {where} is not a finite number; accepted: finite numbers")
    problem = schema_problem(table, "settings")  # mnprof/schemas/settings.schema.json
    if problem is not None:
        where = problem.removeprefix("$.").removeprefix("$: ").removeprefix("$ ")  # the table itself is no key
        raise MnprofError(f"{path} [tool.mnprof]: {where}")
    return table


def _not_finite(value: Any, where: str) -> str | None:
    """Where in ``value`` (a TOML table) a NaN or infinity is, as ``key[index]``, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _not_finite(item, f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}".lstrip("."))
        if found is not None:
            return found
    return None
