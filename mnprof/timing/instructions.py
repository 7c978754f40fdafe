"""Instructions executed per forward pass, counted under Valgrind's Callgrind: a cost measure that does not move.

Latency on a shared machine moves by tens of percent within a minute; the number of instructions a forward
pass executes does not (two processes differ by well under 0.5%), and unlike MACs it sees the work between
the convolutions (elementwise operators, layout conversions, copies). It is the count of the code path taken
under Valgrind's CPU model, which has no AVX-512: oneDNN may pick another kernel there than on the host.

A few Valgrind processes (two by default, one per core of the VM it was measured on) share the grid, dealt
by size (importing torch under Valgrind takes tens of seconds, paid once per process): this process builds each
configuration's seeded model and input and hands each Valgrind process its part; there
:mod:`mnprof.timing.callgrind_driver` runs the warm-up passes uncollected and toggles collection on around each
of ``passes`` forward passes of one image, dumping after each. This module checks that Valgrind can run, starts
the processes, and reads the dumps.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mnprof.errors import MnprofError
from mnprof.model.config import ModelConfig
from mnprof.model.seeded import calibrated_model, fixed_input

__all__ = [
    "INSTALL_HINT",
    "MIN_VALGRIND",
    "PASSES",
    "PROCESSES",
    "WARMUP",
    "WARM_FIRST",
    "InstructionCount",
    "InstructionRun",
    "check_available",
    "count_instructions",
    "instructions_of",
    "parse_valgrind_version",
    "split_grid",
]

# Counted forward passes per configuration, and uncounted ones before them (oneDNN creates and caches its kernels
# on the first call: not part of the steady cost). Every pass is a quarter of the cost with 3 counted passes, and
# counted passes of one configuration differed by at most 0.05% (benchmarks/RESULTS.md): one is counted.
PASSES = 1
WARMUP = 1
# Whether every warm-up pass runs before instrumentation is switched on (uninstrumented; measured: hardly faster
# than instrumented, since Valgrind's emulation of AVX2 code is most of the cost), and how many Valgrind processes
# share the grid (dealt by split_grid; each pays its own torch import).
WARM_FIRST = False
PROCESSES = 2
# Only 3.19 was measured. 3.15 (Ubuntu 20.04's) is the oldest accepted: an assumption, not a tested bound.
MIN_VALGRIND = (3, 15)
INSTALL_HINT = "install Valgrind (Debian, Ubuntu: apt-get install valgrind; Fedora: dnf install valgrind)"
DRIVER = Path(__file__).with_name("callgrind_driver.py")


@dataclass(frozen=True)
class InstructionCount:
    """One configuration's instructions: one count per counted forward pass of one image."""

    id: str
    passes: tuple[int, ...]

    @property
    def instructions(self) -> int:
        """The median pass: what the table shows and a gate compares."""
        return int(statistics.median_low(self.passes))

    @property
    def spread_pct(self) -> float:
        """(largest - smallest) over the smallest pass, in percent."""
        return 100.0 * (max(self.passes) - min(self.passes)) / min(self.passes)

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "instructions": self.instructions,
            "instructions_spread_pct": self.spread_pct,
            "instructions_passes": len(self.passes),
        }


@dataclass(frozen=True)
class InstructionRun:
    """What a run counted (its Valgrind processes together), with what, and how."""

    counts: tuple[InstructionCount, ...]
    valgrind: str
    torch: str
    seconds: float
    torch_git: str = ""  # the commit torch was built from: two builds of one version may differ
    passes: int = PASSES
    warmup: int = WARMUP
    warm_first: bool = WARM_FIRST
    processes: int = PROCESSES

    def rows(self) -> list[dict[str, Any]]:
        return [{**count.row(), "valgrind": self.valgrind, "torch_instructions": self.torch} for count in self.counts]


def parse_valgrind_version(text: str) -> tuple[int, ...] | None:
    """``valgrind-3.19.0`` (``valgrind --version``) as (3, 19, 0); None if it is not one."""
    match = re.fullmatch(r"\s*valgrind-(\d+)\.(\d+)(?:\.(\d+))?\S*\s*", text)
    return tuple(int(part) for part in match.groups(default="0")) if match else None


def check_available(device: str = "cpu") -> str:
    """Refuse (one line, :class:`MnprofError`) what cannot count instructions here; the Valgrind version if it can."""
    if device != "cpu":
        raise MnprofError(
            f"--instructions counts CPU instructions under Valgrind; it cannot run with --device {device}: "
            "accepted: --device cpu (the default)"
        )
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise MnprofError(f"--instructions needs Valgrind (valgrind and callgrind_control on PATH): {INSTALL_HINT}")
    try:
        said = subprocess.run(["valgrind", "--version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        raise MnprofError(f"--instructions: valgrind --version failed ({error}); {INSTALL_HINT}") from None
    version = parse_valgrind_version(said.stdout)
    if version is None or version < MIN_VALGRIND:
        found = said.stdout.strip() or said.stderr.strip() or f"exit {said.returncode}"
        raise MnprofError(
            f"--instructions needs Valgrind {'.'.join(map(str, MIN_VALGRIND))} or later, found {found!r}: "
            f"{INSTALL_HINT}"
        )
    if not torch._C._valgrind_supported_platform():
        raise MnprofError(
            f"--instructions: torch {torch.__version__} was built without Valgrind client requests; "
            "accepted: a torch build for Linux x86-64 or aarch64"
        )
    return ".".join(map(str, version))


def instructions_of(text: str) -> int:
    """Instructions (the Ir event) in one Callgrind dump: its ``totals:`` line, else its ``summary:`` line."""
    events = None
    found: dict[str, list[int]] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "events":
            events = value.split()
        elif key in ("totals", "summary"):
            found[key] = [int(part) for part in value.split()]
    figures = found.get("totals") or found.get("summary")
    if events is None or "Ir" not in events or figures is None:
        raise MnprofError("a Callgrind dump has no Ir totals (events/totals lines); was it written by Callgrind?")
    index = events.index("Ir")
    return figures[index] if index < len(figures) else 0


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8", errors="replace").strip().splitlines() if path.exists() else []


def _part(text: str) -> int:
    match = re.search(r"^part:\s*(\d+)\s*$", text, re.MULTILINE)
    if match is None:
        raise MnprofError("a Callgrind dump names no part; was it written by Callgrind?")
    return int(match.group(1))


def read_dumps(directory: Path, ids: Sequence[str], passes: int) -> list[InstructionCount]:
    """The counted passes of ``ids`` from the dumps in ``directory`` (part k+1 is the k-th pass counted)."""
    by_part: dict[int, int] = {}
    for path in directory.glob("callgrind.out.*"):
        text = path.read_text(encoding="utf-8", errors="replace")
        by_part[_part(text)] = instructions_of(text)
    wanted = len(ids) * passes
    missing = [part for part in range(1, wanted + 1) if part not in by_part]
    if missing:
        raise MnprofError(f"Callgrind wrote {len(by_part)} dumps, {wanted} expected (missing part {missing[0]})")
    counts = []
    for index, config_id in enumerate(ids):
        values = tuple(by_part[index * passes + p + 1] for p in range(passes))
        if min(values) <= 0:
            raise MnprofError(f"Callgrind counted no instructions for {config_id}: collection was never on")
        counts.append(InstructionCount(config_id, values))
    return counts


def split_grid(configs: Sequence[ModelConfig], processes: int) -> list[list[ModelConfig]]:
    """``configs`` dealt to ``processes`` Valgrind processes of similar work: largest first (by alpha squared
    times resolution squared, the MACs' scale), each to the process with the least so far; each part in the
    grid's order. The same grid always splits the same way (what a configuration counts depends on the
    configurations counted before it in its process)."""
    parts: list[list[int]] = [[] for _ in range(max(1, min(processes, len(configs))))]
    loads = [0.0] * len(parts)
    by_size = sorted(range(len(configs)), key=lambda i: (-((configs[i].alpha * configs[i].resolution) ** 2), i))
    for index in by_size:
        lightest = loads.index(min(loads))
        parts[lightest].append(index)
        loads[lightest] += (configs[index].alpha * configs[index].resolution) ** 2
    return [[configs[i] for i in sorted(part)] for part in parts if part]


def _command(directory: Path, spec: Path) -> list[str]:
    return [
        "valgrind",
        "--tool=callgrind",
        "--collect-atstart=no",
        "--instr-atstart=no",  # importing torch uninstrumented; switched on once the models are built
        "--dump-instr=no",
        "--dump-line=no",
        "--compress-strings=no",
        f"--callgrind-out-file={directory / 'callgrind.out'}",
        f"--log-file={directory / 'valgrind.log'}",
        sys.executable,
        str(DRIVER),
        str(spec),
    ]


def _environment() -> dict[str, str]:
    return {
        **os.environ,
        # the child imports mnprof and a user's factory from where this process does
        "PYTHONPATH": os.pathsep.join(path for path in sys.path if path),
        # the interpreter's dictionaries probe the same slots in every run: string hashes are seeded
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": "1",  # Valgrind serialises threads: a second one would count its waiting
        "MKL_NUM_THREADS": "1",
    }


def _relay(process: subprocess.Popen[str], events: queue.Queue[tuple[int, str | None]], index: int) -> None:
    """Every line ``process`` prints, onto ``events``; None once it closed its stdout."""
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip():
            events.put((index, line.strip()))
    events.put((index, None))


def count_instructions(
    configs: Sequence[ModelConfig],
    *,
    passes: int = PASSES,
    warmup: int = WARMUP,
    warm_first: bool = WARM_FIRST,
    processes: int = PROCESSES,
    on_event: Callable[[str], None] | None = None,
) -> InstructionRun:
    """Count each configuration's instructions per forward pass of one image, in ``processes`` Valgrind processes
    running at once (the grid dealt by :func:`split_grid`).

    ``warm_first``: every configuration's ``warmup`` passes run uninstrumented before instrumentation is
    switched on, else each configuration's just before its counted passes, instrumented but not collected.
    ``on_event`` hears ``prepared`` once the models are built here, ``built`` once a process has loaded them,
    ``warmed ID`` and ``instrumented`` (with ``warm_first``), and ``counted ID`` after each configuration.
    Raises :class:`MnprofError` (one line) when Valgrind cannot run here or a process fails.
    """
    version = check_available("cpu")
    if passes < 1 or warmup < 0 or processes < 1:
        raise MnprofError(
            f"instruction counting needs at least one counted pass and one process (passes {passes}, warmup "
            f"{warmup}, processes {processes})"
        )
    started = time.monotonic()
    parts = split_grid(configs, processes)
    with tempfile.TemporaryDirectory(prefix="mnprof-callgrind-") as scratch:
        directories = _prepare_parts(Path(scratch), parts, warmup, passes, warm_first)
        if on_event is not None:
            on_event("prepared")  # the models built and calibrated here, natively; Valgrind starts next
        _run_drivers(directories, on_event)
        found = {}
        for directory, part in zip(directories, parts, strict=True):
            for count in read_dumps(directory, [config.id for config in part], passes):
                found[count.id] = count
    counts = tuple(found[config.id] for config in configs)
    return InstructionRun(
        counts,
        version,
        str(torch.__version__),
        time.monotonic() - started,
        torch_git=str(getattr(torch.version, "git_version", "") or ""),
        passes=passes,
        warmup=warmup,
        warm_first=warm_first,
        processes=len(parts),
    )


def _prepare_parts(
    scratch: Path, parts: Sequence[Sequence[ModelConfig]], warmup: int, passes: int, warm_first: bool
) -> list[Path]:
    """One directory per process, holding its part of the grid: models built and calibrated here, natively."""
    directories = [scratch / f"part{index}" for index in range(len(parts))]
    for directory, part in zip(directories, parts, strict=True):
        directory.mkdir()
        prepared = [(config.id, calibrated_model(config), fixed_input(config, 1)) for config in part]
        torch.save((prepared, warmup, passes, True, warm_first), directory / "models.pt")
        del prepared
    return directories


def _run_drivers(directories: Sequence[Path], on_event: Callable[[str], None] | None) -> None:
    """Run one Valgrind process per directory at once, relaying their events; when one fails the others are
    stopped (their counts would be of no use) and its error (the driver's, else Valgrind's) is raised."""
    running: list[subprocess.Popen[str]] = []
    failed: int | None = None
    events: queue.Queue[tuple[int, str | None]] = queue.Queue()
    with ExitStack() as stack:
        try:
            for index, directory in enumerate(directories):
                stderr = stack.enter_context((directory / "driver.err").open("w", encoding="utf-8"))
                running.append(_start_driver(directory, stderr))
                threading.Thread(target=_relay, args=(running[-1], events, index), daemon=True).start()
            open_pipes = len(running)
            while open_pipes:
                index, line = events.get()
                if line is None:
                    open_pipes -= 1
                    if running[index].wait() != 0:
                        failed = index
                        break  # the others are stopped below: their counts would be of no use
                elif on_event is not None:
                    on_event(line)
        finally:
            for process in running:
                if process.poll() is None:  # interrupted, or another process failed: they go with us
                    process.kill()
                    process.wait()
    if failed is not None:  # the driver's error, else Valgrind's
        code, directory = running[failed].returncode, directories[failed]
        said = _lines(directory / "driver.err") or _lines(directory / "valgrind.log")
        raise MnprofError(f"instruction counting under Valgrind failed: {said[-1] if said else f'exit {code}'}")


def _start_driver(directory: Path, stderr: Any) -> subprocess.Popen[str]:
    """One Valgrind process counting ``directory``'s models; its events come on stdout."""
    return subprocess.Popen(  # stderr to a file: a full pipe could never stall the driver
        _command(directory, directory / "models.pt"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=_environment(),
        cwd=os.getcwd(),
    )
