"""The baseline file: counting every configuration into entries, and writing and reading the document.

Each entry is one model at one alpha and resolution, keyed ``name@alpha-resolution``, with the
exact params and MACs of every counter and fvcore's per-operator totals. The document is sorted,
diff-friendly JSON with a kind, a schema version and the provenance of the counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from mnprof.check.settings import BUILTIN, CheckSettings, ModelSpec
from mnprof.counting.count import count_many
from mnprof.errors import MnprofError
from mnprof.files import read_json_file
from mnprof.model import families
from mnprof.model.config import ModelConfig, format_alpha
from mnprof.model.networks import build_model
from mnprof.provenance import count_provenance

__all__ = [
    "BASELINE_KIND",
    "BASELINE_SCHEMA_VERSION",
    "baseline_document",
    "builtin_entries",
    "entry_key",
    "entry_macs",
    "iter_modules",
    "load_baseline",
    "measure",
]

BASELINE_SCHEMA_VERSION = 1
BASELINE_KIND = "mnprof.baseline"
_BUILTIN_MODEL = ModelSpec(BUILTIN, BUILTIN)


# ------------------------------------------------------------------------------------ entries


def entry_key(model: ModelSpec, alpha: float, resolution: int) -> str:
    return f"{model.name}@{format_alpha(alpha)}-{resolution}"


def _entry(model: ModelSpec, alpha: float, resolution: int, num_classes: int, counts: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": model.target,
        "alpha": alpha,
        "resolution": resolution,
        "num_classes": num_classes,
        "counts": counts,
    }


def _counts(params: int, fvcore: Any, thop: Any) -> dict[str, Any]:
    """One entry's counts from a model's parameter total and its fvcore and thop results."""
    return {
        "pytorch": {"params": params},
        "fvcore": {
            "macs": fvcore.total,
            "macs_by_operator": dict(sorted(fvcore.by_operator.items())),
            "unsupported_ops": dict(sorted(fvcore.unsupported_ops.items())),
        },
        "thop": {"macs": thop.total, "params": thop.params},
    }


def builtin_entries(reports: Sequence[Any], model: ModelSpec = _BUILTIN_MODEL) -> dict[str, dict[str, Any]]:
    """Baseline entries of ``model`` from count reports (:func:`mnprof.counting.count.count_many`), so that a
    caller that already counted does not trace the models again."""
    entries = {}
    for report in reports:
        config = report.config
        counts = _counts(report.params_model, report.fvcore, report.thop)
        analytic = counts["analytic"] = {
            "macs": report.analytic.macs,
            "params": report.analytic.params(),
            "activations": report.analytic.activations,  # conv and FC output elements, one image
        }
        if report.analytic.planned:  # a user family's traced layers do not say what stays alive
            analytic["peak_activation_bytes"] = 4 * report.analytic.peak_working_set(1)  # float32, batch 1
        key = entry_key(model, config.alpha, config.resolution)
        entries[key] = _entry(model, config.alpha, config.resolution, config.num_classes, dict(sorted(counts.items())))
    return entries


def measure(settings: CheckSettings, on_done: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Count every model x alpha x resolution of ``settings``; entries keyed ``name@alpha-resolution``.

    Every counter, for every model: a user family's "analytic" count is its traced conv and linear modules
    (:func:`mnprof.counting.shapes.traced_count`), so that its activations are guarded as mnprof's own are."""
    entries: dict[str, dict[str, Any]] = {}
    for model in settings.models:
        configs = [
            ModelConfig(a, r, settings.num_classes, family=model.family)
            for a in settings.alphas
            for r in settings.resolutions
        ]

        def done(config: ModelConfig, model: ModelSpec = model) -> None:
            if on_done is not None:
                on_done(entry_key(model, config.alpha, config.resolution))

        entries.update(builtin_entries(count_many(configs, on_done=done), model))
    return entries


def entry_macs(entries: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """Each entry's MACs, to match it with a control of similar size: analytic where mnprof has a plan, else
    fvcore's."""
    macs = {}
    for key, entry in entries.items():
        counts = entry.get("counts", {})
        value = counts.get("analytic", {}).get("macs") or counts.get("fvcore", {}).get("macs")
        if isinstance(value, int) and value > 0:
            macs[key] = value
    return macs


def iter_modules(settings: CheckSettings) -> Iterator[tuple[ModelSpec, float, int, nn.Module]]:
    """(model spec, alpha, resolution, built module) for every entry: one module per model and alpha, or per
    model, alpha and resolution for a factory that takes ``resolution``."""
    for model in settings.models:
        factory = None if model.builtin else model.load()
        for alpha in settings.alphas:
            if factory is None:
                config = ModelConfig(alpha, settings.resolutions[0], settings.num_classes, family=model.family)  # type: ignore[arg-type]
                shared: nn.Module | None = build_model(config)
            elif families.takes_resolution(factory):
                shared = None  # built anew for each resolution below
            else:
                shared = families.call_factory(model.target, alpha, settings.num_classes)
            for resolution in settings.resolutions:
                if shared is not None:
                    yield model, alpha, resolution, shared
                else:
                    built = families.call_factory(model.target, alpha, settings.num_classes, resolution)
                    yield model, alpha, resolution, built


# ------------------------------------------------------------------------------------ document


def baseline_document(
    entries: Mapping[str, Mapping[str, Any]], latency: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    document = {
        "schema_version": BASELINE_SCHEMA_VERSION,
        "kind": BASELINE_KIND,
        "provenance": count_provenance(),
        "entries": dict(sorted(entries.items())),
    }
    if latency is not None:
        document["latency"] = dict(latency)
    return document


def load_baseline(path: Path) -> dict[str, Any]:
    """Read and validate a baseline; every problem is a one-line MnprofError saying how to regenerate."""
    regenerate = f"regenerate it with: mnprof baseline --out {path}"
    document = read_json_file(path, "baseline", regenerate)
    if not isinstance(document, dict) or document.get("kind") != BASELINE_KIND:
        raise MnprofError(f"baseline {path} is not an mnprof baseline (kind {BASELINE_KIND!r} missing); {regenerate}")
    version = document.get("schema_version")
    if type(version) is not int or version != BASELINE_SCHEMA_VERSION:  # ``true`` is not version 1
        raise MnprofError(
            f"baseline {path} has schema version {version!r}, this mnprof reads {BASELINE_SCHEMA_VERSION}; {regenerate}"
        )
    problem = _baseline_problem(document)
    if problem is not None:
        raise MnprofError(f"baseline {path} is corrupt ({problem}); {regenerate}")
    return document


def _is_count(value: Any) -> bool:
    return type(value) is int and value >= 0


def _is_time(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and value >= 0


def _baseline_problem(document: Mapping[str, Any]) -> str | None:
    """What is wrong inside a baseline (the first thing found, with its path), or ``None``.

    Entries: ``{key: {"model": str, "alpha": number, "resolution": int, "num_classes": int, "counts":
    {counter: {metric: count, or {operator: count}}}}}`` where a count is an integer >= 0 (never a string,
    a float, NaN or a negative number: each would make later checks pass or fail for the wrong reason).
    """
    entries = document.get("entries")
    if not isinstance(entries, dict):
        return "entries malformed: not an object"
    for key, entry in entries.items():
        where = f"entries[{key!r}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("counts"), dict):
            return f"entries malformed: {where} has no counts object"
        if not isinstance(entry.get("model"), str) or not _is_count(entry.get("resolution")):
            return f"entries malformed: {where} lacks its model or resolution"
        for counter, values in entry["counts"].items():
            if not isinstance(values, dict):
                return f"{where}.counts.{counter} is not an object"
            for metric, value in values.items():
                inner = value if isinstance(value, dict) else {"": value}
                for operator, count in inner.items():
                    if not _is_count(count):
                        name = f"{where}.counts.{counter}.{metric}" + (f"[{operator}]" if operator else "")
                        return f"{name} is {count!r}, not a count; accepted: an integer >= 0"
    latency = document.get("latency")
    if latency is None:
        return None
    if not isinstance(latency, dict) or not isinstance(latency.get("entries"), dict):
        return "latency is not an object with entries"
    if not isinstance(latency.get("host_fingerprint"), str) or not _is_count(latency.get("threads")):
        return "latency lacks its host_fingerprint or threads"
    required = ("latency_ms", "relative") if latency.get("method") is not None else ("latency_ms_median",)
    if latency.get("method") is not None and not all(
        isinstance(entry, dict) and isinstance(entry.get("control"), str) for entry in latency["entries"].values()
    ):
        return "latency.entries: an entry lacks its control; accepted: the file mnprof baseline --latency writes"
    for key, entry in latency["entries"].items():
        for name in required:  # an older baseline (no method) keeps its medians; check --latency refuses it
            value = entry.get(name) if isinstance(entry, dict) else None
            if not _is_time(value) or not value:
                return f"latency.entries[{key!r}].{name} is {value!r}; accepted: a number > 0"
        for name in ("relative_ci_low", "relative_ci_high") if latency.get("method") is not None else ():
            value = entry.get(name)
            if value is not None and not _is_time(value):
                return f"latency.entries[{key!r}].{name} is {value!r}; accepted: a number >= 0 or null"
    return None
