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
    "cgroup_memory_room",
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


def available_memory(
    meminfo: Path = Path("/proc/meminfo"),
    *,
    cgroup: Path = Path("/proc/self/cgroup"),
    cgroup_root: Path = Path("/sys/fs/cgroup"),
) -> int | None:
    """Bytes of memory available to new allocations now, or ``None`` where unknown: the smaller of Linux's
    MemAvailable and the room this process's cgroup memory limits leave (:func:`cgroup_memory_room`; a container
    sees the host's MemAvailable, not its own limit)."""
    known = [room for room in (_mem_available(meminfo), cgroup_memory_room(cgroup, cgroup_root)) if room is not None]
    return min(known) if known else None


def _mem_available(meminfo: Path) -> int | None:
    try:
        for line in meminfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


# cgroup v1 writes "no limit" as the largest page-aligned 64-bit count (9223372036854771712); v2 as "max".
NO_CGROUP_LIMIT = 2**60
# Per version: the limit, the usage, and the memory.stat keys of the file cache it can reclaim (v1: the
# hierarchy's, total_*, where the kernel gives it; v2's are the hierarchy's already).
_CGROUP_FILES = {
    1: ("memory.limit_in_bytes", "memory.usage_in_bytes", ("total_inactive_file", "inactive_file")),
    2: ("memory.max", "memory.current", ("inactive_file",)),
}


def cgroup_memory_room(cgroup: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Bytes the memory limits of this process's cgroup and its ancestors leave for new allocations now: at each
    level with a limit, the limit less the usage, the usage less its inactive file cache (which the kernel
    reclaims before it kills, and which MemAvailable counts as available too); the smallest. ``None`` where no
    level has a limit ('max', or an absurdly large number) or there is no cgroup file system (not Linux).

    ``cgroup`` is ``/proc/self/cgroup`` (``ID:controllers:path`` lines): the v1 ``memory`` controller's path, under
    ``root/memory``, else the v2 path (``0::path``), under ``root``. A path the mount does not show (a cgroup
    namespace) is read at the mount's top, which is then the process's own cgroup."""
    try:
        lines = cgroup.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    paths = {}
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if "memory" in controllers.split(","):
            paths[1] = path
        elif hierarchy == "0" and not controllers:
            paths[2] = path
    version = 1 if 1 in paths else 2 if 2 in paths else None  # hybrid hosts keep the memory controller on v1
    if version is None:
        return None
    top = root / "memory" if version == 1 else root
    limit_file, usage_file, cache_keys = _CGROUP_FILES[version]
    directory = Path(os.path.normpath(top / paths[version].lstrip("/")))
    if top not in (directory, *directory.parents) or not directory.is_dir():
        directory = top
    rooms = []
    while True:
        limit = _cgroup_number(directory / limit_file)
        usage = _cgroup_number(directory / usage_file)
        if limit is not None and limit < NO_CGROUP_LIMIT and usage is not None:
            cache = _cgroup_stat(directory / "memory.stat", cache_keys)
            rooms.append(max(limit - max(usage - cache, 0), 0))
        if directory == top:
            return min(rooms) if rooms else None
        directory = directory.parent


def _cgroup_number(path: Path) -> int | None:
    """A cgroup file's one number; ``None`` for 'max', or where it cannot be read."""
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _cgroup_stat(path: Path, keys: tuple[str, ...]) -> int:
    """The first of ``keys`` that ``memory.stat`` (``key value`` lines) gives, else 0."""
    try:
        stats = dict(line.split(maxsplit=1) for line in path.read_text(encoding="ascii").splitlines() if " " in line)
        return next((int(stats[key]) for key in keys if key in stats), 0)
    except (OSError, UnicodeDecodeError, ValueError):
        return 0


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
