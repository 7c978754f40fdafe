"""Helpers shared by the commands: grid options, progress bars, output, exit codes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mnprof.model.config import (
    DEFAULT_ALPHAS,
    DEFAULT_RESOLUTIONS,
    MAX_ALPHA,
    MIN_RESOLUTION,
    Rounding,
    Variant,
    format_alpha,
    grid,
    parse_alphas,
    parse_resolutions,
)

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_REGRESSION",
    "EXIT_USAGE",
    "error_line",
    "configs_from",
    "count_with_progress",
    "emit",
    "grid_options",
    "measure_into",
    "output_options",
    "progress",
    "resolve_output",
]

EXIT_REGRESSION = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
SUFFIX_FORMATS = {".md": "markdown", ".markdown": "markdown", ".csv": "csv", ".json": "json", ".txt": "table"}


def error_line(message: str) -> None:
    """Print ``message`` as the one line ``mnprof: error: ...`` on stderr."""
    click.echo(f"mnprof: error: {' '.join(message.split())}", err=True)


def progress(quiet: bool) -> Any:
    """A rich progress bar on stderr (description, bar, done, current item, ETA); off when quiet or not a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

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


def count_with_progress(configs: list[Any], quiet: bool, description: str = "counting") -> list[Any]:
    """Count ``configs`` (all three counters) with a progress bar."""
    from mnprof.counting.count import count_many

    with progress(quiet) as bar:
        task = bar.add_task(description, total=len(configs), current="")

        def done(config: Any) -> None:
            bar.update(task, advance=1, current=config.id)

        return count_many(configs, on_done=done)


def measure_into(path: Path, configs: list[Any], quiet: bool, backends: str = "eager") -> dict[str, Any]:
    """Time ``configs`` with the default method (batch 1, all available cores) into the results file ``path``."""
    from mnprof.cli.timing import TimingRequest, measure, plan
    from mnprof.timing.engine import StopRule
    from mnprof.timing.store import read_results

    rule = StopRule()
    request = TimingRequest(
        enabled=True, backends=backends, batch_sizes="1", threads=None, device="cpu",
        target_ci_pct=rule.target_rel_ci * 100, budget_s=rule.budget_s, results=path, resume=False,
        from_results=(),
    )  # fmt: skip
    timing = plan(request)
    if timing is None:  # pragma: no cover - enabled=True always plans
        raise AssertionError("timing was not planned")
    measure(timing, configs, quiet)
    return read_results(path)


def emit(rendered: Any, out: Path | None) -> None:
    """Print to stdout, or write ``out`` atomically."""
    from mnprof.files import atomic_write_text

    if isinstance(rendered, str):
        if out is None:
            click.echo(rendered, nl=False)
        else:
            atomic_write_text(out, rendered)
        return
    from rich.console import Console

    if out is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=240)
        console.print(rendered)
        return
    capture = Console(width=240, record=True, file=_NullFile(), color_system=None)
    capture.print(rendered)
    atomic_write_text(out, capture.export_text())


class _NullFile:
    def write(self, _text: str) -> int:
        return 0

    def flush(self) -> None:
        pass


def resolve_output(fmt: str | None, out: Path | None) -> str:
    """Check that ``out`` can be written (before any work) and pick the format: given, from the suffix, or table."""
    if out is not None:
        from mnprof.files import check_writable

        check_writable(out)
    if fmt is not None:
        return fmt
    if out is not None:
        return SUFFIX_FORMATS.get(out.suffix.lower(), "table")
    return "table"


GRID_HELP = (
    f"Comma-separated width multipliers, each in (0, {MAX_ALPHA:g}]. "
    f"[default: {','.join(format_alpha(a) for a in DEFAULT_ALPHAS)}]"
)
RESOLUTION_HELP = (
    f"Comma-separated input resolutions in pixels, integers >= {MIN_RESOLUTION}. "
    f"[default: {','.join(str(r) for r in DEFAULT_RESOLUTIONS)}]"
)


def grid_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Options that choose the configurations: --alpha, --resolution, --classes, --variant, --rounding."""
    options = [
        click.option(
            "--alpha",
            "alphas",
            default=",".join(format_alpha(a) for a in DEFAULT_ALPHAS),
            metavar="LIST",
            help=GRID_HELP,
            show_default=False,
        ),
        click.option(
            "--resolution",
            "resolutions",
            default=",".join(str(r) for r in DEFAULT_RESOLUTIONS),
            metavar="LIST",
            help=RESOLUTION_HELP,
            show_default=False,
        ),
        click.option(
            "--classes",
            "num_classes",
            type=click.IntRange(min=1),
            default=1000,
            show_default=True,
            help="Classifier outputs.",
        ),
        click.option(
            "--variant",
            type=click.Choice([v.value for v in Variant]),
            default=Variant.STANDARD.value,
            show_default=True,
            help="standard: the paper's Table 1; full: separable blocks replaced by full 3x3 convs "
            "(Table 4); shallow: the five 14x14x512 blocks removed (Table 5); seed: the seed note's "
            "block, whose convs keep their bias.",
        ),
        click.option(
            "--rounding",
            type=click.Choice([r.value for r in Rounding]),
            default=Rounding.FLOOR.value,
            show_default=True,
            help="floor: int(channels x alpha), which reproduces the paper; div8: nearest multiple of 8 "
            "(TensorFlow, timm).",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def output_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--format (table, markdown, csv, json; default from --out's suffix) and --out (written atomically)."""
    function = click.option(
        "--out",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Write to this file (atomically: an existing file is replaced whole or left untouched).",
    )(function)
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "markdown", "csv", "json"]),
        default=None,
        help="Output format. [default: from --out's suffix (.md, .csv, .json), else a table]",
    )(function)


def configs_from(alphas: str, resolutions: str, num_classes: int, variant: str, rounding: str) -> list[Any]:
    """The configurations that the grid options describe (validated)."""
    return grid(
        parse_alphas(alphas),
        parse_resolutions(resolutions),
        num_classes=num_classes,
        variant=variant,
        rounding=rounding,
    )
