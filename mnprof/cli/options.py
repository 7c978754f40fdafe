"""Options declared once: the grid, output and other options commands share, parsed where they enter (the timing
options are in :mod:`mnprof.cli.timing_options`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mnprof.check.shard import parse_shard
from mnprof.cli.output import OutputPath, PlainInt
from mnprof.errors import MnprofError, mnprof_output
from mnprof.files.write import check_writable
from mnprof.model import families
from mnprof.model.config import (
    DEFAULT_ALPHAS,
    DEFAULT_RESOLUTIONS,
    MAX_ALPHA,
    MAX_CLASSES,
    MAX_RESOLUTION,
    MIN_RESOLUTION,
    Family,
    ModelConfig,
    Rounding,
    UserFamily,
    Variant,
    family_grid,
    format_alpha,
    grid,
    parse_alphas,
    parse_resolutions,
)
from mnprof.project import tool_table
from mnprof.timing.records import Statistic
from mnprof.timing.sweep import MAX_THREADS

__all__ = [
    "Command",
    "config_from",
    "config_options",
    "configs_from",
    "families_from",
    "family_from",
    "grid_options",
    "model_option",
    "output_options",
    "reference_option",
    "resolve_output",
    "shard_option",
    "statistic_option",
]


class Command(click.Command):
    """An mnprof command: before it runs, the project's settings file is read and checked
    (:func:`mnprof.project.tool_table`: ./pyproject.toml, or the one ``--config`` names), so that a wrong
    ``[tool.mnprof]`` is the same error in every command and no output replaces the file."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        with mnprof_output():  # --help is mnprof's output (in a worker, the channel to the mnprof process)
            return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        config = ctx.params.get("pyproject")
        tool_table(config if isinstance(config, Path) and os.path.lexists(config) else None)
        return super().invoke(ctx)


SUFFIX_FORMATS = {".md": "markdown", ".markdown": "markdown", ".csv": "csv", ".json": "json", ".txt": "table"}


def resolve_output(fmt: str | None, out: Path | None) -> str:
    """Check that ``out`` can be written (before any work) and pick the format: given, from the suffix, or table."""
    if out is not None:
        check_writable(out)
    if fmt is not None:
        return fmt
    if out is not None:
        return SUFFIX_FORMATS.get(out.suffix.lower(), "table")
    return "table"


GRID_HELP = (
    f"Comma-separated width multipliers, each in (0, {MAX_ALPHA:g}]. [default: the family's published grid: "
    f"{','.join(format_alpha(a) for a in DEFAULT_ALPHAS)} for mobilenetv1; TF-slim's for mobilenetv2; 1.0,0.75 for "
    "mobilenetv3-large and -small]"
)
RESOLUTION_HELP = (
    f"Comma-separated input resolutions in pixels, integers in [{MIN_RESOLUTION}, {MAX_RESOLUTION}]. "
    f"[default: the family's published grid: {','.join(str(r) for r in DEFAULT_RESOLUTIONS)} for mobilenetv1; "
    "TF-slim's for mobilenetv2; 224 for mobilenetv3-large and -small]"
)
FAMILY_HELP = (
    "mobilenetv1 (Howard et al. 2017), mobilenetv2 (Sandler et al. 2018; TF-slim's make-divisible-by-8 channels), "
    "mobilenetv3-large and mobilenetv3-small (Howard et al. 2019; the same rounding), "
    "a name from [tool.mnprof.families] in ./pyproject.toml or from an installed package's 'mnprof.models' entry "
    "points, or your own family as [NAME=]package.module:factory, where factory(alpha: float, num_classes: int"
    "[, resolution: int]) returns a torch.nn.Module taking (N, 3, R, R) images (a user family has no published "
    "grid: MobileNetV1's alphas and resolutions are its default)."
)
MODEL_HELP = f"Network family, repeatable (several are shown side by side): {FAMILY_HELP} [default: mobilenetv1]"


def model_option(help_text: str, *, multiple: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--model SPEC``: a family (see :mod:`mnprof.model.families`); repeatable with ``multiple`` (then ``models``,
    default none = mobilenetv1). Resolved by :func:`family_from`, where the command starts."""
    if multiple:
        return click.option("--model", "models", multiple=True, metavar="SPEC", help=help_text)
    return click.option("--model", default=Family.MOBILENETV1.value, show_default=True, metavar="SPEC", help=help_text)


def family_from(text: str) -> Family | UserFamily:
    """The family ``--model`` names: a user factory is imported now, so that a bad one fails before any work."""
    return families.resolve(text)


def families_from(models: tuple[str, ...]) -> list[Family | UserFamily]:
    """The families repeated ``--model`` options name (MobileNetV1 when none), each once; one name for two
    factories is a one-line error."""
    chosen = [family_from(model) for model in models or (Family.MOBILENETV1.value,)]
    targets = {str(family): getattr(family, "target", "") for family in chosen}
    for family in chosen:
        if getattr(family, "target", "") != targets[str(family)]:
            raise MnprofError(
                f"--model names {family} twice, for {targets[str(family)]} and {family.target}; accepted: a "
                "different NAME= for each factory"
            )
    return list(dict.fromkeys(chosen))


def _classes_variant_rounding() -> list[Callable[[Callable[..., Any]], Callable[..., Any]]]:
    return [
        click.option(
            "--classes",
            "num_classes",
            type=PlainInt(min=1, max=MAX_CLASSES),
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


def _apply(function: Callable[..., Any], options: list[Callable[[Callable[..., Any]], Callable[..., Any]]]) -> Any:
    for option in reversed(options):
        function = option(function)
    return function


def grid_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Options that choose the configurations: --alpha, --resolution, --classes, --variant, --rounding."""
    lists = [
        model_option(MODEL_HELP, multiple=True),
        click.option("--alpha", "alphas", default=None, metavar="LIST", help=GRID_HELP),
        click.option("--resolution", "resolutions", default=None, metavar="LIST", help=RESOLUTION_HELP),
    ]
    return _apply(function, lists + _classes_variant_rounding())  # type: ignore[no-any-return]


def config_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Options that choose one configuration: --model, --alpha and --resolution (one value each), --classes,
    --variant, --rounding; :func:`config_from` turns them into a :class:`ModelConfig`."""
    single = [
        model_option(f"Network family: {FAMILY_HELP}"),
        click.option(
            "--alpha", default="1.0", show_default=True, help=f"Width multiplier, one number in (0, {MAX_ALPHA:g}]."
        ),
        click.option(
            "--resolution",
            default="224",
            show_default=True,
            help=f"Input resolution in pixels, one integer in [{MIN_RESOLUTION}, {MAX_RESOLUTION}].",
        ),
    ]
    return _apply(function, single + _classes_variant_rounding())  # type: ignore[no-any-return]


def config_from(
    alpha: str, resolution: str, num_classes: int, variant: str, rounding: str, model: str = "mobilenetv1"
) -> ModelConfig:
    """The one configuration that :func:`config_options` describe (validated; a list is a one-line error)."""
    alphas, resolutions = parse_alphas(alpha), parse_resolutions(resolution)
    if len(alphas) != 1:
        raise MnprofError(f"--alpha {alpha!r} names {len(alphas)} values; accepted: one number in (0, {MAX_ALPHA:g}]")
    if len(resolutions) != 1:
        raise MnprofError(
            f"--resolution {resolution!r} names {len(resolutions)} values; "
            f"accepted: one integer in [{MIN_RESOLUTION}, {MAX_RESOLUTION}]"
        )
    return ModelConfig(alphas[0], resolutions[0], num_classes, variant, rounding, family_from(model))  # type: ignore[arg-type]


FORMAT_HELP = "Output format. [default: from --out's suffix (.md, .csv, .json), else a table]"


def output_options(
    function: Callable[..., Any] | None = None, *, format_help: str = FORMAT_HELP, extra_formats: tuple[str, ...] = ()
) -> Any:
    """--format (table, markdown, csv, json, and a command's ``extra_formats``; default from --out's suffix) and
    --out (written atomically).

    Use as ``@output_options``, or as ``@output_options(format_help=...)`` where a command's formats say more.
    """
    if function is None:
        return lambda command: output_options(command, format_help=format_help, extra_formats=extra_formats)
    function = click.option(
        "--out",
        type=OutputPath(),
        default=None,
        help="Write to this file (atomically: an existing file is replaced whole or left untouched).",
    )(function)
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "markdown", "csv", "json", *extra_formats]),
        default=None,
        help=format_help,
    )(function)


def configs_from(
    alphas: str | None,
    resolutions: str | None,
    num_classes: int,
    variant: str,
    rounding: str,
    models: tuple[str, ...] = (),
) -> list[ModelConfig]:
    """The configurations that the grid options describe (validated), family by family.

    Without --alpha and --resolution, each family's published grid (:func:`family_grid`); with either,
    the grid of the given values, the family's published values standing in for the other.
    """
    configs: list[ModelConfig] = []
    for family in families_from(models):
        published = family_grid(family, num_classes=num_classes, variant=variant, rounding=rounding)
        if alphas is None and resolutions is None:
            configs += published
            continue
        chosen_alphas = parse_alphas(alphas) if alphas is not None else tuple(dict.fromkeys(c.alpha for c in published))
        chosen_resolutions = (
            parse_resolutions(resolutions)
            if resolutions is not None
            else tuple(dict.fromkeys(c.resolution for c in published))
        )
        configs += grid(chosen_alphas, chosen_resolutions, num_classes=num_classes, variant=variant,
                        rounding=rounding, family=family)  # fmt: skip
    return configs


def shard_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--shard I/N`` (:mod:`mnprof.check.shard`), parsed as it enters: it reaches the command as a Shard or None."""

    def parse(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
        return None if value is None else parse_shard(value)

    return click.option("--shard", default=None, metavar="I/N", callback=parse, help=help_text)


PASSES = ("forward", "training")  # --pass: inference, or one training step (mnprof.counting.training)


def pass_option(help_text: str, default: str | None = "forward") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--pass forward|training``: count a forward pass, or a training step (forward and backward); it reaches
    the command as ``step`` (``default`` None: the command decides)."""
    return click.option(
        "--pass", "step", type=click.Choice(PASSES), default=default, show_default=default is not None, help=help_text
    )


def statistic_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--statistic``: which latency statistic a view shows (table and plot say what it drives there)."""
    return click.option(
        "--statistic",
        type=click.Choice([s.value for s in Statistic]),
        default=Statistic.P5.value,
        show_default=True,
        help=help_text,
    )


def threads_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--threads N`` for a command that measures one thing at a time (default 1; bounded like the sweep's)."""
    return click.option("--threads", type=PlainInt(1, MAX_THREADS), default=1, show_default=True, help=help_text)


def reference_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--reference CONFIG``: what relative latency divides by (default: the geometric mean)."""
    return click.option("--reference", default=None, metavar="CONFIG", help=help_text)
