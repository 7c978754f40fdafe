"""What the regression gate guards: model specs, user factories, and ``[tool.mnprof]`` settings.

A :class:`ModelSpec` names mnprof's own MobileNetV1 or a user factory ``package.module:factory``;
:class:`CheckSettings` is the full set of models, alphas, resolutions, classes, baseline path and
tolerance, read from pyproject.toml by :func:`load_settings` and overridden by command-line options.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from mnprof.errors import MnprofError
from mnprof.model.config import DEFAULT_ALPHAS, DEFAULT_RESOLUTIONS, Family, ModelConfig, parse_alphas

__all__ = [
    "BUILTIN",
    "BUILTINS",
    "DEFAULT_BASELINE",
    "SETTINGS_KEYS",
    "CheckSettings",
    "Factory",
    "ModelSpec",
    "load_settings",
    "user_code",
    "one_line",
    "parse_tolerance",
]

BUILTIN = "mobilenetv1"  # mnprof's own MobileNetV1 (standard variant, int(channels x alpha)): the default
BUILTINS = tuple(family.value for family in Family)  # mnprof's own families: mobilenetv1, mobilenetv2
DEFAULT_BASELINE = Path("reports/baseline.json")
Factory = Callable[[float, int], nn.Module]


def one_line(error: BaseException) -> str:
    """An exception as ``Type: message`` on one line (for errors raised by the user's code)."""
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


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
        if target not in BUILTINS:
            module, _, attribute = target.partition(":")
            if not module or not attribute or not all(part.isidentifier() for part in module.split(".")):
                raise MnprofError(
                    f"model {text!r} is not a model spec; accepted: {' or '.join(map(repr, BUILTINS))} or "
                    "[NAME=]package.module:factory"
                )
        if not name or "@" in name or not name.isprintable():
            raise MnprofError(f"model name {name!r} is invalid; accepted: a printable name without '@'")
        return cls(name, target)

    @property
    def builtin(self) -> bool:
        return self.target in BUILTINS

    @property
    def family(self) -> Family:
        """The built-in family (only for a built-in model)."""
        return Family(self.target)

    def load(self) -> Factory:
        """Import the factory, with the working directory at the end of ``sys.path``: a local module named like an
        installed package (``torch.py``) does not shadow it."""
        if self.builtin:
            raise ValueError("the built-in model has no factory")
        module_name, _, attribute = self.target.partition(":")
        if os.getcwd() not in sys.path:
            sys.path.append(os.getcwd())
        with user_code(f"model {self.target}: cannot import {module_name}:"):
            module = importlib.import_module(module_name)
        factory = getattr(module, attribute, None)
        if not callable(factory):
            raise MnprofError(f"model {self.target}: {module_name} has no callable {attribute!r}")
        return factory  # type: ignore[no-any-return]


@contextmanager
def user_code(what: str) -> Iterator[None]:
    """Run the user's code (an import, a factory, a forward pass) contained: what it prints goes to stderr, never
    into mnprof's machine-readable stdout, and anything it raises, ``SystemExit`` and ``KeyboardInterrupt``
    included, becomes a one-line :class:`MnprofError`: ``what`` and the error (the gate never passes by exiting)."""
    try:
        with redirect_stdout(sys.stderr):
            yield
    except MnprofError:
        raise
    except (Exception, SystemExit, KeyboardInterrupt) as error:
        raise MnprofError(f"{what} {one_line(error)}") from None


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
        tool = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise MnprofError(f"{path} is not valid TOML ({error}); fix it or remove [tool.mnprof]") from None
    table = tool.get("mnprof", {}) if isinstance(tool, dict) else None
    if not isinstance(table, dict):
        raise MnprofError(f"{path}: [tool.mnprof] is not a table; accepted: a [tool.mnprof] table of settings")
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
