"""What the commands print: results to stdout or a file, progress bars and one-line messages to stderr."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from mnprof.errors import MnprofError, mnprof_output
from mnprof.files.write import atomic_write_text

__all__ = [
    "Interrupted",
    "OutputPath",
    "EXIT_REGRESSION",
    "EXIT_USAGE",
    "emit",
    "output_width",
    "error_line",
    "progress",
    "warn",
]

EXIT_REGRESSION = 1
EXIT_USAGE = 2


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with the one line that says what was kept (the command line prints it, and exits 130)."""


class OutputPath(click.Path):
    """A file mnprof writes: a path that ends in a separator (``newdir/``) names a directory, and ``Path`` would
    drop the separator and write a file named ``newdir``, so it is refused with the option's name."""

    def __init__(self) -> None:
        super().__init__(dir_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        separators = tuple(sep for sep in (os.sep, os.altsep) if sep)
        if isinstance(value, str) and value.endswith(separators):
            name = param.opts[0] if param is not None and param.opts else "the output"
            raise MnprofError(f"{name} {value} ends in {value[-1]!r}, a directory; accepted: a file path")
        return super().convert(value, param, ctx)


class _Plain(click.ParamType):
    """A number as people type it into a command: ASCII digits only. click's own types take what ``int()`` and
    ``float()`` take, other scripts' digits (``١``, ``３``) and digit separators (``1_0``) included."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and (not value.isascii() or "_" in value):
            self.fail(f"{value!r} is not a plain number: accepted: ASCII digits, without '_'", param, ctx)
        return super().convert(value, param, ctx)

    def _describe_range(self) -> str:
        """Nothing for a number without bounds (click would show ``x<=None``)."""
        if self.min is None and self.max is None:  # type: ignore[attr-defined]
            return ""
        return super()._describe_range()  # type: ignore[misc, no-any-return]


class PlainInt(_Plain, click.IntRange):
    """:class:`click.IntRange` (bounds optional) of ASCII digits only."""


class PlainFloat(_Plain, click.FloatRange):
    """:class:`click.FloatRange` (bounds optional) of ASCII digits only."""


def refuse_overwriting(out: Path | str, inputs: Mapping[Path | str, str], option: str = "--out") -> None:
    """Refuse an output that is one of the files this run reads (``inputs``: path -> what it is), by any spelling
    (``./a``, ``sub/../a``, a symlink) or a hard link to it, before anything is written."""
    target = Path(out)
    for path, what in inputs.items():
        source = Path(path)
        try:
            same = target.resolve() == source.resolve() or (
                target.exists() and source.exists() and os.path.samefile(target, source)
            )
        except (OSError, RuntimeError):  # a path too long, a symlink loop: not the same readable file
            same = False
        if same:
            raise MnprofError(f"{option} {out} is {what}, which this run reads; accepted: another path")


TERMINAL_WIDTH_WHEN_PIPED = 240


def error_line(message: str) -> None:
    """Print ``message`` as the one line ``mnprof: error: ...`` on stderr."""
    click.echo(f"mnprof: error: {' '.join(message.split())}", err=True)


def warn(message: str) -> None:
    """Print ``message`` as the one line ``mnprof: warning: ...`` on stderr."""
    click.echo(f"mnprof: warning: {' '.join(message.split())}", err=True)


def progress(quiet: bool) -> Progress:
    """A rich progress bar on stderr (description, bar, done, current item, ETA); off when quiet or not a terminal."""
    console = Console(stderr=True)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[current]}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=quiet or not console.is_terminal,
    )


def output_width(out: Path | None) -> int:
    """The columns a table printed now has: the terminal's; ``COLUMNS`` when piped (240 if unset); 240 in a file."""
    if out is not None:
        return TERMINAL_WIDTH_WHEN_PIPED
    console = Console()
    if console.is_terminal:
        return console.width
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else TERMINAL_WIDTH_WHEN_PIPED


def emit(rendered: Any, out: Path | None) -> None:
    """Print to stdout, or write ``out`` atomically (a rich renderable as plain text, :func:`output_width` wide).

    A stdout the system refuses to take (a full disk, ``> /dev/full``) is one line, not a traceback."""
    if out is not None:
        if not isinstance(rendered, str):
            capture = Console(width=TERMINAL_WIDTH_WHEN_PIPED, record=True, file=io.StringIO(), color_system=None)
            capture.print(rendered)
            rendered = capture.export_text()
        atomic_write_text(out, rendered)
        return
    try:
        _replace_what_stdout_cannot_encode()
        if isinstance(rendered, str):
            with mnprof_output():
                click.echo(rendered, nl=False)
        else:
            console = Console()
            if not console.is_terminal:
                console = Console(width=output_width(None))
            with console.capture() as capture:  # rendered first: the output window is the write alone
                console.print(rendered)
            with mnprof_output():  # as rich writes: to the stream itself (its colours only on a terminal)
                sys.stdout.write(capture.get())
        sys.stdout.flush()
    except OSError as error:
        if isinstance(error, BrokenPipeError):  # the reader stopped early (| head): nothing is wrong
            return
        raise MnprofError(
            f"standard output cannot be written ({error.strerror or error}); accepted: a stdout with room, "
            "or --out FILE"
        ) from None


def _replace_what_stdout_cannot_encode() -> None:
    """Where stdout's encoding cannot write every character (``PYTHONIOENCODING=ascii``, a C locale), write ``?``
    for those it cannot (the Δ of a header, a ✓ verdict) rather than fail half-way through a table; one character
    each, so that the columns stay aligned."""
    stream = sys.stdout
    encoding = getattr(stream, "encoding", None) or "utf-8"
    # surrogateescape (what Python takes in the C locale) still fails on a character the encoding lacks
    replaces = getattr(stream, "errors", "strict") not in ("strict", "surrogateescape", "surrogatepass")
    if replaces or encoding.lower().replace("_", "-").startswith("utf"):
        return
    with suppress(AttributeError, ValueError, OSError):  # not a TextIOWrapper (a test's capture), or closed
        stream.reconfigure(errors="replace")  # type: ignore[union-attr]
