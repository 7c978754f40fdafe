"""``mnprof plot``: the paper's trade-off figures with latency measured on this host, as one offline page."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from mnprof.cli import cli
from mnprof.cli.options import count_with_progress, grid_options, measure_into
from mnprof.errors import MnprofError
from mnprof.timing.store import processor

FIGURES = ("accuracy-macs", "accuracy-params", "latency-macs", "pareto")
LATENCY_FIGURES = ("latency-macs", "pareto")
SUFFIXES = (".html", ".png", ".svg")


def _series(row: dict[str, Any], documents: int) -> str:
    """How a series is told apart in the legend: runtime and batch, plus host and threads when overlaying."""
    where = "GPU" if row.get("device") == "cuda" else f"{row['threads']} threads"
    label = f"{row['backend']}, batch {row['batch_size']}, {where}"
    if documents > 1:
        label = f"{processor(row)} ({(row.get('host') or '')[:6]}): {label}"
    return label


def _provenance(documents: Sequence[dict[str, Any]], paths: Sequence[Path]) -> list[str]:
    lines = []
    for path, document in zip(paths, documents, strict=True):
        env = document["environment"]
        rows = [row for row in document["measurements"] if not row.get("error")]
        backends = sorted({row["backend"] for row in rows})
        threads = sorted({row["threads"] for row in rows})
        gpu = f" and {env['gpu']}" if env.get("gpu") and any(row.get("device") == "cuda" for row in rows) else ""
        lines.append(
            f"{path.name}: measured {env.get('date', '?')} on {env.get('cpu_model') or 'an unidentified CPU'}{gpu} "
            f"({env.get('available_cores', '?')} cores available, host fingerprint {env.get('host_fingerprint')}), "
            f"threads {', '.join(map(str, threads)) or '-'}, runtimes {', '.join(backends) or '-'}, "
            f"torch {env.get('torch')}, mnprof {env.get('mnprof')}; {len(rows)} measurements."
        )
    lines.append(
        "Accuracy is published data (TF-slim's mobilenet_v1.md and the paper), never measured by mnprof; "
        "MACs and params are mnprof's exact counts."
    )
    return lines


def _configs_of(rows: Sequence[dict[str, Any]]) -> list[Any]:
    from mnprof.model.config import ModelConfig

    seen: dict[str, Any] = {}
    for row in rows:
        config = ModelConfig(
            row["alpha"], row["resolution"], row.get("num_classes", 1000), row.get("variant", "standard"),
            row.get("rounding", "floor"),
        )  # fmt: skip
        seen.setdefault(config.id, config)
    return list(seen.values())


def plot_inputs(
    paths: Sequence[Path], grid_configs: Sequence[Any] = (), quiet: bool = True
) -> tuple[Any, Any, list[str]]:
    """Read results files and count: (grid rows, latency rows with a ``series`` label or None, provenance lines).

    The grid holds ``grid_configs`` (the paper's 16 when empty) and every configuration measured in the files.
    """
    import pandas as pd

    from mnprof.model.config import default_grid
    from mnprof.timing.store import read_results, results_rows
    from mnprof.views.grid import grid_frame

    documents = [read_results(path) for path in paths]
    rows = results_rows(documents)
    timed = [dict(row, series=_series(row, len(documents))) for row in rows if row.get("latency_ms_median")]
    configs = list({c.id: c for c in [*(grid_configs or default_grid()), *_configs_of(rows)]}.values())
    grid = grid_frame(count_with_progress(configs, quiet))
    return grid, pd.DataFrame(timed) if timed else None, _provenance(documents, paths)


def static_image(figure: Any, fmt: str) -> bytes:
    """plotly's own export (kaleido), which drives a local Chrome/Chromium."""
    try:
        return figure.to_image(format=fmt, width=1100, height=620, scale=1)  # type: ignore[no-any-return]
    except Exception as error:  # kaleido missing, or no browser for it to drive
        raise MnprofError(
            f"static {fmt} export failed ({type(error).__name__}: {error}); it needs kaleido and Chrome or Chromium "
            "(apt-get install chromium); accepted instead: --out FILE.html"
        ) from None


@cli.command()
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
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
@grid_options
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def plot(
    out: Path,
    results_paths: tuple[Path, ...],
    figures: tuple[str, ...],
    alphas: str,
    resolutions: str,
    num_classes: int,
    variant: str,
    rounding: str,
    quiet: bool,
) -> None:
    """Accuracy vs MACs and params (paper Figures 4 and 5), and latency measured here vs MACs and accuracy.

    \b
    Examples:
      mnprof plot --out pareto.html
      mnprof plot --results host-a.json --results host-b.json --out compare.html
      mnprof plot --out pareto.png --figure pareto

    The grid options choose the configurations of the accuracy figures and what to measure when no
    results file exists yet; the latency figures show what the results files hold.
    """
    from mnprof.cli.options import configs_from
    from mnprof.files import atomic_write, atomic_write_text, check_writable
    from mnprof.timing.store import DEFAULT_RESULTS_PATH
    from mnprof.views.plots import build_figures, page_html

    suffix = out.suffix.lower()
    if suffix not in SUFFIXES:
        raise MnprofError(f"--out {out}: cannot write {suffix or 'a file without suffix'}; accepted: .html, .png, .svg")
    if suffix != ".html" and len(figures) > 1:
        raise MnprofError(f"--out {out}: a {suffix} image holds one figure; accepted: exactly one --figure")
    check_writable(out)
    grid_configs = configs_from(alphas, resolutions, num_classes, variant, rounding)
    paths = list(results_paths) or [DEFAULT_RESULTS_PATH]
    if not results_paths and not DEFAULT_RESULTS_PATH.exists():
        measure_into(DEFAULT_RESULTS_PATH, grid_configs, quiet)
    grid, latency, provenance = plot_inputs(paths, grid_configs, quiet)
    wanted = figures or (FIGURES if suffix == ".html" else ("pareto",) if latency is not None else ("accuracy-macs",))
    if latency is None and any(key in LATENCY_FIGURES for key in wanted):
        asked = ", ".join(key for key in wanted if key in LATENCY_FIGURES)
        raise MnprofError(
            f"{', '.join(map(str, paths))} holds no measured latency, needed for {asked}; "
            "accepted: results from mnprof table (with timing), or --figure accuracy-macs / accuracy-params"
        )
    chosen = [figure for figure in build_figures(grid, latency) if figure.key in wanted]
    if suffix == ".html":
        title = "mnprof: MobileNetV1 accuracy, MACs and latency"
        atomic_write_text(out, page_html(chosen, title=title, provenance=provenance))
    else:
        image = static_image(chosen[0].figure, suffix.lstrip("."))
        atomic_write(out, lambda handle: handle.write(image))
    if not quiet:
        click.echo(f"mnprof plot: wrote {out} ({', '.join(f.key for f in chosen)})", err=True)
