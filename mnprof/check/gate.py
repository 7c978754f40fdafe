"""The regression gate: record exact counts in a baseline, recount, and compare.

A baseline is a sorted, diff-friendly JSON document. Each entry is one model at one alpha and
resolution, with the exact params and MACs of every counter and fvcore's per-operator totals.
``compare`` turns two sets of entries into findings: counts that grew (a regression unless
within tolerance), shrank (passes, with a notice to update the baseline on purpose), entries
added or removed, and operators a counter newly failed to count.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mnprof.errors import MnprofError
from mnprof.files import read_json_file
from mnprof.model.config import DEFAULT_ALPHAS, DEFAULT_RESOLUTIONS, ModelConfig, format_alpha, parse_alphas
from mnprof.provenance import count_provenance

__all__ = [
    "BASELINE_KIND",
    "BASELINE_SCHEMA_VERSION",
    "BUILTIN",
    "CheckResult",
    "CheckSettings",
    "Finding",
    "ModelSpec",
    "baseline_document",
    "compare",
    "load_baseline",
    "load_settings",
    "measure",
    "parse_tolerance",
]

BASELINE_SCHEMA_VERSION = 1
BASELINE_KIND = "mnprof.baseline"
BUILTIN = "mobilenetv1"  # mnprof's own MobileNetV1 (standard variant, int(channels x alpha))
DEFAULT_BASELINE = Path("reports/baseline.json")
Factory = Callable[[float, int], nn.Module]


# ------------------------------------------------------------------------------------ models


@dataclass(frozen=True)
class ModelSpec:
    """A model to guard: mnprof's own MobileNetV1 or a user factory ``package.module:factory``.

    ``name`` keys the baseline entries (``name@alpha-resolution``); it defaults to the target,
    and ``NAME=package.module:factory`` sets it explicitly so that moving a factory to another
    module does not look like one model removed and another added.

    The factory contract: ``factory(alpha: float, num_classes: int) -> torch.nn.Module``, taking
    an image batch of shape ``(N, 3, resolution, resolution)``.
    """

    name: str
    target: str

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        name, _, target = text.rpartition("=")
        target = target.strip()
        name = name.strip() or target
        if target != BUILTIN:
            module, _, attribute = target.partition(":")
            if not module or not attribute or not all(part.isidentifier() for part in module.split(".")):
                raise MnprofError(
                    f"model {text!r} is not a model spec; accepted: {BUILTIN!r} or [NAME=]package.module:factory"
                )
        if not name or "@" in name:
            raise MnprofError(f"model name {name!r} is invalid; accepted: a name without '@'")
        return cls(name, target)

    @property
    def builtin(self) -> bool:
        return self.target == BUILTIN

    def load(self) -> Factory:
        """Import the factory, with the working directory on ``sys.path`` (as ``python -m`` has it)."""
        if self.builtin:
            raise ValueError("the built-in model has no factory")
        module_name, _, attribute = self.target.partition(":")
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except Exception as error:  # an import error anywhere inside the user's module
            raise MnprofError(f"model {self.target}: cannot import {module_name}: {_one_line(error)}") from None
        factory = getattr(module, attribute, None)
        if not callable(factory):
            raise MnprofError(f"model {self.target}: {module_name} has no callable {attribute!r}")
        return factory  # type: ignore[no-any-return]


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


@dataclass(frozen=True)
class CheckSettings:
    """What to guard and how strictly: from ``[tool.mnprof]`` in pyproject.toml, overridden by options."""

    models: tuple[ModelSpec, ...] = (ModelSpec(BUILTIN, BUILTIN),)
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    resolutions: tuple[int, ...] = DEFAULT_RESOLUTIONS
    num_classes: int = 1000
    baseline: Path = DEFAULT_BASELINE
    tolerance_pct: float = 0.0

    def keys(self) -> list[tuple[ModelSpec, float, int]]:
        return [(model, alpha, res) for model in self.models for alpha in self.alphas for res in self.resolutions]


SETTINGS_KEYS = ("models", "alphas", "resolutions", "num_classes", "baseline", "tolerance")


def parse_tolerance(value: object) -> float:
    """``"5%"``, ``"5"`` or ``5`` -> 5.0 (percent); must be >= 0."""
    text = str(value).strip().removesuffix("%").strip()
    try:
        tolerance = float(text)
    except ValueError:
        raise MnprofError(f"tolerance {value!r} is not a number; accepted: a percentage >= 0 such as 0, 0.5%") from None
    if not math.isfinite(tolerance) or tolerance < 0:
        raise MnprofError(f"tolerance {value!r} is out of range; accepted: a percentage >= 0 such as 0, 0.5%")
    return tolerance


def load_settings(pyproject: Path | None = None) -> CheckSettings:
    """Read ``[tool.mnprof]`` from ``pyproject`` (default: ./pyproject.toml); defaults where absent."""
    path = pyproject if pyproject is not None else Path("pyproject.toml")
    if not path.is_file():
        return CheckSettings()
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("mnprof", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise MnprofError(f"{path} is not valid TOML ({error}); fix it or remove [tool.mnprof]") from None
    unknown = sorted(set(table) - set(SETTINGS_KEYS))
    if unknown:
        raise MnprofError(f"{path} [tool.mnprof]: unknown key {unknown[0]!r}; accepted: {', '.join(SETTINGS_KEYS)}")
    settings = CheckSettings()
    try:
        models = tuple(ModelSpec.parse(str(m)) for m in _list(table, "models", settings.models))
        alphas = parse_alphas(",".join(str(a) for a in _list(table, "alphas", settings.alphas)))
        resolutions = tuple(_list(table, "resolutions", settings.resolutions))
        for resolution in resolutions:
            ModelConfig(1.0, resolution)  # validates
        num_classes = table.get("num_classes", settings.num_classes)
        ModelConfig(1.0, 224, num_classes)
    except MnprofError as error:
        raise MnprofError(f"{path} [tool.mnprof]: {error}") from None
    return CheckSettings(
        models=models,
        alphas=alphas,
        resolutions=resolutions,
        num_classes=num_classes,
        baseline=Path(table.get("baseline", settings.baseline)),
        tolerance_pct=parse_tolerance(table.get("tolerance", settings.tolerance_pct)),
    )


def _list(table: Mapping[str, Any], key: str, default: Sequence[Any]) -> list[Any]:
    value = table.get(key, None)
    if value is None:
        return [m.target if isinstance(m, ModelSpec) else m for m in default]
    if not isinstance(value, list) or not value:
        raise MnprofError(f"{key} must be a non-empty list")
    return value


# ------------------------------------------------------------------------------------ counting


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


def _counter_counts(module: nn.Module, resolution: int) -> dict[str, Any]:
    from mnprof.counting.fvcore_counter import count_fvcore
    from mnprof.counting.thop_counter import count_thop

    inputs = torch.zeros(1, 3, resolution, resolution)
    params = sum(p.numel() for p in module.parameters())
    return _counts(params, count_fvcore(module, inputs), count_thop(module, inputs))


def builtin_entries(
    reports: Sequence[Any], model: ModelSpec = ModelSpec(BUILTIN, BUILTIN)
) -> dict[str, dict[str, Any]]:
    """Baseline entries of mnprof's own MobileNetV1 from count reports (:func:`mnprof.counting.count.count_many`),
    so that a caller that already counted does not trace the models again."""
    entries = {}
    for report in reports:
        config = report.config
        counts = _counts(report.params_model, report.fvcore, report.thop)
        counts["analytic"] = {"macs": report.analytic.macs, "params": report.analytic.params()}
        key = entry_key(model, config.alpha, config.resolution)
        entries[key] = _entry(model, config.alpha, config.resolution, config.num_classes, dict(sorted(counts.items())))
    return entries


def measure(settings: CheckSettings, on_done: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Count every model x alpha x resolution of ``settings``; entries keyed ``name@alpha-resolution``."""
    from mnprof.counting.count import count_many

    entries: dict[str, dict[str, Any]] = {}
    for model in settings.models:
        if not model.builtin:
            continue
        configs = [ModelConfig(a, r, settings.num_classes) for a in settings.alphas for r in settings.resolutions]

        def done(config: ModelConfig, model: ModelSpec = model) -> None:
            if on_done is not None:
                on_done(entry_key(model, config.alpha, config.resolution))

        reports = count_many(configs, on_done=done)
        entries.update(builtin_entries(reports, model))
    user = dataclasses.replace(settings, models=tuple(m for m in settings.models if not m.builtin))
    for model, alpha, resolution, module in _modules(user):
        key = entry_key(model, alpha, resolution)
        try:
            counts = _counter_counts(module, resolution)
        except Exception as error:  # the user's forward pass failed at this input size
            raise MnprofError(f"model {model.target} at {key}: forward failed: {_one_line(error)}") from None
        entries[key] = _entry(model, alpha, resolution, settings.num_classes, dict(sorted(counts.items())))
        if on_done is not None:
            on_done(key)
    return entries


def _call_factory(model: ModelSpec, factory: Factory, alpha: float, num_classes: int) -> nn.Module:
    try:
        module = factory(alpha, num_classes)
    except Exception as error:
        raise MnprofError(f"model {model.target}: factory raised {_one_line(error)}") from None
    if not isinstance(module, nn.Module):
        raise MnprofError(f"model {model.target}: factory returned {type(module).__name__}, not a torch.nn.Module")
    return module.eval()


def _modules(settings: CheckSettings) -> Iterator[tuple[ModelSpec, float, int, nn.Module]]:
    """(model spec, alpha, resolution, built module) for every entry; one module per model and alpha."""
    from mnprof.model.networks import build_model

    for model in settings.models:
        factory = None if model.builtin else model.load()
        for alpha in settings.alphas:
            if factory is None:
                module: nn.Module = build_model(ModelConfig(alpha, settings.resolutions[0], settings.num_classes))
            else:
                module = _call_factory(model, factory, alpha, settings.num_classes)
            for resolution in settings.resolutions:
                yield model, alpha, resolution, module


def measure_latency(settings: CheckSettings, threads: int) -> dict[str, Any]:
    """Eager latency (batch 1, ``threads`` threads) of every entry, with the timing engine's method, and the host.

    Only for ``--latency-tolerance``: latency is compared against a baseline from the same host fingerprint.
    """
    from mnprof.timing.backends import Backend, Device, prepare, sampler, torch_threads
    from mnprof.timing.engine import StopRule, Task, interleave
    from mnprof.timing.host import host_environment

    tasks = []
    with torch.inference_mode():
        for model, alpha, resolution, module in _modules(settings):
            key = entry_key(model, alpha, resolution)
            runner = prepare(Backend.EAGER, module, torch.zeros(1, 3, resolution, resolution), threads=threads)
            tasks.append(Task(key, sampler(runner, Device.CPU), key))
        with torch_threads(threads):
            measurements = interleave(tasks, StopRule())
    return {
        "host_fingerprint": host_environment()["host_fingerprint"],
        "threads": threads,
        "backend": "eager",
        "batch_size": 1,
        "entries": {
            str(m.key): {"latency_ms_median": m.stats.median * 1e3, "latency_ms_iqr": m.stats.iqr * 1e3,
                         "samples": m.stats.n}
            for m in measurements
        },
    }  # fmt: skip


def compare_latency(
    baseline: Mapping[str, Any] | None, now: Mapping[str, Any], tolerance_pct: float, path: Path
) -> list[Finding]:
    """Findings for latency medians that grew beyond ``tolerance_pct``; the same host is required."""
    regenerate = f"record one here with: mnprof baseline --latency --out {path}"
    if not baseline:
        raise MnprofError(f"baseline {path} has no latency; {regenerate}")
    if baseline.get("host_fingerprint") != now["host_fingerprint"]:
        raise MnprofError(
            f"baseline {path} latency was measured on another host (fingerprint {baseline.get('host_fingerprint')}, "
            f"here {now['host_fingerprint']}): latencies compare only on the same host; {regenerate}"
        )
    findings = []
    for key, entry in sorted(now["entries"].items()):
        old = baseline.get("entries", {}).get(key)
        if old is None:
            continue  # the counts comparison already reports entries added
        before, after = old["latency_ms_median"], entry["latency_ms_median"]
        if after > before * (1 + tolerance_pct / 100):
            findings.append(Finding("slower", key, "latency", "latency_ms_median", before, after))
    return findings


# ------------------------------------------------------------------------------------ baseline file


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
    if version != BASELINE_SCHEMA_VERSION:
        raise MnprofError(
            f"baseline {path} has schema version {version!r}, this mnprof reads {BASELINE_SCHEMA_VERSION}; {regenerate}"
        )
    entries = document.get("entries")
    if not isinstance(entries, dict) or not all(
        isinstance(e, dict) and isinstance(e.get("counts"), dict) for e in entries.values()
    ):
        raise MnprofError(f"baseline {path} is corrupt (entries malformed); {regenerate}")
    return document


# ------------------------------------------------------------------------------------ comparing


@dataclass(frozen=True)
class Finding:
    """One difference between the baseline and now.

    ``status``: ``grew``, ``shrank``, ``added`` (entry or metric new), ``removed``,
    ``uncounted`` (a counter newly reports an operator it could not count), or ``slower``
    (latency beyond ``--latency-tolerance``, same host only).
    """

    status: str
    entry: str
    counter: str = ""
    metric: str = ""
    baseline: float | None = None  # exact integers for counts; milliseconds for latency
    now: float | None = None

    @property
    def delta(self) -> float | None:
        return None if self.baseline is None or self.now is None else self.now - self.baseline

    @property
    def percent(self) -> float | None:
        if self.delta is None or not self.baseline:
            return None
        return self.delta / self.baseline * 100


@dataclass(frozen=True)
class CheckResult:
    findings: tuple[Finding, ...]
    tolerance_pct: float
    strict: bool
    compared: int  # entries present in both
    failures: tuple[Finding, ...] = field(default=())

    @property
    def failed(self) -> bool:
        return bool(self.failures)


def _metrics(entry: Mapping[str, Any]) -> dict[tuple[str, str], int]:
    flat: dict[tuple[str, str], int] = {}
    for counter, values in entry.get("counts", {}).items():
        for metric, value in values.items():
            if metric == "unsupported_ops":
                continue
            if isinstance(value, dict):
                for operator, count in value.items():  # macs_by_operator -> macs[conv], macs[batch_norm], ...
                    flat[(counter, f"{metric.removesuffix('_by_operator')}[{operator}]")] = count
            else:
                flat[(counter, metric)] = value
    return flat


def _unsupported(entry: Mapping[str, Any]) -> dict[str, int]:
    return dict(entry.get("counts", {}).get("fvcore", {}).get("unsupported_ops", {}))


def compare(
    baseline: Mapping[str, Mapping[str, Any]],
    current: Mapping[str, Mapping[str, Any]],
    *,
    tolerance_pct: float = 0.0,
    strict: bool = False,
    extra: Sequence[Finding] = (),
) -> CheckResult:
    """Compare entries. Fails on growth beyond ``tolerance_pct`` and on newly uncounted operators;
    with ``strict``, on any change at all (shrinkage, entries added or removed). ``extra`` findings
    (latency that grew) join the result and fail it."""
    findings: list[Finding] = []
    for key in sorted(set(baseline) | set(current)):
        if key not in current:
            findings.append(Finding("removed", key))
            continue
        if key not in baseline:
            findings.append(Finding("added", key))
            continue
        before, now = _metrics(baseline[key]), _metrics(current[key])
        for counter, metric in sorted(set(before) | set(now)):
            old, new = before.get((counter, metric)), now.get((counter, metric))
            if old == new:
                continue
            if old is None:
                status = "added" if not new else "grew"
            elif new is None:
                status = "removed"
            else:
                status = "grew" if new > old else "shrank"
            findings.append(Finding(status, key, counter, metric, old, new))
        newly_uncounted = set(_unsupported(current[key])) - set(_unsupported(baseline[key]))
        for operator in sorted(newly_uncounted):
            findings.append(Finding("uncounted", key, "fvcore", operator, None, _unsupported(current[key])[operator]))

    def fails(finding: Finding) -> bool:
        if strict or finding.status in ("uncounted", "slower"):
            return True
        if finding.status != "grew":
            return False
        percent = finding.percent
        return percent is None or percent > tolerance_pct

    findings += extra
    compared = len(set(baseline) & set(current))
    failures = tuple(f for f in findings if fails(f))
    return CheckResult(tuple(findings), tolerance_pct, strict, compared, failures)


# ------------------------------------------------------------------------------------ reports


def _describe(finding: Finding) -> str:
    if finding.counter == "":
        return f"{finding.entry}: configuration {finding.status}"
    if finding.status == "uncounted":
        return (
            f"{finding.entry} fvcore could not count operator {finding.metric} ({finding.now} call(s)); "
            "its MACs are missing from fvcore's total"
        )
    head = f"{finding.entry} {finding.counter} {finding.metric}"
    if finding.status == "slower" and finding.baseline is not None and finding.now is not None:
        return f"{head}: {finding.baseline:.3f} ms -> {finding.now:.3f} ms ({finding.percent:+.1f}%)"
    if finding.baseline is None or finding.now is None:
        return f"{head}: {finding.status} ({finding.baseline} -> {finding.now})"
    percent = finding.percent
    pct = f", {percent:+.2f}%" if percent is not None else ""
    return f"{head}: {finding.baseline:,} -> {finding.now:,} ({finding.delta:+,}{pct})"


def summary(result: CheckResult) -> str:
    counts = {status: 0 for status in ("grew", "shrank", "added", "removed", "uncounted", "slower")}
    for finding in result.findings:
        counts[finding.status] += 1
    verdict = "FAILED" if result.failed else "passed"
    return (
        f"mnprof check {verdict}: {result.compared} configurations compared, tolerance {result.tolerance_pct:g}%"
        + (", strict" if result.strict else "")
        + f"; {counts['grew']} grew, {counts['shrank']} shrank, {counts['added']} added, {counts['removed']} removed, "
        f"{counts['uncounted']} newly uncounted" + (f", {counts['slower']} slower" if counts["slower"] else "")
    )


def _advice(result: CheckResult, baseline_path: Path) -> str | None:
    if any(f.status in ("shrank", "added", "removed") for f in result.findings):
        return f"counts changed on purpose? update the baseline and commit it: mnprof baseline --out {baseline_path}"
    return None


def render_check(result: CheckResult, fmt: str, baseline_path: Path) -> str:
    """Render as ``text``, ``json``, ``markdown`` (a job summary) or ``github`` (workflow annotations)."""
    advice = _advice(result, baseline_path)
    failing = set(result.failures)
    if fmt == "json":
        document = {
            "schema_version": BASELINE_SCHEMA_VERSION,
            "kind": "mnprof.check",
            "passed": not result.failed,
            "tolerance_pct": result.tolerance_pct,
            "strict": result.strict,
            "compared": result.compared,
            "baseline": str(baseline_path),
            "findings": [
                {
                    "status": f.status,
                    "fails": f in failing,
                    "entry": f.entry,
                    "counter": f.counter,
                    "metric": f.metric,
                    "baseline": f.baseline,
                    "now": f.now,
                    "delta": f.delta,
                    "percent": f.percent,
                }
                for f in result.findings
            ],
        }
        return json.dumps(document, indent=2, sort_keys=True) + "\n"
    lines: list[str] = []
    if fmt == "github":
        for f in result.findings:
            level = "error" if f in failing else "notice" if f.status in ("shrank", "added", "removed") else "warning"
            title = f"mnprof: {f.entry} {f.status}"
            lines.append(f"::{level} title={_escape_property(title)}::{_escape_data(_describe(f))}")
        if advice:
            lines.append(f"::notice title=mnprof baseline::{_escape_data(advice)}")
        lines.append(summary(result))
        return "\n".join(lines) + "\n"
    if fmt == "markdown":
        icon = ":x:" if result.failed else ":white_check_mark:"
        lines += [f"### {icon} {summary(result)}", ""]
        if result.findings:
            lines += [
                "| | configuration | counter | metric | baseline | now | delta | % |",
                "|---|---|---|---|---:|---:|---:|---:|",
            ]
            for f in result.findings:
                mark = "FAIL" if f in failing else f.status
                pct = f"{f.percent:+.2f}" if f.percent is not None else ""
                lines.append(
                    f"| {mark} | `{f.entry}` | {f.counter} | `{f.metric}` | {_num(f.baseline)} | {_num(f.now)} "
                    f"| {_num(f.delta, sign=True)} | {pct} |"
                )
            lines.append("")
        if advice:
            lines.append(f"> {advice}")
        return "\n".join(lines) + "\n"
    for f in result.findings:
        mark = "FAIL" if f in failing else f.status
        lines.append(f"{mark:<9} {_describe(f)}")
    lines.append(summary(result))
    if advice:
        lines.append(advice)
    return "\n".join(lines) + "\n"


def _num(value: int | None, sign: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:+,}" if sign else f"{value:,}"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
