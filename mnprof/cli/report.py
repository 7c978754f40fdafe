"""``mnprof report``: regenerate everything in reports/ from one command."""

from __future__ import annotations

from pathlib import Path

import click

from mnprof.cli.options import FAMILY_HELP, Command, families_from, model_option
from mnprof.cli.work import measure_with_progress
from mnprof.errors import MnprofError
from mnprof.files.write import atomic_write_text, check_writable
from mnprof.reports.catalogue import count_files, refuse_shared_files, timing_files
from mnprof.reports.counts import render_counts, write_counts
from mnprof.reports.index import index_markdown
from mnprof.reports.timing import write_timing
from mnprof.runtimes.backends import check_available, parse_backends
from mnprof.timing import plan as timing
from mnprof.timing.records import Device


@click.command(cls=Command)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
    help="Directory to (re)generate; created if missing. Each file is written atomically.",
)
@click.option(
    "--no-timing",
    is_flag=True,
    help="Regenerate only the count-only files (deterministic) and the index; timing files are kept.",
)
@click.option(
    "--backend",
    "backends",
    default="eager,fused",
    show_default=True,
    metavar="LIST",
    help="Runtimes timed into results.json (see mnprof table --help).",
)
@model_option(
    f"Families reported on, repeatable: {FAMILY_HELP} Each family's grid goes into the table, the baseline and the "
    "timing, and its 1.0-224 into a layer table of its own. [default: mobilenetv1]",
    multiple=True,
)
@click.option("-q", "--quiet", is_flag=True, help="No progress messages.")
def report(out: Path, no_timing: bool, backends: str, models: tuple[str, ...], quiet: bool) -> None:
    """Regenerate reports/: the table (Markdown, CSV, JSON), the paper's tables, the layer table for
    1.0-224, the baseline, and (unless --no-timing) the results file, the figures and the roofline.

    Timing takes minutes: every configuration and runtime, then the layers.
    reports/README.md indexes what was written and says which host measured the timing parts, and when.

    \b
    Examples:
      mnprof report --no-timing
      mnprof report --out my-reports --model mobilenetv1 --model mobilenetv2
      mnprof report --out my-reports --model mynet=mypackage.models:build --no-timing
    """
    families = families_from(models)
    refuse_shared_files(families)  # before anything is counted or written

    if out.exists() and not out.is_dir():
        raise MnprofError(f"--out {out} is a file; accepted: a directory")
    if out.is_dir():  # every file it will hold, before the first is written: none a link, FIFO or directory
        written = [*count_files(families), *(() if no_timing else timing_files(families))]
        for name in [*(f.name for f in written), "README.md"]:
            check_writable(out / name)
    if not no_timing:  # every option is validated before the directory or any file is written
        for backend in parse_backends(backends):
            check_available(backend, Device.CPU)
    if not quiet:
        click.echo("mnprof report: counting every family (nothing is written until all of it is done)", err=True)
    texts = render_counts(families)  # a model that fails here leaves --out as it was
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise MnprofError(
            f"--out {out} cannot be created ({error.strerror}); accepted: a directory you can write"
        ) from None
    check_writable(out / "README.md")
    timing_plan = None if no_timing else timing.default_plan(out / "results.json", backends)

    def step(name: str) -> None:
        if not quiet:
            click.echo(f"mnprof report: {out / name}", err=True)

    write_counts(out, on_file=step, families=families, texts=texts)
    if timing_plan is not None:
        write_timing(
            out,
            backends=backends,
            measure=lambda _path, configs: measure_with_progress(timing_plan, configs, quiet),
            on_step=step,
            families=families,
        )
    atomic_write_text(out / "README.md", index_markdown(out, families))
    step("README.md")
