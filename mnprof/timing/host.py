"""The host a measurement ran on: CPU, cores, software stack, and a stable fingerprint to compare latencies by.

Nothing here runs at import time; every probe is a function call. Timings are only comparable
between runs with the same :func:`host_fingerprint` (same CPU model, core count, OS kernel family,
Python, torch and its BLAS/oneDNN, GPU). onnxruntime's version is recorded on each of its rows instead, so
that installing it does not orphan the PyTorch measurements already taken.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from mnprof.provenance import package_version

__all__ = [
    "CpuInfo",
    "available_cores",
    "available_memory",
    "cpu_info",
    "host_environment",
    "git_commit",
    "host_fingerprint",
    "theoretical_peak_gflops",
    "torch_build",
]

# Keys of host_environment() that decide how fast a model runs; the fingerprint hashes exactly these.
FINGERPRINT_KEYS = (
    "machine",
    "cpu_vendor",
    "cpu_model",
    "cpu_family",
    "cpu_model_number",
    "logical_cores",
    "os",
    "python",
    "torch",
    "torch_blas",
    "mkl",
    "onednn",
    "torch_parallel",
    "gpu",
)


@dataclass(frozen=True)
class CpuInfo:
    """What ``/proc/cpuinfo`` says about the first CPU (fields are ``None`` where the OS does not say)."""

    vendor: str | None
    model_name: str | None
    family: int | None
    model: int | None
    mhz: float | None
    flags: frozenset[str]


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), the default thread count for timing."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def available_memory(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Bytes of memory available to new allocations now (Linux's MemAvailable), or ``None`` where unknown."""
    try:
        for line in meminfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    """Parse the first processor block of ``/proc/cpuinfo``; falls back to :mod:`platform` elsewhere."""
    fields: dict[str, str] = {}
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.split("\n\n", 1)[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())

    def integer(key: str) -> int | None:
        try:
            return int(fields[key], 0)
        except (KeyError, ValueError):
            return None

    try:
        mhz: float | None = float(fields["cpu MHz"])
    except (KeyError, ValueError):
        mhz = None
    return CpuInfo(
        vendor=fields.get("vendor_id"),
        model_name=fields.get("model name") or platform.processor() or None,
        family=integer("cpu family"),
        model=integer("model"),
        mhz=mhz,
        flags=frozenset(fields.get("flags", "").split()),
    )


def _fp32_flops_per_cycle(cpu: CpuInfo) -> tuple[int, str] | None:
    """FP32 FLOPs per cycle per core (FMA units x SIMD lanes x 2), for microarchitectures identified by CPUID.

    Only where the family/model pins the microarchitecture down; ``None`` otherwise (no guessing).
    """
    family, model = cpu.family, cpu.model
    if cpu.vendor == "AuthenticAMD" and family is not None and model is not None:
        if family == 0x17:  # Zen (models < 0x30): 2 x 128-bit FMA; Zen 2: 2 x 256-bit FMA
            return (16, "Zen/Zen+: 2 x 128-bit FMA") if model < 0x30 else (32, "Zen 2: 2 x 256-bit FMA")
        if family == 0x19:  # Zen 3 and Zen 4 (AVX-512 is double-pumped on 256-bit units)
            return 32, "Zen 3/Zen 4: 2 x 256-bit FMA"
        if family == 0x1A and model < 0x20:  # Zen 5 server and desktop: full-width AVX-512
            return 64, "Zen 5: 2 x 512-bit FMA"
    intel_avx512 = cpu.vendor == "GenuineIntel" and "avx512f" in cpu.flags
    if intel_avx512 and re.search(r"Xeon.*(Platinum|Gold 6\d{3})", cpu.model_name or ""):  # two AVX-512 FMA ports
        return 64, "Xeon Platinum/Gold 6xxx: 2 x 512-bit FMA"
    return None


def theoretical_peak_gflops(threads: int, cpu: CpuInfo | None = None) -> tuple[float | None, str]:
    """FP32 peak of ``threads`` cores at the clock the OS reports, and how it was derived.

    Returns ``(None, reason)`` when the CPU's microarchitecture or clock cannot be identified.
    The reported clock is the nominal one: turbo can exceed it, so measured fractions above 1 are possible.
    """
    cpu = cpu or cpu_info()
    rate = _fp32_flops_per_cycle(cpu)
    if rate is None:
        return None, f"CPU {cpu.model_name!r} (family {cpu.family}, model {cpu.model}) not identified"
    if not cpu.mhz:
        return None, "clock not reported"
    flops, how = rate
    gflops = threads * cpu.mhz / 1000 * flops
    return gflops, f"{how}; {threads} cores x {cpu.mhz / 1000:.2f} GHz x {flops} FP32 FLOP/cycle"


def torch_build() -> dict[str, Any]:
    """torch's version and the BLAS, oneDNN and threading it was built with (from ``torch.__config__``)."""
    shown = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=(\w+)", shown)
    mkl = re.search(r"Math Kernel Library Version ([\w.]+)", shown)
    onednn = re.search(r"(?:MKL-DNN|oneDNN) v([\d.]+)", shown)
    parallel = re.search(r"ATen parallel backend: (.+)", torch.__config__.parallel_info())
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "torch": torch.__version__,
        "torch_blas": blas.group(1) if blas else None,
        "mkl": mkl.group(1) if mkl else None,
        "onednn": onednn.group(1) if onednn and torch.backends.mkldnn.is_available() else None,
        "torch_parallel": parallel.group(1).strip() if parallel else None,
        "gpu": gpu,
    }


def git_commit(directory: Path | None = None) -> str | None:
    """The commit of the git checkout mnprof runs from (``+dirty`` with local changes), or ``None``."""
    directory = directory or Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head or None


def host_fingerprint(env: dict[str, Any]) -> str:
    """A short stable hash of the keys that decide speed; equal fingerprints mean comparable latencies."""
    decisive = {key: env.get(key) for key in FINGERPRINT_KEYS}
    digest = hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()
    return digest[:16]


def host_environment() -> dict[str, Any]:
    """Everything a latency depends on or is reported with: CPU, cores, OS, Python, torch build, versions, date."""
    cpu = cpu_info()
    env: dict[str, Any] = {
        "machine": platform.machine(),
        "cpu_vendor": cpu.vendor,
        "cpu_model": cpu.model_name,
        "cpu_family": cpu.family,
        "cpu_model_number": cpu.model,
        "cpu_mhz": cpu.mhz,
        "logical_cores": os.cpu_count(),
        "available_cores": available_cores(),
        "os": f"{platform.system()} {platform.release().split('-')[0]}",
        "os_release": platform.release(),
        "python": platform.python_version(),
        **torch_build(),
        "onnxruntime": package_version("onnxruntime"),
        "mnprof": package_version("mnprof"),
        "git_commit": git_commit(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    env["host_fingerprint"] = host_fingerprint(env)
    return env
