"""The command line: the only place that parses arguments, prints, and picks exit codes.

Exit codes: 0 success; 1 a check found a regression; 2 bad input or an unusable file (one
line on stderr, no traceback); 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from mnprof.config import (
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
from mnprof.errors import MnprofError

__all__ = ["cli", "main"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
SUFFIX_FORMATS = {".md": "markdown", ".markdown": "markdown", ".csv": "csv", ".json": "json", ".txt": "table"}


def _err(message: str) -> None:
    click.echo(f"mnprof: error: {' '.join(message.split())}", err=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code (errors become one line on stderr)."""
    try:
        result = cli.main(args=list(argv) if argv is not None else None, prog_name="mnprof", standalone_mode=False)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.exceptions.NoArgsIsHelpError as error:
        click.echo(error.ctx.get_help(), err=True)
        return EXIT_USAGE
    except click.UsageError as error:
        hint = f" (see '{error.ctx.command_path} --help')" if error.ctx else ""
        _err(error.format_message() + hint)
        return EXIT_USAGE
    except click.ClickException as error:
        _err(error.format_message())
        return EXIT_USAGE
    except MnprofError as error:
        _err(str(error))
        return EXIT_USAGE
    except (KeyboardInterrupt, click.exceptions.Abort):
        _err("interrupted; files already written are complete, nothing was half-written")
        return EXIT_INTERRUPTED
    return result if isinstance(result, int) else 0


def _progress(total: int, description: str, quiet: bool) -> Any:
    """A rich progress bar on stderr, or a no-op when quiet or stderr is not a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[current]}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=quiet or not console.is_terminal,
    )


def count_with_progress(configs: list[Any], quiet: bool, description: str = "counting") -> list[Any]:
    """Count ``configs`` (all three counters) with a progress bar."""
    from mnprof.analysis import count_many

    with _progress(len(configs), description, quiet) as progress:
        task = progress.add_task(description, total=len(configs), current="")

        def done(config: Any) -> None:
            progress.update(task, advance=1, current=config.id)

        return count_many(configs, on_done=done)


def _emit(rendered: Any, out: Path | None) -> None:
    """Print to stdout, or write ``out`` atomically."""
    from mnprof.results import atomic_write_text

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


def _resolve_format(fmt: str | None, out: Path | None) -> str:
    if fmt is not None:
        return fmt
    if out is not None:
        return SUFFIX_FORMATS.get(out.suffix.lower(), "table")
    return "table"


def _check_out(out: Path | None) -> None:
    if out is not None:
        from mnprof.results import check_writable

        check_writable(out)


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


def configs_from(alphas: str, resolutions: str, num_classes: int, variant: str, rounding: str) -> list[Any]:
    """The configurations that the grid options describe (validated)."""
    return grid(
        parse_alphas(alphas),
        parse_resolutions(resolutions),
        num_classes=num_classes,
        variant=variant,
        rounding=rounding,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="mnprof", prog_name="mnprof")
def cli() -> None:
    """mnprof: model analysis and profiling for MobileNet-style networks.

    Builds every width (alpha) x resolution MobileNetV1 as a real PyTorch model, counts params and
    multiply-accumulates analytically, with fvcore and with thop, explains every difference by
    operator, and sets the results beside the paper's published numbers.
    """


@cli.command()
@grid_options
@click.option(
    "--view",
    type=click.Choice(["grid", "paper", "seed", "reconcile"]),
    default="grid",
    show_default=True,
    help="grid: every configuration with published values and deltas; paper: the paper's Tables 6 and 7 "
    "as it lays them out; seed: the seed note's table, what is reproduced and how; reconcile: "
    "fvcore and thop operator by operator against the analytic count.",
)
@click.option(
    "--unit",
    type=click.Choice(["macs", "flops"]),
    default="macs",
    show_default=True,
    help="macs: multiply-accumulates (the paper's Mult-Adds); flops: 2 x MACs, said so in the headers.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "markdown", "csv", "json"]),
    default=None,
    help="Output format. [default: from --out's suffix (.md, .csv, .json), else a table]",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file (atomically: an existing file is replaced whole or left untouched).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def table(
    alphas: str,
    resolutions: str,
    num_classes: int,
    variant: str,
    rounding: str,
    view: str,
    unit: str,
    fmt: str | None,
    out: Path | None,
    quiet: bool,
) -> None:
    """Params and MACs of every configuration, counted three ways, beside the published numbers.

    \b
    Examples:
      mnprof table
      mnprof table --alpha 1.0,0.6 --resolution 224,96
      mnprof table --view paper --format markdown --out tables.md
      mnprof table --format json --out table.json
    """
    from mnprof import tables

    configs = configs_from(alphas, resolutions, num_classes, variant, rounding)
    _check_out(out)
    fmt = _resolve_format(fmt, out)
    chosen = tables.View(view)
    if chosen is tables.View.PAPER:
        configs = tables.paper_configs()
    elif chosen is tables.View.SEED:
        configs = tables.seed_configs()
    reports = count_with_progress(configs, quiet)
    frame = {
        tables.View.GRID: tables.grid_frame,
        tables.View.PAPER: tables.paper_frame,
        tables.View.SEED: tables.seed_frame,
        tables.View.RECONCILE: tables.reconcile_frame,
    }[chosen](reports)
    _emit(tables.render(frame, chosen, tables.Format(fmt), tables.Unit(unit)), out)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
