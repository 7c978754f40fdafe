"""A results-file row read back field by field: each value parsed and checked (declared types, finite
non-negative numbers, fractions, the calls lining up with their turns, an id that is its configuration's).

Plain values out, no record types: :mod:`mnprof.timing.records` assembles them, so that a file another writer
changed is refused in one line before anything reads it. No torch here either.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from mnprof.errors import MnprofError
from mnprof.model.config import ModelConfig, family_named
from mnprof.parsing import parse_choice
from mnprof.runtimes.registry import Backend, Device, parse_backend

__all__ = [
    "check_fields",
    "gemm_peak_fields",
    "key_fields",
    "output_checks",
    "provenance_fields",
    "raw_fields",
    "timed",
]


def key_fields(row: Mapping[str, Any]) -> tuple[ModelConfig, Backend, int, int, Device]:
    """A row's measurement key (configuration, backend, batch size, threads, device); its ``id``, where it has
    one, must be its configuration's."""
    try:
        config = ModelConfig(
            row["alpha"],
            row["resolution"],
            row.get("num_classes", 1000),
            row.get("variant", "standard"),
            row.get("rounding", "floor"),
            family_named(row.get("family", "mobilenetv1")),
        )
        key = (
            config,
            parse_backend(row["backend"]),
            _integer(row["batch_size"], "batch_size"),
            _integer(row["threads"], "threads"),
            parse_choice(row["device"], Device, "device"),
        )
    except KeyError as missing:
        raise MnprofError(f"a measurement lacks {missing.args[0]}") from None
    if "id" in row and row["id"] != config.id:
        raise MnprofError(
            f"a measurement's id {str(row['id'])[:80]!r} is not that of its alpha, resolution and family "
            f"({config.id!r}); accepted: the id mnprof wrote, or none"
        )
    return key


def provenance_fields(row: Mapping[str, Any], device: Device, environment: Mapping[str, Any]) -> dict[str, Any]:
    """Where a row was measured; ``environment`` fills in the processor where an older row lacks it."""
    return {
        "runtime_version": row.get("runtime_version"),
        "host": row.get("host"),
        "cpu_model": row.get("cpu_model", environment.get("cpu_model")),
        "gpu": row.get("gpu", environment.get("gpu")) if device is Device.CUDA else None,
        "measured_at": row.get("measured_at"),
        "load_avg_1min": row.get("load_avg_1min"),
        "run_id": row.get("run_id") if isinstance(row.get("run_id"), str) else None,
    }


def output_checks(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row's output check and what the runtime held, as :class:`~mnprof.timing.records.TimingRecord`'s fields."""
    return {
        "output_max_abs_error": row.get("output_max_abs_error"),
        "output_tolerance": row.get("output_tolerance"),
        "output_cosine": _fraction(row.get("output_cosine"), "output_cosine"),
        "output_top1_agreement": _fraction(row.get("output_top1_agreement"), "output_top1_agreement"),
        "quantization": _settings(row.get("quantization")),
        "model_bytes": _bytes(row.get("model_bytes")),
    }


def timed(row: Mapping[str, Any]) -> bool:
    """Whether a row posts a time (no error, a headline); refused where its calls are there without the headline."""
    if not row.get("error") and row.get("latency_ms_p5") is None and row.get("latency_ms_samples"):
        raise MnprofError(  # timed (its calls are there) but without the headline: not what mnprof writes
            "a timed measurement lacks latency_ms_p5 (the headline); accepted: a row mnprof table wrote"
        )
    return not (row.get("error") or row.get("latency_ms_p5") is None)


def raw_fields(row: Mapping[str, Any]) -> tuple[tuple[Any, ...], ...]:
    """A timed row's calls and turns (:class:`~mnprof.timing.records.RawSamples`' fields, in order), which must
    line up: the calls of each turn, one start, host factor and pass per turn."""
    latency_ms, turn_sizes, starts, discarded, factors, passes = (
        tuple(row.get(name) or ())
        for name in (
            "latency_ms_samples",
            "turn_sizes",
            "turn_started_unix",
            "latency_ms_discarded",
            "turn_host_factors",
            "turn_passes",
        )
    )
    if latency_ms and not turn_sizes:  # schema 3 and 4 always write the turns with the calls
        raise MnprofError(
            f"latency_ms_samples holds {len(latency_ms)} calls but turn_sizes is empty; "
            "accepted: the calls of each turn, in order"
        )
    if turn_sizes and sum(turn_sizes) != len(latency_ms):
        raise MnprofError(
            f"turn_sizes add up to {sum(turn_sizes)} calls but latency_ms_samples holds "
            f"{len(latency_ms)}; accepted: the calls of each turn, in order"
        )
    for name, values in (("turn_started_unix", starts), ("turn_host_factors", factors), ("turn_passes", passes)):
        if values and len(values) != len(turn_sizes):
            raise MnprofError(f"{name} has {len(values)} entries for {len(turn_sizes)} turns; accepted: one per turn")
    return latency_ms, turn_sizes, starts, discarded, factors, passes


def gemm_peak_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """A ``gemm_peaks`` entry's fields (:class:`~mnprof.timing.records.GemmPeak`'s); refused where it lacks a key."""
    try:
        return {
            "device": parse_choice(row["device"], Device, "device"),
            "threads": row["threads"],
            "kernel": row["kernel"],
            "gflops": row["gflops"],
            "gflops_by_kernel": dict(row["gflops_by_kernel"]),
            "int8_kernel": row.get("int8_kernel"),
            "int8_gops": row.get("int8_gops"),
        }
    except KeyError as missing:
        raise MnprofError(f"a GEMM peak lacks {missing.args[0]}") from None


# Keys an older writer left out read as None; where a value is there, it must have the declared type.
_KINDS = {"float": (int, float), "int": (int,), "bool": (bool,), "str": (str,)}


def check_fields(record: Any, prefix: str = "") -> None:
    """Every field present has its declared type: numbers finite and >= 0 (no string, NaN or negative time)."""
    for field in fields(record):
        value = getattr(record, field.name)
        if value is None:
            continue
        kind = str(field.type).split(" | ")[0]
        allowed = _KINDS.get(kind)
        if allowed is None:
            continue
        wrong_type = not isinstance(value, allowed) or (kind != "bool" and isinstance(value, bool))
        if wrong_type or (kind in ("float", "int") and not (math.isfinite(value) and value >= 0)):
            accepted = {"float": "a finite number >= 0", "int": "an integer >= 0"}.get(kind, f"a {kind}")
            raise MnprofError(f"{prefix}{field.name} is {value!r}; accepted: {accepted}")


def _bytes(value: Any) -> int | None:
    """A size read back: ``None`` or an integer >= 0."""
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise MnprofError(f"model_bytes is {value!r}; accepted: an integer >= 0 or null")
    return value


def _fraction(value: Any, name: str) -> float | None:
    """A similarity or share read back: ``None``, or a finite number in [-1, 1]."""
    if value is None:
        return None
    low = 0 if name == "output_top1_agreement" else -1
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= 1:
        raise MnprofError(f"{name} is {value!r}; accepted: a number in [{low}, 1] or null")
    return float(value)


def _settings(value: Any) -> Mapping[str, Any] | None:
    """Quantisation settings read back: ``None`` or an object of plain text and integers."""
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(v, (str, int)) and not isinstance(v, bool) for v in value.values()
    ):
        raise MnprofError(f"quantization is {value!r}; accepted: an object of text and integers or null")
    return value


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MnprofError(f"{name} {value!r} is not a count; accepted: an integer >= 1")
    return value
