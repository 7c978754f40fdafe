"""``mnprof baseline`` and ``mnprof check``: the CI regression gate for params and MACs."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any

import click

from mnprof import api
from mnprof.check import (
    DEFAULT_INSTRUCTIONS_TOLERANCE_PCT,
    DEFAULT_LATENCY_TOLERANCE_PCT,
    parse_tolerance,
    render_check,
)
from mnprof.check.shard import Shard
from mnprof.cli.options import Command, pass_option, shard_option
from mnprof.cli.output import EXIT_REGRESSION, OutputPath, PlainInt, emit, progress, refuse_overwriting
from mnprof.errors import MnprofError
from mnprof.files.documents import dumps
from mnprof.files.write import atomic_write_text, check_creatable, check_writable, make_parent
from mnprof.model import families
from mnprof.model.config import MAX_CLASSES

MODEL_HELP = (
    "Model to guard, repeatable: 'mobilenetv1', 'mobilenetv2', 'mobilenetv3-large' or 'mobilenetv3-small' "
    "(mnprof's own), a name from [tool.mnprof.families] "
    "or the 'mnprof.models' entry points, or [NAME=]package.module:factory, where "
    "factory(alpha: float, num_classes: int[, resolution: int]) returns a torch.nn.Module taking (N, 3, R, R) "
    "images (a factory with a resolution parameter is called once per resolution). "
    "[default: [tool.mnprof] models in ./pyproject.toml, else mobilenetv1]"
)


def settings_options(function: Any) -> Any:
    options = [
        click.option("--model", "models", multiple=True, metavar="SPEC", help=MODEL_HELP),
        click.option(
            "--alpha",
            "alphas",
            default=None,
            metavar="LIST",
            help="Comma-separated width multipliers in (0, 4]. [default: from pyproject, else the paper's]",
        ),
        click.option(
            "--resolution",
            "resolutions",
            default=None,
            metavar="LIST",
            help="Comma-separated input resolutions >= 32. [default: from pyproject, else the paper's]",
        ),
        click.option(
            "--classes",
            "num_classes",
            type=PlainInt(min=1, max=MAX_CLASSES),
            default=None,
            help="Classifier outputs passed to each factory. [default: from pyproject, else 1000]",
        ),
        click.option(
            "--config",
            "pyproject",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="pyproject.toml with a [tool.mnprof] table. [default: ./pyproject.toml if present]",
        ),
        click.option("-q", "--quiet", is_flag=True, help="No progress bar."),
        pass_option(
            "training: also count one training step of one image (forward and backward, analytic and by torch's "
            "FlopCounterMode) and guard it. [default: forward; check: training where the baseline recorded it]",
            default=None,
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _settings(
    models: tuple[str, ...],
    alphas: str | None,
    resolutions: str | None,
    num_classes: int | None,
    pyproject: Path | None,
    **overrides: Any,
) -> Any:
    """The gate's settings as the public API makes them (:func:`mnprof.api.settings`: ``[tool.mnprof]`` overridden
    by the options, each validated there): where the baseline is, what progress counts to."""
    if pyproject is not None and not os.path.lexists(pyproject):  # what is there but unreadable: tool_table says
        raise MnprofError(f"--config {pyproject} does not exist; accepted: a pyproject.toml file")
    return api.settings(models or None, alphas, resolutions, num_classes=num_classes, pyproject=pyproject, **overrides)


def _instruction_gate() -> ModuleType:
    """:mod:`mnprof.check.instructions`, imported only with --instructions: a counts-only gate loads no code that
    counts instructions (nor starts Valgrind). The API takes it from here."""
    import mnprof.check.instructions as gate

    return gate


class _Bars:
    """The progress bars of the API's phases, one at a time: counting (open from the start), then, where the API
    says it is ``starting``, Valgrind's instructions; none while latency is timed."""

    def __init__(self, quiet: bool, total: int) -> None:
        self.quiet, self.total, self.bar, self.task, self.done = quiet, total, None, None, 0
        self._open("counting")

    def _open(self, description: str) -> None:
        self.close()
        self.bar = progress(self.quiet)
        self.bar.start()
        self.task = self.bar.add_task(description, total=self.total, current="")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def counted(self, key: str) -> None:
        """``on_done``: one configuration counted; the bar goes once all are."""
        if self.bar is not None:
            self.bar.update(self.task, advance=1, current=key)
        self.done += 1
        if self.done == self.total:
            self.close()

    def heard(self, event: str) -> None:
        """``on_instructions``: starting, then Valgrind's processes built and each entry counted."""
        if event == "starting":
            self._open("instructions: starting Valgrind")
        elif self.bar is not None and event == "built":
            self.bar.update(self.task, description="instructions")
        elif self.bar is not None and event.startswith("counted "):
            self.bar.update(self.task, advance=1, current=event.removeprefix("counted "))

    def __enter__(self) -> _Bars:
        return self

    def __exit__(self, *_exception: object) -> None:
        self.close()


@click.command(cls=Command)
@settings_options
@click.option(
    "--out",
    type=OutputPath(),
    default=None,
    help="Where to write the baseline (atomically). [default: [tool.mnprof] baseline, else reports/baseline.json]",
)
@click.option(
    "--latency",
    is_flag=True,
    help="Also time every configuration (eager, batch 1) round-robin with a control (mnprof's MobileNetV1 of "
    "the closest MACs at its resolution) and record its latency relative to the control with a 95% interval, "
    "and the host fingerprint, for mnprof check --latency on this same host.",
)
@click.option(
    "--threads",
    type=PlainInt(min=1),
    default=None,
    help="Threads for --latency. [default: the cores this process may use]",
)
@click.option(
    "--instructions",
    is_flag=True,
    help="Also count every configuration's instructions per forward pass of one image under Valgrind's Callgrind "
    "(minutes, not seconds), and record the torch build, Valgrind, Python and machine that decide them, for mnprof "
    "check --instructions with the same software. Needs Valgrind.",
)
@shard_option("Count only shard I of N of the configurations (sorted by id, dealt round-robin), for a CI matrix; "
              "needs --out; join the N files with mnprof merge.")  # fmt: skip
def baseline(
    models: tuple[str, ...],
    alphas: str | None,
    resolutions: str | None,
    num_classes: int | None,
    pyproject: Path | None,
    quiet: bool,
    out: Path | None,
    latency: bool,
    threads: int | None,
    instructions: bool,
    shard: Shard | None,
    step: str,
) -> None:
    """Record exact params and MACs of every model x alpha x resolution as a baseline.

    The file is sorted, stable JSON (diff-friendly in code review): for each configuration the
    params and MACs of every counter, fvcore's per-operator totals and any operator fvcore could
    not count, with provenance (mnprof, torch, fvcore, thop versions, schema version).
    """
    settings = _settings(models, alphas, resolutions, num_classes, pyproject, baseline=out, shard=shard)
    own_place = _check_out(settings, pyproject, out)
    gate = _instruction_gate() if instructions else None
    with _Bars(quiet, len(settings.keys())) as bars:
        document = api.record_baseline(
            models or None, alphas, resolutions, num_classes=num_classes, pyproject=pyproject, on_done=bars.counted,
            training=step == "training", shard=shard, latency=latency, threads=threads, instructions=gate,
            on_instructions=bars.heard,
        )  # fmt: skip
    if own_place:
        make_parent(settings.baseline)
    atomic_write_text(settings.baseline, dumps(document))
    click.echo(f"mnprof baseline: wrote {len(document['entries'])} configurations to {settings.baseline}", err=True)


def _check_out(settings: Any, pyproject: Path | None, out: Path | None) -> bool:
    """Refuse, before any work, a baseline this run could not write or must not: a shard's part over the whole
    baseline, the pyproject.toml the settings come from, an unwritable place. Returns whether the baseline goes to
    mnprof's own default place (reports/baseline.json, created in a fresh project; a path named is not)."""
    if settings.shard is not None and out is None:  # a part written over the whole baseline would lose the rest
        shard = settings.shard
        raise MnprofError(
            f"--shard {shard} writes part of a baseline; accepted: --out naming the part's own file (e.g. "
            f"--out baseline-{shard.index}-of-{shard.count}.json), joined afterwards with mnprof merge"
        )
    config = pyproject if pyproject is not None else Path("pyproject.toml")
    if config.is_file():  # the settings this run read
        refuse_overwriting(settings.baseline, {config: "the pyproject.toml the settings come from"})
    own_place = out is None and "baseline" not in families.tool_table(pyproject)
    (check_creatable if own_place else check_writable)(settings.baseline)
    return own_place


@click.command(cls=Command)
@settings_options
@click.option(
    "--baseline",
    "baseline_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Baseline to compare with. [default: [tool.mnprof] baseline, else reports/baseline.json]",
)
@click.option(
    "--tolerance",
    default=None,
    metavar="PCT",
    help="Growth allowed before failing, in percent (e.g. 0.5%). [default: [tool.mnprof] tolerance, "
    "else 0: counts are exact]",
)
@click.option("--strict", is_flag=True, help="Fail on any change: shrinkage, configurations added or removed.")
@click.option(
    "--latency",
    "latency_gate",
    is_flag=True,
    help=f"Also gate latency, at --latency-tolerance {DEFAULT_LATENCY_TOLERANCE_PCT:g}%: each configuration is timed "
    "round-robin with a control (mnprof's own MobileNetV1 of the closest MACs at its resolution, whose code does "
    "not change with yours), and fails when its latency relative to the control grew beyond the tolerance and by "
    "more than 1.96 standard errors of both runs. Only against a baseline recorded with mnprof baseline "
    "--latency on this same host.",
)
@click.option(
    "--latency-tolerance",
    default=None,
    metavar="PCT",
    help="The latency gate's tolerance (implies --latency), e.g. 15%: how much a configuration's latency relative "
    "to its control may grow before it fails (the growth must also exceed 1.96 standard errors). [default: 10%, "
    "wide enough for an unchanged model on a shared host, narrow enough to catch a 15% slowdown]",
)
@click.option(
    "--instructions",
    "instructions_gate",
    is_flag=True,
    help=f"Also gate instructions, at --instructions-tolerance {DEFAULT_INSTRUCTIONS_TOLERANCE_PCT:g}%: every "
    "configuration's instructions per forward pass of one image, counted under Valgrind's Callgrind as the "
    "baseline counted them (minutes, not seconds), failing when they grew beyond the tolerance: a cost that does "
    "not move with the host's load and sees elementwise work that MACs do not. Only against a baseline recorded "
    "with mnprof baseline --instructions with the same torch build, Valgrind, Python and machine (see --force). "
    "Needs Valgrind.",
)
@click.option(
    "--instructions-tolerance",
    default=None,
    metavar="PCT",
    help="The instructions gate's tolerance (implies --instructions), e.g. 0.5%: how much a configuration's "
    "instructions may grow before it fails. [default: [tool.mnprof] instructions_tolerance, else "
    f"{DEFAULT_INSTRUCTIONS_TOLERANCE_PCT:g}%: above the difference between two counts of the same model]",
)
@click.option(
    "--force",
    is_flag=True,
    help="With --instructions: compare with a baseline counted under another torch build, Valgrind, Python or "
    "machine instead of refusing it; the report warns that a difference may be the software's.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown", "github", "junit"]),
    default="text",
    show_default=True,
    help="text for people; json for tools; markdown for a job summary ($GITHUB_STEP_SUMMARY); github "
    "for workflow annotations (::error ...); junit for a CI's test report (JUnit XML: one test case per "
    "configuration and metric, a failure for each regression).",
)
@shard_option("Check only shard I of N of the configurations (sorted by id, dealt round-robin), for a CI matrix; "
              "baseline entries outside the grid are reported by shard 1.")  # fmt: skip
def check(
    models: tuple[str, ...],
    alphas: str | None,
    resolutions: str | None,
    num_classes: int | None,
    pyproject: Path | None,
    quiet: bool,
    baseline_path: Path | None,
    tolerance: str | None,
    strict: bool,
    latency_gate: bool,
    latency_tolerance: str | None,
    instructions_gate: bool,
    instructions_tolerance: str | None,
    force: bool,
    fmt: str,
    shard: Shard | None,
    step: str,
) -> int:
    """Recount and compare with the baseline; exit 1 when params, MACs, activations or peak memory grew.

    \b
    Exit codes:
      0  nothing grew beyond the tolerance (shrinkage passes, with a notice)
      1  a count grew (or, with --latency, a configuration got slower; with --instructions, its
         instructions grew): configuration, counter, metric, baseline, now, delta and % are named
      2  usage error: missing, corrupt or foreign baseline, schema mismatch, bad option
    """
    tolerance_pct = parse_tolerance(tolerance) if tolerance is not None else None
    settings = _settings(
        models, alphas, resolutions, num_classes, pyproject, baseline=baseline_path, tolerance=tolerance_pct,
        shard=shard,
    )  # fmt: skip
    gate = _instruction_gate() if instructions_gate or instructions_tolerance is not None else None
    with _Bars(quiet, len(settings.keys())) as bars:
        result = api.check(
            models or None, alphas, resolutions, num_classes=num_classes, baseline=baseline_path,
            tolerance=tolerance_pct, strict=strict, pyproject=pyproject, on_done=bars.counted,
            training=None if step is None else step == "training", shard=shard, latency=latency_gate,
            latency_tolerance=latency_tolerance, instructions=gate, instructions_tolerance=instructions_tolerance,
            force=force, on_instructions=bars.heard,
        )  # fmt: skip
    emit(render_check(result, fmt, settings.baseline), None)
    return EXIT_REGRESSION if result.failed else 0
