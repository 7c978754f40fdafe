"""``mnprof history``: results files and baselines collected per commit, as a trend table and an offline page."""

from __future__ import annotations

import os
from pathlib import Path

import click

from mnprof.cli.output import OutputPath, emit, output_width, refuse_overwriting, warn
from mnprof.errors import MnprofError
from mnprof.files.write import atomic_write_text, check_writable
from mnprof.views.history import history_figures, render_history, steps
from mnprof.views.history_inputs import ACCEPTED, collect_paths, read_snapshots
from mnprof.views.plots import page_html
from mnprof.views.render import Format

# mnprof.cli.options would load mnprof.check and through it torch, seconds that reading a few files does not need:
# this command declares its --format and --out as output_options does, and reads no [tool.mnprof].
SUFFIX_FORMATS = {".md": "markdown", ".markdown": "markdown", ".csv": "csv", ".json": "json", ".txt": "table"}


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice([str(f) for f in Format]),
    default=None,
    help="Output format of the trend table. [default: from --out's suffix (.md, .csv, .json), else a table; "
    "--out FILE.html writes the page instead]",
)
@click.option(
    "--out",
    type=OutputPath(),
    default=None,
    help="Write to this file (atomically: an existing file is replaced whole or left untouched).",
)
@click.option(
    "--html",
    "html_out",
    type=OutputPath(),
    default=None,
    help="Also write one offline page (plotly.js embedded) with a chart per metric over the commits, one line per "
    "configuration, the steps marked.",
)
def history(inputs: tuple[Path, ...], fmt: str | None, out: Path | None, html_out: Path | None) -> None:
    """Counts and latency over commits, from results files and baselines collected per commit.

    Reads every *.json under each DIR (and each FILE given): results files (mnprof table) give MACs and latency,
    baselines (mnprof baseline) params and MACs. A results file names its commit, date and host; a baseline's
    commit is read from its path (a hexadecimal commit in the file or directory name), and files of one commit are
    joined. Commits are shown in date order when every one has a date, else in the order of their paths. A file
    that is neither, or is corrupt, is named in one warning line and skipped.

    The table has one row per commit and configuration and says what changed since the configuration's previous
    commit: any change of a count; a latency change beyond both figures' 95% intervals (the in-run noise each
    record carries), on the same host.

    \b
    Examples:
      mnprof history history/
      mnprof history history/ --html history.html
      mnprof history history/*.json --format csv --out history.csv
    """
    page_only = out is not None and out.suffix.lower() == ".html"
    if page_only:
        if fmt is not None:
            raise MnprofError(f"--out {out} is the page; --format {fmt} is a table's; accepted: one of them, or --html")
        if html_out is not None:
            raise MnprofError(f"--out {out} and --html {html_out} both ask for the page; accepted: one of them")
        html_out, out = out, None
    if out is not None:
        check_writable(out)
    chosen = fmt or (SUFFIX_FORMATS.get(out.suffix.lower(), "table") if out is not None else "table")
    if html_out is not None:
        check_writable(html_out)
        if out is not None and os.path.abspath(out) == os.path.abspath(html_out):
            raise MnprofError(f"--out and --html are both {out}; accepted: two different files")
    for path in inputs:
        if not os.path.lexists(path):
            raise MnprofError(f"{path} does not exist; accepted: directories and files of results and baselines")
    paths = collect_paths(inputs)
    for target, option in ((out, "--out"), (html_out, "--html")):
        if target is not None:
            refuse_overwriting(target, {path: "a file read" for path in paths}, option)
    snapshots, skipped = read_snapshots(paths)
    for path, reason in skipped:
        warn(f"skipped {path}: {reason}" if str(path) not in reason else f"skipped: {reason}")
    if not snapshots:
        where = ", ".join(str(path) for path in inputs)
        raise MnprofError(f"{where}: no usable file ({len(paths)} read, {len(skipped)} skipped); {ACCEPTED}")
    found = steps(snapshots)
    if html_out is not None:
        labels = [f"{snapshot.label}: {snapshot.path}" for snapshot in snapshots]
        files = sum(len(snapshot.paths) for snapshot in snapshots)
        provenance = [f"{len(snapshots)} commits ({files} files), first {labels[0]}, last {labels[-1]}"]
        page = page_html(history_figures(snapshots, found), title="mnprof history", provenance=provenance)
        atomic_write_text(html_out, page)
    if not page_only:
        emit(render_history(snapshots, found, Format(chosen), output_width(out)), out)
    if html_out is not None:
        marked = sum(1 for step in found if step.kind == "step")
        click.echo(f"mnprof history: wrote {html_out} ({len(snapshots)} commits, {marked} steps marked)", err=True)
