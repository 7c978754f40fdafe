"""``mnprof plot``: the paper's trade-off figures with latency measured on this host, as one offline page."""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

from mnprof.cli.options import (
    Command,
    configs_from,
    grid_options,
    pass_option,
    reference_option,
    statistic_option,
)
from mnprof.cli.output import OutputPath, refuse_overwriting
from mnprof.cli.work import (
    count_instructions_with_progress,
    count_with_progress,
    measure_with_progress,
    report_runs_apart,
)
from mnprof.errors import MnprofError
from mnprof.files.write import atomic_write, atomic_write_text, check_writable
from mnprof.timing import instructions as callgrind
from mnprof.timing import plan as timing
from mnprof.timing.records import Statistic
from mnprof.timing.store import DEFAULT_RESULTS_PATH
from mnprof.views.instructions import with_instructions
from mnprof.views.plot_inputs import plot_inputs
from mnprof.views.plots import Figure, build_figures, page_html, static_image
from mnprof.views.render import families_title

FIGURES = (
    "accuracy-macs",
    "accuracy-params",
    "accuracy-training-macs",
    "latency-macs",
    "latency-activations",
    "latency-memory",
    "latency-instructions",
    "pareto",
)
LATENCY_FIGURES = ("latency-macs", "latency-activations", "latency-memory", "latency-instructions", "pareto")
SUFFIXES = (".html", ".png", ".svg")


@click.command(cls=Command)
@click.option(
    "--out",
    type=OutputPath(),
    default=Path("pareto.html"),
    show_default=True,
    help="Output: .html (one self-contained page with every figure, works offline), or .png / .svg "
    "(one figure, see --figure; needs Chrome or Chromium).",
)
@click.option(
    "--results",
    "results_paths",
    type=click.Path(dir_okay=False, path_type=Path),
    multiple=True,
    help="Results files written by mnprof table, repeatable (several hosts or runtimes are overlaid). "
    "[default: mnprof-results.json; measured first, eager batch 1, when it does not exist]",
)
@click.option(
    "--figure",
    "figures",
    type=click.Choice(FIGURES),
    multiple=True,
    help="Figures to draw, repeatable. [default: all for .html; pareto for .png/.svg, or accuracy-macs "
    "when nothing was timed]",
)
@statistic_option(
    "The latency plotted: p5 (the headline: the 5th percentile of the calls, bars its 95% CI), adjusted "
    "(the typical call at the run's median host speed), median (every call as it came) or min; bars are "
    "the IQR except for p5; see mnprof table --help."
)
@reference_option(
    "The configuration relative latency (in the hover) divides by. [default: the geometric mean of the "
    "configurations timed together]"
)
@grid_options
@pass_option(
    "training: also accuracy against the MACs of one training step (forward and backward), the figure "
    "accuracy-training-macs; the latency figures stay those of a forward pass."
)
@click.option(
    "--instructions",
    is_flag=True,
    help="Also count each configuration's instructions per forward pass under Valgrind's Callgrind (minutes, not "
    "seconds) and draw the measured latency against them (figure latency-instructions). Needs Valgrind.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def plot(
    out: Path,
    results_paths: tuple[Path, ...],
    figures: tuple[str, ...],
    statistic: str,
    reference: str | None,
    models: tuple[str, ...],
    alphas: str | None,
    resolutions: str | None,
    num_classes: int,
    variant: str,
    rounding: str,
    step: str,
    instructions: bool,
    quiet: bool,
) -> None:
    """Accuracy vs MACs and params (paper Figures 4 and 5), and latency measured here vs MACs and accuracy.

    \b
    Examples:
      mnprof plot --out pareto.html
      mnprof plot --results host-a.json --results host-b.json --out compare.html
      mnprof plot --out pareto.png --figure pareto
      mnprof plot --pass training --out training.svg --figure accuracy-training-macs

    The grid options choose the configurations of the accuracy figures and what to measure when no
    results file exists yet; the latency figures show what the results files hold.
    """
    suffix = _refuse_before_work(out, figures, step, instructions)
    grid_configs = configs_from(alphas, resolutions, num_classes, variant, rounding, models)
    paths = list(results_paths) or [DEFAULT_RESULTS_PATH]
    refuse_overwriting(out, {path: "a results file to plot" for path in paths})
    if not results_paths and not DEFAULT_RESULTS_PATH.exists():
        measure_with_progress(timing.default_plan(DEFAULT_RESULTS_PATH), grid_configs, quiet)
    inputs = plot_inputs(
        paths,
        lambda configs: count_with_progress(configs, quiet, training=step == "training"),
        grid_configs,
        statistic=Statistic(statistic),
        reference=reference,
    )
    grid = inputs.grid
    if instructions:
        grid = with_instructions(grid, count_instructions_with_progress(grid_configs, quiet))
    # the page: every figure, those of options not given (--instructions, --pass training) left out
    optional = {"latency-instructions": instructions, "accuracy-training-macs": step == "training"}
    chosen = _figures_to_draw(grid, inputs.latency, figures, suffix, optional, paths)
    _write(out, suffix, chosen, grid, inputs.provenance)
    report_runs_apart(inputs.records)  # after the work: a failing command's one line stays alone
    if not quiet:
        click.echo(f"mnprof plot: wrote {out} ({', '.join(f.key for f in chosen)})", err=True)


def _refuse_before_work(out: Path, figures: tuple[str, ...], step: str, instructions: bool) -> str:
    """Refuse an --out, --figure, --pass and --instructions that do not go together, and an --out that cannot be
    written, before any work; the output's suffix."""
    suffix = out.suffix.lower()
    if suffix not in SUFFIXES:
        raise MnprofError(f"--out {out}: cannot write {suffix or 'a file without suffix'}; accepted: .html, .png, .svg")
    if suffix != ".html" and len(figures) > 1:
        raise MnprofError(f"--out {out}: a {suffix} image holds one figure; accepted: exactly one --figure")
    if step != "training" and "accuracy-training-macs" in figures:
        raise MnprofError(
            "--figure accuracy-training-macs needs a training step counted; accepted: with --pass training"
        )
    if not instructions and "latency-instructions" in figures:
        raise MnprofError("--figure latency-instructions needs instructions counted; accepted: with --instructions")
    if instructions:  # before any work: no Valgrind, no figure
        callgrind.check_available("cpu")
    check_writable(out)
    return suffix


def _figures_to_draw(
    grid: pd.DataFrame,
    latency: pd.DataFrame | None,
    figures: tuple[str, ...],
    suffix: str,
    optional: dict[str, bool],
    paths: list[Path],
) -> list[Figure]:
    """The figures asked for (or the default for the output: the page's, or one picture), built; a figure that
    has nothing to draw is refused where it was asked for, and left out of the default page."""
    page = tuple(key for key in FIGURES if optional.get(key, True))
    wanted = figures or (page if suffix == ".html" else ("pareto",) if latency is not None else ("accuracy-macs",))
    if latency is None and any(key in LATENCY_FIGURES for key in wanted):
        asked = ", ".join(key for key in wanted if key in LATENCY_FIGURES)
        raise MnprofError(
            f"{', '.join(map(str, paths))} holds no measured latency, needed for {asked}; "
            "accepted: results from mnprof table (with timing), or --figure accuracy-macs / accuracy-params"
        )
    built = build_figures(grid, latency)
    drawn = {figure.key for figure in built if figure.figure.data}  # accuracy figures need published accuracy
    if not figures and suffix != ".html" and "pareto" in wanted and "pareto" not in drawn:
        wanted = ("latency-macs",)  # a user family has no published accuracy: its latency is the picture
    empty = [key for key in wanted if key not in drawn]
    if empty and (figures or suffix != ".html"):
        raise MnprofError(
            f"--figure {empty[0]} has nothing to draw: no published accuracy for {families_title(grid)}; "
            f"accepted: {', '.join(sorted(drawn)) or 'results from mnprof table with timing'}"
        )
    return [figure for figure in built if figure.key in wanted and figure.key in drawn]


def _write(out: Path, suffix: str, chosen: list[Figure], grid: pd.DataFrame, provenance: list[str]) -> None:
    """One page with every chosen figure (.html), or the one figure as a picture (.png, .svg)."""
    if suffix == ".html":
        title = f"mnprof: {families_title(grid)} accuracy, MACs and latency"
        atomic_write_text(out, page_html(chosen, title=title, provenance=provenance))
    else:
        image = static_image(chosen[0].figure, suffix.lstrip("."))
        atomic_write(out, lambda handle: handle.write(image))
