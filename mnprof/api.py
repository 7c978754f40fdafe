"""mnprof's public Python API: count models, record a baseline and check against it, as the commands do.

Each function takes what the matching command takes, validated by the same functions (a bad value raises
:class:`MnprofError`, a ``ValueError`` whose message is the one line the command prints), and returns the typed
records the command renders:

- :func:`count`: :class:`~mnprof.counting.count.CountReport` per configuration (``mnprof table --no-timing``);
- :func:`settings`: the gate's :class:`~mnprof.check.settings.CheckSettings`, ``[tool.mnprof]`` overridden;
- :func:`record_baseline`: the baseline document (``mnprof baseline``), written only where asked;
- :func:`check`: the :class:`~mnprof.check.findings.CheckResult` (``mnprof check``), with ``passed`` and ``failed``;
- :func:`over_budget`: the metrics of counted configurations beyond fixed limits (the pytest plugin's assertion).

Models run in the calling process, inside the fence around user code (:func:`mnprof.user_code.user_code`); the
command line's worker process, which outlives a crash or an ``os._exit``, is the command line's own.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnprof.check.baseline import (
    baseline_document,
    load_baseline,
    measure,
    refuse_other_models,
    refuse_part,
    refuse_unrelated,
    training_to_check,
)
from mnprof.check.findings import CheckResult, Finding, compare
from mnprof.check.settings import CheckSettings, ModelSpec, entry_key, load_settings, parse_tolerance
from mnprof.counting.count import CountReport, count_many
from mnprof.errors import MnprofError
from mnprof.files import atomic_write_text, check_writable, dumps
from mnprof.model import families
from mnprof.model.config import (
    MAX_ALPHA,
    MAX_RESOLUTION,
    MIN_RESOLUTION,
    ModelConfig,
    family_grid,
    grid,
    parse_alphas,
    parse_resolutions,
)

__all__ = [
    "METRICS",
    "CheckResult",
    "CheckSettings",
    "CountReport",
    "Finding",
    "MnprofError",
    "Overrun",
    "check",
    "count",
    "entry_of",
    "limits_of",
    "metrics",
    "over_budget",
    "record_baseline",
    "settings",
]

Alphas = float | str | Iterable[float] | None
Resolutions = int | str | Iterable[int] | None
Models = str | Sequence[str] | None
PathLike = str | os.PathLike[str] | None

# What a budget may limit, each an exact integer for one image: the model's parameters (every tensor of
# ``model.parameters()``), its MACs as the table's MMACs column counts them (conv and linear multiply-accumulates:
# the paper's Mult-Adds; a user family's traced on the meta device) and its activations (conv and linear output
# elements).
METRICS: dict[str, str] = {
    "params": "parameters, every tensor of model.parameters()",
    "macs": "conv and linear multiply-accumulates for one image, the table's MMACs",
    "activations": "conv and linear output elements for one image",
}


# ------------------------------------------------------------------------------------ arguments


def _items(value: object) -> list[Any]:
    """One value, or the values of an iterable (a string is one value)."""
    return list(value) if isinstance(value, Iterable) and not isinstance(value, (str, bytes)) else [value]


def _alphas(value: Alphas) -> tuple[float, ...] | None:
    """Alphas as ``--alpha`` takes them (``"1.0,0.5"``), or as numbers: one, or any iterable."""
    if value is None:
        return None
    if isinstance(value, str):
        return parse_alphas(value)
    items = _items(value)
    for item in items:  # as parse_alphas reads text; a bool is no alpha, though str(True) would say so too
        if isinstance(item, bool) or not isinstance(item, numbers.Real):  # numpy's numbers too
            raise MnprofError(f"alpha {item!r} is not a number; accepted: numbers in (0, {MAX_ALPHA:g}]")
    return parse_alphas(",".join(repr(float(item)) for item in items))


def _resolutions(value: Resolutions) -> tuple[int, ...] | None:
    """Resolutions as ``--resolution`` takes them (``"224,128"``), or as integers: one, or any iterable."""
    if value is None:
        return None
    if isinstance(value, str):
        return parse_resolutions(value)
    items = _items(value)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, numbers.Integral):
            accepted = f"integers in [{MIN_RESOLUTION}, {MAX_RESOLUTION}]"
            raise MnprofError(f"resolution {item!r} is not an integer; accepted: {accepted}")
    return parse_resolutions(",".join(str(int(item)) for item in items))


def _path(value: PathLike) -> Path | None:
    return None if value is None else Path(value)


def _specs(models: Models, pyproject: Path | None) -> tuple[ModelSpec, ...]:
    """Model specs as ``--model`` takes them (one string, or several), names unique; factories imported now, so
    that a bad one is an error before any work."""
    texts = [models] if isinstance(models, str) else list(models or ())
    if not texts:
        raise MnprofError(f"no model named; accepted: {families.accepted_models()}")
    declared = families.declared_families(families.tool_table(pyproject))
    specs = tuple(ModelSpec.parse(text, declared) for text in texts)
    _refuse_repeated_names(specs)
    for spec in specs:
        if not spec.builtin:
            spec.load()
    return specs


def _refuse_repeated_names(specs: Iterable[ModelSpec]) -> None:
    """Model names key the baseline's entries: two models of one name would be compared as one."""
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise MnprofError(f"model names must be unique, got {', '.join(names)}; accepted: NAME=package.module:factory")


def entry_of(report: CountReport, name: str | None = None) -> str:
    """The configuration as the baseline keys it and the gate names it: ``NAME@alpha-resolution`` (``name``:
    default, the family's)."""
    family = report.config.family
    spec = ModelSpec(name or str(family), getattr(family, "target", str(family)))
    return entry_key(spec, report.config.alpha, report.config.resolution)


# ------------------------------------------------------------------------------------ counting


def count(
    models: Models = "mobilenetv1",
    alphas: Alphas = None,
    resolutions: Resolutions = None,
    *,
    num_classes: int = 1000,
    every_counter: bool = False,
    pyproject: PathLike = None,
    on_done: Callable[[ModelConfig], None] | None = None,
) -> list[CountReport]:
    """Count every configuration of ``models`` as ``mnprof table --no-timing`` does.

    Args:
        models: ``--model`` as the commands take it: ``mobilenetv1``, ``mobilenetv2``, ``mobilenetv3-large``,
            ``mobilenetv3-small``, a name from ``[tool.mnprof.families]`` or the ``mnprof.models`` entry points, or
            ``[NAME=]package.module:factory``; a list for several.
        alphas: width multipliers in (0, 4]: a number, numbers, or ``"1.0,0.5"``. Default: the family's published
            values (MobileNetV1's for a user family).
        resolutions: input sizes in [32, 2048]: an integer, integers, or ``"224,128"``. Default: as ``alphas``.
        num_classes: classifier outputs passed to each factory.
        every_counter: add torch's ``FlopCounterMode`` and the shape counter (about a second more, once).
        pyproject: the ``pyproject.toml`` whose ``[tool.mnprof.families]`` names families (default:
            ./pyproject.toml).
        on_done: called with each configuration once it is counted.

    Returns:
        One :class:`CountReport` per configuration, model by model, widest and largest first: exact params and
        MACs of every counter, activations, and each counter reconciled with the analytic count.
    """
    chosen_alphas, chosen_resolutions = _alphas(alphas), _resolutions(resolutions)
    ModelConfig(1.0, 224, num_classes)  # validates num_classes before anything is imported
    configs: list[ModelConfig] = []
    for spec in _specs(models, _path(pyproject)):
        published = family_grid(spec.family, num_classes=num_classes)
        if chosen_alphas is None and chosen_resolutions is None:
            configs += published
            continue
        configs += grid(
            chosen_alphas or tuple(dict.fromkeys(c.alpha for c in published)),
            chosen_resolutions or tuple(dict.fromkeys(c.resolution for c in published)),
            num_classes=num_classes,
            family=spec.family,  # type: ignore[arg-type] - grid takes a UserFamily as ModelConfig does
        )
    return count_many(configs, on_done, every_counter=every_counter)


def metrics(report: CountReport) -> dict[str, int]:
    """The metrics a budget limits (:data:`METRICS`), exact integers, for one counted configuration."""
    return {
        "params": report.params_model,
        "macs": report.analytic.macs,
        "activations": report.analytic.activations,
    }


@dataclass(frozen=True)
class Overrun:
    """One metric of one configuration beyond its limit."""

    entry: str  # NAME@alpha-resolution, as the baseline keys it
    metric: str  # a key of METRICS
    limit: int
    got: int

    @property
    def delta(self) -> int:
        return self.got - self.limit

    @property
    def percent(self) -> float | None:
        return self.delta / self.limit * 100 if self.limit else None

    def __str__(self) -> str:
        percent = f", {self.percent:+.2f}%" if self.percent is not None else ""
        got = f"got {self.got:,} ({self.delta:+,}{percent})"
        return f"{self.entry} {self.metric}: expected at most {self.limit:,}, {got}"


def _limit(metric: str, value: object) -> int:
    """A limit as a count: a non-negative integer (or a float with an integer value, such as ``6e8``)."""
    accepted = "accepted: a non-negative integer such as 600_000_000 or 6e8"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MnprofError(f"{metric}={value!r} is not a number; {accepted}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise MnprofError(f"{metric}={value!r} is not a whole number; {accepted}")
    if value < 0:
        raise MnprofError(f"{metric}={value!r} is negative; {accepted}")
    return int(value)


def limits_of(limits: Mapping[str, object]) -> dict[str, int]:
    """``{"macs": 6e8, ...}`` validated: known metrics (:data:`METRICS`), counts; at least one."""
    unknown = sorted(set(limits) - set(METRICS))
    if unknown:
        raise MnprofError(f"unknown metric {', '.join(map(repr, unknown))}; accepted: {', '.join(METRICS)}")
    checked = {metric: _limit(metric, value) for metric, value in limits.items() if value is not None}
    if not checked:
        raise MnprofError(f"no limit given; accepted: one or more of {', '.join(f'{m}=N' for m in METRICS)}")
    return checked


def over_budget(reports: Iterable[CountReport], limits: Mapping[str, object], name: str | None = None) -> list[Overrun]:
    """Every metric of every configuration in ``reports`` beyond ``limits`` (``{"macs": 600_000_000}``: at most so
    many; see :data:`METRICS`); ``name`` names the entries (default: the family's name). An unknown metric or a
    limit that is not a count raises :class:`MnprofError`."""
    checked = limits_of(limits)
    found = []
    for report in reports:
        values = metrics(report)
        for metric, limit in checked.items():
            if values[metric] > limit:
                found.append(Overrun(entry_of(report, name), metric, limit, values[metric]))
    return found


# ------------------------------------------------------------------------------------ the gate


def settings(
    models: Models = None,
    alphas: Alphas = None,
    resolutions: Resolutions = None,
    *,
    num_classes: int | None = None,
    baseline: PathLike = None,
    tolerance: float | str | None = None,
    pyproject: PathLike = None,
) -> CheckSettings:
    """The gate's settings, as ``mnprof baseline`` and ``mnprof check`` make them (through this function):
    ``[tool.mnprof]`` of
    ``pyproject`` (default ./pyproject.toml; defaults where there is none), each argument given overriding it.
    ``tolerance``: a percentage, ``0.5`` or ``"0.5%"``."""
    path = _path(pyproject)
    if path is not None and not os.path.lexists(path):
        raise MnprofError(f"pyproject {path} does not exist; accepted: a pyproject.toml file")
    loaded = load_settings(path)
    changes: dict[str, Any] = {}
    if models is not None:
        changes["models"] = _specs(models, path)
    if (chosen := _alphas(alphas)) is not None:
        changes["alphas"] = chosen
    if (sizes := _resolutions(resolutions)) is not None:
        changes["resolutions"] = sizes
    if num_classes is not None:
        ModelConfig(1.0, 224, num_classes)  # validates
        changes["num_classes"] = num_classes
    if baseline is not None:
        changes["baseline"] = Path(baseline)
    if tolerance is not None:
        changes["tolerance_pct"] = parse_tolerance(tolerance)
    _refuse_repeated_names(changes.get("models", loaded.models))  # [tool.mnprof]'s own list too
    return dataclasses.replace(loaded, **changes)


def record_baseline(
    models: Models = None,
    alphas: Alphas = None,
    resolutions: Resolutions = None,
    *,
    num_classes: int | None = None,
    out: PathLike = None,
    pyproject: PathLike = None,
    on_done: Callable[[str], None] | None = None,
    training: bool = False,
) -> dict[str, Any]:
    """Count every configuration as ``mnprof baseline`` does and return the baseline document (``entries`` keyed
    ``NAME@alpha-resolution``, with provenance); written atomically to ``out`` when given (its directory must
    exist), never elsewhere. Arguments not given come from ``[tool.mnprof]`` (see :func:`settings`). ``training``:
    also a training step's counts (``mnprof baseline --pass training``), which :func:`check` then guards."""
    chosen = settings(models, alphas, resolutions, num_classes=num_classes, pyproject=pyproject)
    chosen = dataclasses.replace(chosen, training=training)
    target = _path(out)
    if target is not None:
        check_writable(target)  # before any work
    document = baseline_document(measure(chosen, on_done))
    if target is not None:
        atomic_write_text(target, dumps(document))
    return document


def check(
    models: Models = None,
    alphas: Alphas = None,
    resolutions: Resolutions = None,
    *,
    num_classes: int | None = None,
    baseline: PathLike = None,
    tolerance: float | str | None = None,
    strict: bool = False,
    pyproject: PathLike = None,
    on_done: Callable[[str], None] | None = None,
) -> CheckResult:
    """Recount and compare with the baseline as ``mnprof check`` does (counts only; the latency gate is the
    command's). Arguments not given come from ``[tool.mnprof]`` (see :func:`settings`); the baseline defaults to
    reports/baseline.json.

    Returns the :class:`CheckResult`: ``passed`` (``failed``), every :class:`Finding` (``status`` grew, shrank,
    added, removed or uncounted; ``entry``, ``counter``, ``metric``, ``baseline``, ``now``, ``delta``,
    ``percent``), the ``failures`` among them and the number of configurations ``compared``. A baseline that is
    missing, corrupt, of other models or classes, or a shard's, raises :class:`MnprofError`, before anything is
    counted. A baseline recorded with ``training=True`` has its training step checked too, as the command does."""
    chosen = settings(
        models,
        alphas,
        resolutions,
        num_classes=num_classes,
        baseline=baseline,
        tolerance=tolerance,
        pyproject=pyproject,
    )
    document = load_baseline(chosen.baseline)
    refuse_unrelated(document, chosen, chosen.baseline)  # a gate that compares nothing cannot fail
    refuse_other_models(document, chosen, chosen.baseline)
    refuse_part(document, chosen)
    chosen = dataclasses.replace(chosen, training=training_to_check(document, None, chosen.baseline))
    current = measure(chosen, on_done)
    return compare(document["entries"], current, tolerance_pct=chosen.tolerance_pct, strict=strict)
