"""``mnprof layers``: one configuration, layer by layer: counts, bytes, intensity, measured time."""

from __future__ import annotations

from pathlib import Path

import click

from mnprof.cli.options import (
    Command,
    config_from,
    config_options,
    output_options,
    pass_option,
    resolve_output,
    threads_option,
)
from mnprof.cli.output import PlainFloat, PlainInt, emit, progress
from mnprof.errors import MnprofError
from mnprof.model.config import ModelConfig
from mnprof.timing.layers import LAYER_BACKENDS, Allocator, LayerTimingSettings, Method, time_layers
from mnprof.views.layers import LayerReport, layer_report, render_layers
from mnprof.views.render import Format


@click.command(cls=Command)
@config_options
@click.option(
    "--backend",
    type=click.Choice([backend.value for backend in LAYER_BACKENDS]),
    default="eager",
    show_default=True,
    help="eager: PyTorch eager mode, NCHW; channels_last: eager mode with model and input in NHWC memory format; "
    "onnxruntime, onnxruntime_int8 (the [onnx] extra): onnxruntime float32 or statically quantised int8, each "
    "node timed by onnxruntime's profiler and attributed to its layer (int8 only where its outputs agree with "
    "eager float32).",
)
@click.option(
    "--method",
    type=click.Choice([m.value for m in Method]),
    default="hooks",
    show_default=True,
    help="hooks: time.perf_counter_ns in forward hooks around each layer's module; profiler: torch.profiler CPU "
    "time of each layer's aten operator, matched by order and checked by input shape (see mnprof.timing.layers for "
    "why hooks are the default).",
)
@click.option(
    "--allocator",
    type=click.Choice([a.value for a in Allocator]),
    default="steady",
    show_default=True,
    help="steady: while timing, glibc keeps freed memory (no page faults in steady state, as in a runtime's "
    "arena); default: leave malloc as it is (page-fault costs then land on whichever layer allocates).",
)
@click.option(
    "--repeats",
    type=PlainInt(min=3),
    default=50,
    show_default=True,
    help="Timed forward passes at most (each layer's time is the median over them).",
)
@click.option("--warmup", type=PlainInt(min=0), default=5, show_default=True, help="Untimed passes first.")
@click.option(
    "--budget",
    type=PlainFloat(min=0, min_open=True),
    default=20.0,
    show_default=True,
    help="Seconds of timed passes at most (at least 3 passes are always run).",
)
@threads_option("Intra-op threads while timing (torch.set_num_threads; the previous value is restored).")
@click.option("--no-timing", is_flag=True, help="Counts only: no layer is timed (time columns empty).")
@output_options
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@pass_option(
    "training: also each layer's backward in one training step (its weight and input gradients' MACs); with "
    "--no-timing."
)
def layers(
    model: str,
    alpha: str,
    resolution: str,
    num_classes: int,
    variant: str,
    rounding: str,
    backend: str,
    method: str,
    allocator: str,
    repeats: int,
    warmup: int,
    budget: float,
    threads: int,
    no_timing: bool,
    fmt: str | None,
    out: Path | None,
    quiet: bool,
    step: str,
) -> None:
    """One configuration, layer by layer: where the MACs are, and where the time goes.

    Per layer (stem conv, each depthwise and pointwise conv, pool, FC): shapes, params, MACs
    (analytic and fvcore's per-module count), the standard convolution each separable block
    replaces and the separable/standard ratio beside the seed note's 1/M + 1/F^2, bytes moved
    (float32 weights + input + output activations), arithmetic intensity (FLOPs per byte), the
    measured CPU time of the layer (median over forward passes; forward hooks or torch.profiler), its
    share of the time beside its share of the MACs, and achieved GFLOP/s.

    \b
    Examples:
      mnprof layers
      mnprof layers --alpha 0.5 --resolution 160 --threads 4
      mnprof layers --backend channels_last --format markdown
      mnprof layers --no-timing --format csv --out layers.csv
      mnprof layers --no-timing --pass training
      mnprof layers --model mobilenetv2 --alpha 1.0 --resolution 224
    """
    config = config_from(alpha, resolution, num_classes, variant, rounding, model)
    if step == "training" and not no_timing:
        raise MnprofError(
            "--pass training counts each layer's backward; timing it is not built yet; accepted: --pass training "
            "with --no-timing"
        )
    timing = None
    if not no_timing:
        timing = LayerTimingSettings(
            backend=backend,  # type: ignore[arg-type]
            method=method,  # type: ignore[arg-type]
            allocator=allocator,  # type: ignore[arg-type]
            repeats=repeats,
            warmup=warmup,
            budget_s=budget,
            threads=threads,
        )
    fmt = resolve_output(fmt, out)
    report = _counted(config, timing, quiet, training=step == "training")
    emit(render_layers(report, Format(fmt)), out)


def _counted(config: ModelConfig, timing: LayerTimingSettings | None, quiet: bool, *, training: bool) -> LayerReport:
    """Every layer of ``config`` counted, and timed with ``timing`` (None: counts only) under a progress bar of the
    timed passes."""
    with progress(quiet) as bar:
        task = bar.add_task(f"timing {config.id}", total=timing.repeats if timing else 0, current="")

        def on_pass(done: int, total: int) -> None:
            bar.update(task, completed=done, current=f"pass {done}")

        times = time_layers(config, timing, on_pass) if timing is not None else None
        return layer_report(config, times, training=training)
