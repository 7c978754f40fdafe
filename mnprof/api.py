"""mnprof's public Python API: count models, record a baseline and check against it, as the commands do.

Each function takes what the matching command takes, validated by the same functions (a bad value raises
:class:`MnprofError`, a ``ValueError`` whose message is the one line the command prints), and returns the typed
records the command renders:

- :func:`count`: :class:`~mnprof.counting.count.CountReport` per configuration (``mnprof table --no-timing``);
  :func:`configs` the configurations it counts, :func:`count_configs` any configurations, :func:`shard_configs`
  a ``--shard`` part of them;
- :func:`sweep`: the :class:`~mnprof.timing.records.TimingRecord` of every configuration timed (``mnprof table``);
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
from types import ModuleType
from typing import Any

from mnprof.check.baseline import (
    baseline_document,
    entry_macs,
    load_baseline,
    measure,
    refuse_other_models,
    refuse_part,
    refuse_unrelated,
    training_to_check,
)
from mnprof.check.findings import CheckResult, Finding, compare
from mnprof.check.latency import DEFAULT_LATENCY_TOLERANCE_PCT, compare_latency, measure_latency, usable_baseline
from mnprof.check.settings import CheckSettings, ModelSpec, entry_key, load_settings, parse_tolerance
from mnprof.check.shard import Shard, parse_shard
from mnprof.counting.count import CountReport, count_many
from mnprof.errors import MnprofError
from mnprof.files.documents import dumps
from mnprof.files.write import atomic_write_text, check_writable
from mnprof.host import available_cores, host_environment
from mnprof.model import families
from mnprof.model.config import (
    MAX_ALPHA,
    MAX_RESOLUTION,
    MIN_RESOLUTION,
    ModelConfig,
    Rounding,
    Variant,
    family_grid,
    grid,
    parse_alphas,
    parse_resolutions,
)
from mnprof.timing import plan as timing
from mnprof.timing.engine import StopRule
from mnprof.timing.records import TimingRecord
from mnprof.timing.sweep import check_threads

__all__ = [
    "METRICS",
    "CheckResult",
    "CheckSettings",
    "CountReport",
    "Finding",
    "MnprofError",
    "Overrun",
    "Shard",
    "TimingRecord",
    "check",
    "configs",
    "count",
    "count_configs",
    "entry_of",
    "limits_of",
    "metrics",
    "over_budget",
    "record_baseline",
    "settings",
    "shard_configs",
    "sweep",
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


def _shard(value: str | Shard | None) -> Shard | None:
    """``--shard`` as the commands take it: ``"2/4"`` (or a :class:`Shard`)."""
    return value if value is None or isinstance(value, Shard) else parse_shard(str(value))


def _listed(value: object) -> str:
    """A list option's text (``--backend``, ``--batch-size``): as given (``"eager,fused"``), or its items joined."""
    return ",".join(str(item) for item in _items(value))


def _number(value: object, option: str, accepted: str) -> float:
    """A number option as :func:`mnprof.timing.plan.plan` takes it; not a number is a one-line error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise MnprofError(f"{option} {value!r} is not a number; accepted: {accepted}")
    return float(value)


def _gate(instructions: ModuleType | None) -> ModuleType | None:
    """The instruction gate, :mod:`mnprof.check.instructions`, as the caller imported it (``None``: counts only).

    The caller imports it, not this module: a counts-only gate loads no code that counts instructions."""
    if instructions is not None and getattr(instructions, "__name__", None) != "mnprof.check.instructions":
        raise MnprofError(
            f"instructions={instructions!r} is not the instruction gate; accepted: the module "
            "mnprof.check.instructions (import mnprof.check.instructions), or None"
        )
    return instructions


def _refuse_shard_with_latency(chosen: CheckSettings, latency: bool) -> None:
    """--shard splits the counting; latency is relative to controls timed on one host in one run, so it is not
    split (and an empty shard would pass whatever changed)."""
    if chosen.shard is None:
        return
    if latency:
        raise MnprofError(
            f"--shard {chosen.shard} cannot be combined with --latency: latency is relative to controls timed on "
            "one host in one run; accepted: --shard for counts, or --latency without --shard"
        )
    chosen.shard.refuse_empty(entry_key(*key) for key in chosen.grid_keys())


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


def configs(
    models: Models = "mobilenetv1",
    alphas: Alphas = None,
    resolutions: Resolutions = None,
    *,
    num_classes: int = 1000,
    variant: Variant | str = Variant.STANDARD,
    rounding: Rounding | str = Rounding.FLOOR,
    shard: str | Shard | None = None,
    pyproject: PathLike = None,
) -> list[ModelConfig]:
    """The configurations :func:`count` and :func:`sweep` take (arguments as :func:`count`'s), validated, model by
    model, widest and largest first; a user factory is imported now, so that a bad one fails before any work."""
    chosen_alphas, chosen_resolutions = _alphas(alphas), _resolutions(resolutions)
    ModelConfig(1.0, 224, num_classes, variant, rounding)  # type: ignore[arg-type] - validates before any import
    part = _shard(shard)
    found: list[ModelConfig] = []
    for spec in _specs(models, _path(pyproject)):
        published = family_grid(spec.family, num_classes=num_classes, variant=variant, rounding=rounding)
        if chosen_alphas is None and chosen_resolutions is None:
            found += published
            continue
        found += grid(
            chosen_alphas or tuple(dict.fromkeys(c.alpha for c in published)),
            chosen_resolutions or tuple(dict.fromkeys(c.resolution for c in published)),
            num_classes=num_classes,
            variant=variant,
            rounding=rounding,
            family=spec.family,  # type: ignore[arg-type] - grid takes a UserFamily as ModelConfig does
        )
    return found if part is None else shard_configs(found, part)


def shard_configs(chosen: Sequence[ModelConfig], shard: str | Shard) -> list[ModelConfig]:
    """Shard ``"i/n"`` of ``chosen`` as ``mnprof table --shard`` deals it (ids sorted, dealt round-robin), in
    ``chosen``'s order; a shard that holds none is refused (a job that counts nothing would pass whatever changed)."""
    part = _shard(shard)
    if part is None:
        raise MnprofError(f"--shard {shard!r} is not i/n; accepted: i/n, e.g. 2/4")
    part.refuse_empty(config.id for config in chosen)
    ids = set(part.part(config.id for config in chosen))
    return [config for config in chosen if config.id in ids]


def count_configs(
    chosen: Iterable[ModelConfig],
    *,
    every_counter: bool = False,
    training: bool = False,
    on_done: Callable[[ModelConfig], None] | None = None,
) -> list[CountReport]:
    """Count ``chosen`` (:class:`ModelConfig`: any variant, rounding or family) as ``mnprof table`` counts its grid,
    one model built per width; ``every_counter``, ``training`` and ``on_done`` as :func:`count` takes them."""
    return count_many(list(chosen), on_done, every_counter=every_counter, training=training)


def count(
    models: Models = "mobilenetv1",
    alphas: Alphas = None,
    resolutions: Resolutions = None,
    *,
    num_classes: int = 1000,
    variant: Variant | str = Variant.STANDARD,
    rounding: Rounding | str = Rounding.FLOOR,
    every_counter: bool = False,
    training: bool = False,
    shard: str | Shard | None = None,
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
        variant: ``--variant``: ``standard``, ``full``, ``shallow`` or ``seed`` (MobileNetV1's architectures).
        rounding: ``--rounding``: ``floor`` (the paper's channels) or ``div8`` (TensorFlow's make-divisible-by-8).
        every_counter: add torch's ``FlopCounterMode`` and the shape counter (about a second more, once).
        training: ``--pass training``: also one training step of one image (forward and backward), each report's
            ``training``.
        shard: ``--shard``: only part ``"i/n"`` of the configurations (ids sorted, dealt round-robin).
        pyproject: the ``pyproject.toml`` whose ``[tool.mnprof.families]`` names families (default:
            ./pyproject.toml).
        on_done: called with each configuration once it is counted.

    Returns:
        One :class:`CountReport` per configuration, model by model, widest and largest first: exact params and
        MACs of every counter, activations, and each counter reconciled with the analytic count.
    """
    chosen = configs(
        models, alphas, resolutions, num_classes=num_classes, variant=variant, rounding=rounding, shard=shard,
        pyproject=pyproject,
    )  # fmt: skip
    return count_configs(chosen, every_counter=every_counter, training=training, on_done=on_done)


def sweep(
    models: Models = "mobilenetv1",
    alphas: Alphas = None,
    resolutions: Resolutions = None,
    *,
    results: str | os.PathLike[str],
    num_classes: int = 1000,
    variant: Variant | str = Variant.STANDARD,
    rounding: Rounding | str = Rounding.FLOOR,
    shard: str | Shard | None = None,
    pyproject: PathLike = None,
    backends: str | Iterable[str] = "eager",
    batch_sizes: int | str | Iterable[int] = 1,
    threads: int | None = None,
    device: str = "cpu",
    target_ci_pct: float = StopRule().target_rel_ci * 100,
    budget_s: float = StopRule().budget_s,
    resume: bool = False,
    on_progress: Callable[[str, str, float, float], None] | None = None,
) -> list[TimingRecord]:
    """Time every configuration (chosen as :func:`count` chooses them) as ``mnprof table`` does, into the results
    file ``results`` (written after each measurement; ``resume`` keeps what it holds), and return the records.

    ``backends`` (``--backend``: ``"eager,fused"`` or a list), ``batch_sizes``, ``threads`` (default: the cores this
    process may use), ``device``, ``target_ci_pct`` (``--target-ci``, percent) and ``budget_s`` (``--budget``,
    seconds per configuration) are validated by :func:`mnprof.timing.plan.plan` before anything is timed.
    ``on_progress(phase, label, done, total)`` hears the sweep's progress. Each :class:`TimingRecord` has its
    ``key`` (configuration, backend, batch size, threads, device), ``latency`` (milliseconds), ``quality`` and
    ``rates``; they are ``None`` for a measurement that failed, whose ``error`` says why."""
    chosen = configs(
        models, alphas, resolutions, num_classes=num_classes, variant=variant, rounding=rounding, shard=shard,
        pyproject=pyproject,
    )  # fmt: skip
    request = timing.TimingRequest(
        enabled=True,
        backends=_listed(backends),
        batch_sizes=_listed(batch_sizes),
        threads=threads,
        device=device,
        target_ci_pct=_number(target_ci_pct, "--target-ci", "a percentage"),
        budget_s=_number(budget_s, "--budget", "seconds"),
        results=Path(results),
        resume=resume,
        from_results=(),
    )
    planned = timing.plan(request)
    if planned is None:  # pragma: no cover - an enabled request always plans
        raise ValueError("timing was not planned")
    return list(timing.measure(planned, chosen, on_progress).records)


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
    shard: str | Shard | None = None,
    training: bool | None = None,
    pyproject: PathLike = None,
) -> CheckSettings:
    """The gate's settings, as ``mnprof baseline`` and ``mnprof check`` make them (through this function):
    ``[tool.mnprof]`` of
    ``pyproject`` (default ./pyproject.toml; defaults where there is none), each argument given overriding it.
    ``tolerance``: a percentage, ``0.5`` or ``"0.5%"``; ``shard``: ``"i/n"``, the part of the grid a run counts;
    ``training``: a training step's counts too."""
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
    if shard is not None:
        changes["shard"] = _shard(shard)
    if training is not None:
        changes["training"] = bool(training)
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
    shard: str | Shard | None = None,
    latency: bool = False,
    threads: int | None = None,
    instructions: ModuleType | None = None,
    on_instructions: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Count every configuration as ``mnprof baseline`` does and return the baseline document (``entries`` keyed
    ``NAME@alpha-resolution``, with provenance); written atomically to ``out`` when given (its directory must
    exist), never elsewhere. Arguments not given come from ``[tool.mnprof]`` (see :func:`settings`).

    ``training``: also a training step's counts (``--pass training``), which :func:`check` then guards. ``shard``:
    only part ``"i/n"`` of the grid (``--shard``; the document says which, for ``mnprof merge``). ``latency``: also
    time every configuration against a control (``--latency``, on ``threads`` threads, default every core this
    process may use), for :func:`check`'s latency gate on this host. ``instructions``: the instruction gate,
    :mod:`mnprof.check.instructions` (imported by the caller), to also count every configuration's instructions
    under Valgrind (``--instructions``); ``on_instructions`` hears ``starting``, then its events. Each is refused
    (one line) before any work where it cannot run: a shard with latency, no Valgrind."""
    chosen = settings(
        models, alphas, resolutions, num_classes=num_classes, shard=shard, training=training, pyproject=pyproject
    )
    _refuse_shard_with_latency(chosen, latency)
    if threads is not None:
        check_threads(threads, "--threads")
    target = _path(out)
    if target is not None:
        check_writable(target)  # before any work
    gate = _gate(instructions)
    if gate is not None:  # refused before any work where Valgrind cannot count
        gate.software_here()
    entries = measure(chosen, on_done)
    timed = measure_latency(chosen, threads or available_cores(), entry_macs(entries)) if latency else None
    document = baseline_document(entries, timed)
    if gate is not None:
        if on_instructions is not None:
            on_instructions("starting")
        document["instructions"] = gate.measure_instructions(chosen, None, on_event=on_instructions)
    if chosen.shard is not None:  # what mnprof merge checks: every part of one partition, each once
        part = chosen.shard
        document["shard"] = {"index": part.index, "count": part.count, "configurations": len(chosen.grid_keys())}
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
    training: bool | None = None,
    shard: str | Shard | None = None,
    latency: bool = False,
    latency_tolerance: float | str | None = None,
    instructions: ModuleType | None = None,
    instructions_tolerance: float | str | None = None,
    force: bool = False,
    on_instructions: Callable[[str], None] | None = None,
) -> CheckResult:
    """Recount and compare with the baseline as ``mnprof check`` does. Arguments not given come from
    ``[tool.mnprof]`` (see :func:`settings`); the baseline defaults to reports/baseline.json.

    Returns the :class:`CheckResult`: ``passed`` (``failed``), every :class:`Finding` (``status`` grew, shrank,
    added, removed or uncounted; ``entry``, ``counter``, ``metric``, ``baseline``, ``now``, ``delta``,
    ``percent``), the ``failures`` among them and the number of configurations ``compared``. A baseline that is
    missing, corrupt, of other models or classes, or a shard's, raises :class:`MnprofError`, before anything is
    counted. ``training``: ``None`` checks a training step where the baseline recorded one (as the command does),
    ``True`` requires it, ``False`` checks the forward pass only. ``shard``: only part ``"i/n"`` of the grid.
    ``latency`` (or a ``latency_tolerance``, default 10%): also gate latency relative to a control, against a
    baseline recorded with ``latency=True`` on this host. ``instructions``: the instruction gate,
    :mod:`mnprof.check.instructions` (imported by the caller), to also gate instructions under Valgrind at
    ``instructions_tolerance`` (default ``[tool.mnprof]``'s); ``force`` compares a baseline counted with other
    software, with a warning; ``on_instructions`` hears ``starting``, then its events."""
    chosen = settings(
        models, alphas, resolutions, num_classes=num_classes, baseline=baseline, tolerance=tolerance, shard=shard,
        pyproject=pyproject,
    )  # fmt: skip
    _refuse_shard_with_latency(chosen, latency or latency_tolerance is not None)
    latency_pct = parse_tolerance(latency_tolerance) if latency_tolerance is not None else None
    if latency and latency_pct is None:
        latency_pct = DEFAULT_LATENCY_TOLERANCE_PCT
    if instructions_tolerance is not None:
        chosen = dataclasses.replace(chosen, instructions_tolerance_pct=parse_tolerance(instructions_tolerance))
    gate = _gate(instructions)
    if force and gate is None:
        raise MnprofError("--force compares instructions counted with other software; accepted with --instructions")
    document = load_baseline(chosen.baseline)
    refuse_unrelated(document, chosen, chosen.baseline)  # a gate that compares nothing cannot fail
    refuse_other_models(document, chosen, chosen.baseline)  # nor one that compares two models as one
    refuse_part(document, chosen)  # nor one that holds a part of the configurations as if it were all
    step = None if training is None else ("training" if training else "forward")
    chosen = dataclasses.replace(chosen, training=training_to_check(document, step, chosen.baseline))
    if latency_pct is not None:  # before any work: a baseline the gate cannot compare with is refused
        usable_baseline(document.get("latency"), host_environment()["host_fingerprint"], chosen.baseline)
    warnings: tuple[str, ...] = ()
    if gate is not None:  # before any work, like latency: no Valgrind here, no instructions there, other software
        warnings = gate.usable_instructions(document.get("instructions"), gate.software_here(), chosen.baseline, force)
    return _compared(chosen, document, strict, latency_pct, gate, warnings, on_done, on_instructions)


def _compared(
    chosen: CheckSettings,
    document: Mapping[str, Any],
    strict: bool,
    latency_pct: float | None,
    gate: ModuleType | None,
    warnings: tuple[str, ...],
    on_done: Callable[[str], None] | None,
    on_instructions: Callable[[str], None] | None,
) -> CheckResult:
    """:func:`check`'s work, once everything is validated: count, time, count instructions, compare."""
    current = measure(chosen, on_done)
    slower: list[Finding] = []
    compared = None
    if latency_pct is not None:
        now = measure_latency(chosen, document["latency"]["threads"], entry_macs(current))
        slower, compared = compare_latency(document["latency"], now, latency_pct, chosen.baseline)
    held = {key: entry for key, entry in document["entries"].items() if chosen.holds(key)}  # --shard's part
    instructions_pct = None
    if gate is not None:  # counted as the baseline counted them; compared as the callgrind counter's metric
        gate.add_instructions(held, document["instructions"])
        if on_instructions is not None:
            on_instructions("starting")
        counted = gate.measure_instructions(chosen, document["instructions"], on_event=on_instructions)
        gate.add_instructions(current, counted)
        instructions_pct = chosen.instructions_tolerance_pct
    result = compare(
        held, current, tolerance_pct=chosen.tolerance_pct, strict=strict, extra=slower,
        instructions_tolerance_pct=instructions_pct,
    )  # fmt: skip
    result = dataclasses.replace(result, warnings=warnings)
    if compared is not None:
        result = dataclasses.replace(result, latency=compared, latency_tolerance_pct=latency_pct)
    return result
