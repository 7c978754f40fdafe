"""What the regression gate guards: model specs, user factories, and ``[tool.mnprof]`` settings.

A :class:`ModelSpec` names one of mnprof's own families or a user family (``package.module:factory``, or a
name from ``[tool.mnprof.families]`` or the ``mnprof.models`` entry points);
:class:`CheckSettings` is the full set of models, alphas, resolutions, classes, baseline path and
tolerance, read from pyproject.toml by :func:`load_settings` and overridden by command-line options.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnprof.check.shard import Shard
from mnprof.errors import MnprofError, one_line
from mnprof.model import families
from mnprof.model.config import (
    DEFAULT_ALPHAS,
    DEFAULT_RESOLUTIONS,
    Family,
    ModelConfig,
    UserFamily,
    format_alpha,
    parse_alphas,
)
from mnprof.model.families import Factory
from mnprof.user_code import user_code

__all__ = [
    "BUILTIN",
    "BUILTINS",
    "DEFAULT_BASELINE",
    "DEFAULT_INSTRUCTIONS_TOLERANCE_PCT",
    "CheckSettings",
    "Factory",
    "ModelSpec",
    "entry_key",
    "load_settings",
    "user_code",
    "one_line",
    "parse_tolerance",
]

BUILTIN = "mobilenetv1"  # mnprof's own MobileNetV1 (standard variant, int(channels x alpha)): the default
BUILTINS = tuple(family.value for family in Family)  # mnprof's own families: mobilenetv1, mobilenetv2
DEFAULT_BASELINE = Path("reports/baseline.json")
# Instructions counted twice with the same software agree within 0.5% (benchmarks/RESULTS.md): 1% leaves room for
# that, and catches a model doing about 2% more work.
DEFAULT_INSTRUCTIONS_TOLERANCE_PCT = 1.0


@dataclass(frozen=True)
class ModelSpec:
    """A model to guard: one of mnprof's own families or a user family (:mod:`mnprof.model.families`).

    ``name`` keys the baseline entries (``name@alpha-resolution``); it defaults to the target (or to the name a
    family has in ``[tool.mnprof.families]`` or the ``mnprof.models`` entry points), and
    ``NAME=package.module:factory`` sets it explicitly so that moving a factory to another module does not look
    like one model removed and another added.
    """

    name: str
    target: str

    @classmethod
    def parse(cls, text: str, declared: Mapping[str, UserFamily] | None = None) -> ModelSpec:
        name, _, target = text.rpartition("=")
        target, name = target.strip(), name.strip()
        if target not in BUILTINS:
            if ":" in target or not target:
                target = families.parse_spec(target).target
            else:  # a family's name: declared in pyproject.toml or by an installed package
                family = families.resolve(target, declared, load=False)
                name, target = name or str(family), getattr(family, "target", str(family))
        name = name or target
        if target not in BUILTINS:
            UserFamily(name, target)  # the name keys entries and starts ids: validated as a family's name
        elif not name or "@" in name or not name.isprintable():
            raise MnprofError(f"model name {name!r} is invalid; accepted: a printable name without '@'")
        return cls(name, target)

    @property
    def builtin(self) -> bool:
        return self.target in BUILTINS

    @property
    def family(self) -> Family | UserFamily:
        """The family: built in, or the user's, named as this spec names it."""
        return Family(self.target) if self.builtin else UserFamily(self.name, self.target)

    def load(self) -> Factory:
        """Import the factory (see :func:`mnprof.model.families.import_factory`)."""
        if self.builtin:
            raise ValueError("the built-in model has no factory")
        return families.import_factory(self.target)


def entry_key(model: ModelSpec, alpha: float, resolution: int) -> str:
    """A baseline entry's key: ``name@alpha-resolution``, every digit of alpha kept."""
    return f"{model.name}@{format_alpha(alpha)}-{resolution}"


@dataclass(frozen=True)
class CheckSettings:
    """What to guard and how strictly: from ``[tool.mnprof]`` in pyproject.toml, overridden by options."""

    models: tuple[ModelSpec, ...] = (ModelSpec(BUILTIN, BUILTIN),)
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    resolutions: tuple[int, ...] = DEFAULT_RESOLUTIONS
    num_classes: int = 1000
    baseline: Path = DEFAULT_BASELINE
    tolerance_pct: float = 0.0
    instructions_tolerance_pct: float = DEFAULT_INSTRUCTIONS_TOLERANCE_PCT  # with mnprof check --instructions
    shard: Shard | None = None  # --shard i/n: only this part of the grid (mnprof.check.shard)
    training: bool = False  # --pass training: a training step's counts too (mnprof.counting.training)

    def grid_keys(self) -> list[tuple[ModelSpec, float, int]]:
        """Every model x alpha x resolution, whatever the shard."""
        return [(model, alpha, res) for model in self.models for alpha in self.alphas for res in self.resolutions]

    def keys(self) -> list[tuple[ModelSpec, float, int]]:
        """The configurations this run counts: the grid, or the shard's part of it."""
        if self.shard is None:
            return self.grid_keys()
        chosen = set(self.shard.part(entry_key(*key) for key in self.grid_keys()))
        return [key for key in self.grid_keys() if entry_key(*key) in chosen]

    def holds(self, key: str) -> bool:
        """Whether the baseline entry ``key`` is this run's to compare: every one without a shard; with one, those
        of its part of the grid, and (in shard 1 only, so that each is reported once) those not in the grid."""
        if self.shard is None:
            return True
        grid = {entry_key(*each) for each in self.grid_keys()}
        if key not in grid:
            return self.shard.index == 1
        return key in self.shard.part(grid)


def parse_tolerance(value: object) -> float:
    """``"5%"``, ``"5"`` or ``5`` -> 5.0 (percent); must be >= 0."""
    text = str(value).strip().removesuffix("%").strip()
    accepted = "accepted: a percentage >= 0 such as 0, 0.5%"
    if not text.isascii():  # float() takes other scripts' digits (５, ١)
        raise MnprofError(f"tolerance {value!r} is not plain ASCII text; {accepted}")
    if "_" in text:  # float() also takes digit separators: "1_0" is 10
        raise MnprofError(f"tolerance {value!r} has a digit separator; {accepted}")
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
    table = families.tool_table(path)  # checked against mnprof/schemas/settings.schema.json
    settings = CheckSettings()
    declared = families.declared_families(table, str(path))
    try:
        models = tuple(ModelSpec.parse(str(m), declared) for m in _list(table, "models", settings.models))
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
        instructions_tolerance_pct=parse_tolerance(
            table.get("instructions_tolerance", settings.instructions_tolerance_pct)
        ),
    )


def _list(table: Mapping[str, Any], key: str, default: Sequence[Any]) -> list[Any]:
    value = table.get(key, None)
    if value is None:
        return [m.target if isinstance(m, ModelSpec) else m for m in default]
    if not isinstance(value, list) or not value:
        raise MnprofError(f"{key} must be a non-empty list")
    return value
