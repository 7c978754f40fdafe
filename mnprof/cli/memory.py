"""``mnprof memory``: the peak memory of one forward pass, measured, beside the analytic figure, explained."""

from __future__ import annotations

from pathlib import Path

import click

from mnprof.cli.options import Command, configs_from, grid_options, output_options, resolve_output, threads_option
from mnprof.cli.output import emit, output_width, progress
from mnprof.memory.measure import EAGER_ACTIVATION_COPIES, measure_memory, parse_memory_backends
from mnprof.memory.records import MemoryMeasurement
from mnprof.model.config import ModelConfig
from mnprof.runtimes.backends import check_available, check_device
from mnprof.runtimes.registry import MEMORY_BACKENDS, REGISTRY, listing
from mnprof.timing.records import Device, TimingKey
from mnprof.timing.sweep import check_memory, parse_batch_sizes
from mnprof.views.memory import MemoryView, render_memory
from mnprof.views.render import Format


@click.command(cls=Command)
@grid_options
@click.option(
    "--backend",
    "backends",
    default="eager",
    show_default=True,
    metavar="LIST",
    help=f"Comma-separated runtimes whose allocations PyTorch's allocator sees: {listing(MEMORY_BACKENDS, ' and ')} "
    f"({listing([b for b in MEMORY_BACKENDS if REGISTRY[b].dtype], ' and ')} where the hardware has them). Refused: "
    f"{listing([b for b, info in REGISTRY.items() if not info.memory and info.onnxruntime_pool], ' and ')} (their "
    "own arena, which the profiler does not see), "
    f"{listing([b for b, info in REGISTRY.items() if not info.memory and not info.onnxruntime_pool], ' and ')} "
    "(graphs mnprof cannot follow module by module).",
)
@click.option(
    "--batch-size",
    "batch_sizes",
    default="1,8",
    show_default=True,
    metavar="LIST",
    help="Comma-separated batch sizes, integers in [1, 1024].",
)
@click.option(
    "--device",
    type=click.Choice([d.value for d in Device]),
    default="cpu",
    show_default=True,
    help="cpu: broken down tensor by tensor; cuda: torch.cuda.max_memory_allocated around the pass (a total only).",
)
@threads_option("Intra-op threads (memory does not depend on them beyond oneDNN's per-thread scratch).")
@click.option(
    "--view",
    type=click.Choice([v.value for v in MemoryView]),
    default="peaks",
    show_default=True,
    help="peaks: a row per configuration, runtime and batch size; tensors: every tensor alive at each peak, "
    "what allocated it and why it is alive.",
)
@click.option("--wide", is_flag=True, help="On a terminal, every column however wide; files always have them.")
@output_options
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def memory(
    models: tuple[str, ...],
    alphas: str | None,
    resolutions: str | None,
    num_classes: int,
    variant: str,
    rounding: str,
    backends: str,
    batch_sizes: str,
    device: str,
    threads: int,
    view: str,
    wide: bool,
    fmt: str | None,
    out: Path | None,
    quiet: bool,
) -> None:
    """Peak memory of one forward pass per configuration, runtime and batch size: measured from PyTorch's
    allocator, beside the analytic weights + working set, the difference named by cause.

    measured = weights as held + input batch + the pass's own allocations at their peak (torch.profiler's
    memory events, after one warm-up pass; exact, the same on every run). analytic = parameters + the
    peak working set of an inference runtime's model of execution: one layer at a time, its input and
    output alive together, BatchNorm folded, activations in place, a residual block's input kept until
    its add. Eager PyTorch holds more, and each tensor alive at the peak is named: the layer's input
    and output (what the model counts), the convolution's output kept while an unfolded BatchNorm
    writes its own, tensors enclosing module calls hold as arguments, the caller's input batch, and the
    running operator's workspace. --view tensors lists them one by one.

    Before anything is allocated, a configuration whose estimate exceeds the memory available now is
    refused with both figures.

    \b
    Examples:
      mnprof memory
      mnprof memory --alpha 1.0 --resolution 224 --backend eager,fused --batch-size 1,8
      mnprof memory --alpha 1.0 --resolution 224 --view tensors
      mnprof memory --model mobilenetv2 --format json --out memory.json
    """
    configs = configs_from(alphas, resolutions, num_classes, variant, rounding, models)
    fmt = resolve_output(fmt, out)
    keys = _keys(configs, backends, batch_sizes, threads, device)
    check_memory(keys, activation_copies=EAGER_ACTIVATION_COPIES)  # before any model is built
    measurements = _measured(keys, quiet)
    width = None if wide else output_width(out)
    emit(render_memory(measurements, MemoryView(view), Format(fmt), width=width), out)


def _keys(configs: list[ModelConfig], backends: str, batch_sizes: str, threads: int, device: str) -> list[TimingKey]:
    """What to measure: every configuration on every runtime at every batch size, each runtime refused before any
    work where this host does not have it."""
    chosen_backends = parse_memory_backends(backends)
    sizes = parse_batch_sizes(batch_sizes)
    chosen_device = Device(device)
    check_device(chosen_device)
    for backend in chosen_backends:  # bfloat16 or float16 where only emulated: refused before any work
        check_available(backend, chosen_device)
    return [
        TimingKey(config, backend, size, threads, chosen_device)
        for config in configs
        for backend in chosen_backends
        for size in sizes
    ]


def _measured(keys: list[TimingKey], quiet: bool) -> list[MemoryMeasurement]:
    """Each key's peak memory, measured one after another under a progress bar."""
    measurements = []
    with progress(quiet) as bar:
        task = bar.add_task("measuring memory", total=len(keys), current="")
        for key in keys:
            bar.update(task, current=key.label)
            measurements.append(measure_memory(key.config, key.batch_size, key.backend, key.device, key.threads))
            bar.update(task, advance=1)
    return measurements
