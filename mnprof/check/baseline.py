"""The baseline file: counting every configuration into entries, and writing and reading the document.

Each entry is one model at one alpha and resolution, keyed ``name@alpha-resolution``, with the
exact params and MACs of every counter and fvcore's per-operator totals. The document is sorted,
diff-friendly JSON with a kind, a schema version and the provenance of the counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from mnprof.check.settings import BUILTIN, CheckSettings, ModelSpec, entry_key
from mnprof.counting.count import count_many
from mnprof.counting.training import saved_activation_elements
from mnprof.errors import MnprofError
from mnprof.files.documents import read_json_file
from mnprof.files.schemas import schema_problem
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
    "refuse_other_models",
    "refuse_part",
    "refuse_unrelated",
]

BASELINE_SCHEMA_VERSION = 1
BASELINE_KIND = "mnprof.baseline"
_BUILTIN_MODEL = ModelSpec(BUILTIN, BUILTIN)


# ------------------------------------------------------------------------------------ entries


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
        if report.training is not None and report.torch_training is not None:  # --pass training
            counts["training"] = {
                "macs": report.training.macs,  # analytic: forward + backward, one image
                "backward_macs": report.training.backward_macs,
                "torch_macs": report.torch_training.total,  # FlopCounterMode's forward + backward
                "saved_activation_bytes_measured": report.saved_bytes_measured,  # kept for the backward, one image
            }
            saved = saved_activation_elements(report.analytic)
            if saved is not None:  # a layer plan's model of what autograd keeps
                counts["training"]["saved_activation_bytes"] = 4 * saved
        key = entry_key(model, config.alpha, config.resolution)
        entries[key] = _entry(model, config.alpha, config.resolution, config.num_classes, dict(sorted(counts.items())))
    return entries


def measure(settings: CheckSettings, on_done: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Count every model x alpha x resolution of ``settings`` (its ``--shard`` part); entries keyed
    ``name@alpha-resolution``.

    Every counter, for every model: a user family's "analytic" count is its traced conv and linear modules
    (:func:`mnprof.counting.traced.traced_count`), so that its activations are guarded as mnprof's own are."""
    entries: dict[str, dict[str, Any]] = {}
    chosen = set(settings.keys())  # the grid, or its --shard part
    for model in settings.models:
        configs = [
            ModelConfig(a, r, settings.num_classes, family=model.family)
            for a in settings.alphas
            for r in settings.resolutions
            if (model, a, r) in chosen
        ]
        if not configs:
            continue

        def done(config: ModelConfig, model: ModelSpec = model) -> None:
            if on_done is not None:
                on_done(entry_key(model, config.alpha, config.resolution))

        entries.update(builtin_entries(count_many(configs, on_done=done, training=settings.training), model))
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
    problem = schema_problem(document, "baseline")  # mnprof/schemas/baseline.schema.json
    if problem is not None:
        raise MnprofError(f"baseline {path} is corrupt ({problem}); {regenerate}")
    for key, entry in document["entries"].items():  # the key is what check matches: it must say what the entry is
        if "alpha" not in entry:
            continue
        expected = f"{key.rpartition('@')[0]}@{format_alpha(entry['alpha'])}-{entry['resolution']}"
        if key != expected:
            raise MnprofError(
                f"baseline {path}: entry {key!r} holds alpha {entry['alpha']!r} and resolution "
                f"{entry['resolution']!r}, whose key is {expected!r} (two alphas may have shared one key before "
                f"mnprof kept every digit of alpha); {regenerate}"
            )
    return document


def refuse_other_models(document: Mapping[str, Any], settings: CheckSettings, path: Path) -> None:
    """Refuse a baseline entry whose key is a configuration checked but which was counted with another number of
    classes: the key does not say it, so two models would be compared as one (a classifier grown at 10 classes,
    checked against its counts at 1000, would only have "shrunk"). A factory that moved (another ``model`` target)
    is still compared: whatever it builds now is what the gate guards."""
    entries = document["entries"]
    for model, alpha, resolution in settings.keys():  # noqa: SIM118 - a method of CheckSettings, not a dict
        key = entry_key(model, alpha, resolution)
        classes = entries.get(key, {}).get("num_classes", settings.num_classes)
        if classes != settings.num_classes:
            raise MnprofError(
                f"baseline {path}: entry {key} was counted with {classes} classes, this check counts "
                f"{settings.num_classes}; accepted: the baseline's number of classes (--classes {classes}), or a "
                f"new baseline (mnprof baseline --out {path})"
            )


def refuse_unrelated(document: Mapping[str, Any], settings: CheckSettings, path: Path) -> None:
    """Refuse a baseline that holds none of the configurations checked: every one would be "added", nothing
    compared, and a gate that compares nothing passes whatever the models do (an empty baseline, a renamed model,
    another grid)."""
    keys = [entry_key(*key) for key in settings.keys()]  # noqa: SIM118 - a method of CheckSettings, not a dict
    entries = sorted(document["entries"])
    if set(keys) & set(entries):
        return
    held = f"it holds {len(entries)}: {', '.join(entries[:3])}{', ...' if len(entries) > 3 else ''}"
    if not entries:
        held = "it holds none"
    raise MnprofError(
        f"baseline {path} has none of the {len(keys)} configurations checked ({', '.join(keys[:3])}"
        f"{', ...' if len(keys) > 3 else ''}; {held}), so nothing would be compared; accepted: a baseline of these "
        f"models and grid (mnprof baseline --out {path}), or --model/--alpha/--resolution it holds"
    )


def training_to_check(document: Mapping[str, Any], step: str | None, path: Path) -> bool:
    """Whether ``mnprof check`` counts a training step: when asked (``--pass training``, refused against a baseline
    that recorded none), or, unasked, when the baseline recorded training counts (a gate keeps guarding what its
    baseline holds)."""
    recorded = any("training" in entry.get("counts", {}) for entry in document.get("entries", {}).values())
    if step == "training" and not recorded:
        raise MnprofError(
            f"--pass training: baseline {path} has no training counts to compare with; accepted: a baseline "
            "recorded with mnprof baseline --pass training, or --pass forward"
        )
    return step == "training" or (step is None and recorded)


def refuse_part(document: Mapping[str, Any], settings: CheckSettings) -> None:
    """Refuse a shard's baseline (``mnprof baseline --shard``) checked as a whole baseline, or as another shard:
    every configuration of the other parts would only be "added", and the gate would compare a fraction of what it
    guards."""
    part = document.get("shard")
    if part is None:
        return
    name = f"{part['index']}/{part['count']}"
    if settings.shard is not None and str(settings.shard) == name:
        return
    raise MnprofError(
        f"baseline {settings.baseline} is shard {name} of a baseline (mnprof baseline --shard); accepted: the "
        f"shards joined by mnprof merge, or mnprof check --shard {name}"
    )
