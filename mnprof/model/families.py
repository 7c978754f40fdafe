"""Network families by name: mnprof's own and the user's, and the factory contract that builds the user's.

``--model NAME`` (every command) is looked up in this order:

1. a built-in family: ``mobilenetv1``, ``mobilenetv2``, ``mobilenetv3-large``, ``mobilenetv3-small``;
2. ``[NAME=]package.module:factory``: a factory named where it is used;
3. a name declared in ``./pyproject.toml``: ``[tool.mnprof.families]``, ``NAME = "package.module:factory"``;
4. a name an installed package registers in the entry-point group ``mnprof.models``
   (``[project.entry-points."mnprof.models"]``, ``NAME = "package.module:factory"``), Python's plugin convention.

The factory contract: ``factory(alpha: float, num_classes: int[, resolution: int]) -> torch.nn.Module``, a
model taking ``(N, 3, R, R)`` images. A factory with a ``resolution`` parameter is called once per resolution;
one without is called once per width and its model is run at every resolution. The factory is imported with
the working directory at the end of ``sys.path``: a local module named like an installed package (``torch.py``)
does not shadow it. Whatever the user's code raises or prints is fenced by :func:`mnprof.user_code.user_code`.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Mapping
from importlib.metadata import Distribution, EntryPoint, distributions
from typing import Any

from torch import nn

from mnprof.errors import MnprofError, keep_unwritten
from mnprof.model.config import Family, ModelConfig, UserFamily
from mnprof.project import PYPROJECT, tool_table
from mnprof.user_code import user_code

__all__ = [
    "ENTRY_POINT_GROUP",
    "PYPROJECT",
    "Factory",
    "accepted_models",
    "build_user_model",
    "call_factory",
    "declared_families",
    "import_factory",
    "installed_families",
    "load_factory",
    "parse_spec",
    "resolve",
    "takes_resolution",
    "tool_table",
]

ENTRY_POINT_GROUP = "mnprof.models"
Factory = Callable[..., nn.Module]


def accepted_models() -> str:
    """What ``--model`` accepts, in words (for errors and help)."""
    return (
        f"{', '.join(family.value for family in Family)}, a name from [tool.mnprof.families] or the "
        f"{ENTRY_POINT_GROUP!r} entry points, or [NAME=]package.module:factory"
    )


def parse_spec(text: str) -> UserFamily:
    """``[NAME=]package.module:factory`` as a :class:`UserFamily` (the name defaults to the target)."""
    name, equals, target = text.rpartition("=")
    target, name = target.strip(), name.strip()
    module, _, attribute = target.partition(":")
    if not module or not attribute.isidentifier() or not all(part.isidentifier() for part in module.split(".")):
        raise MnprofError(f"model {text!r} is not a model spec; accepted: {accepted_models()}")
    if equals and not name:
        raise MnprofError(f"model {text!r} has an empty name before '='; accepted: NAME=package.module:factory")
    return UserFamily(name or target, target)


def declared_families(table: Mapping[str, Any], where: str = "pyproject.toml") -> dict[str, UserFamily]:
    """``[tool.mnprof.families]``: ``NAME = "package.module:factory"`` entries, validated."""
    families = table.get("families", {})
    if not isinstance(families, dict):
        raise MnprofError(
            f'{where} [tool.mnprof]: families is not a table; accepted: NAME = "package.module:factory" entries'
        )
    declared = {}
    for name, target in families.items():
        if not name.strip() or name != name.strip():
            raise MnprofError(
                f"{where} [tool.mnprof.families]: name {name!r} is invalid; accepted: a name without spaces"
            )
        if ":" in name:  # --model a:b is read as package.module:factory
            raise MnprofError(
                f"{where} [tool.mnprof.families]: name {name!r} has a ':'; accepted: letters, digits and _ . -"
            )
        if not isinstance(target, str):
            raise MnprofError(
                f"{where} [tool.mnprof.families]: {name} = {target!r} is not a string; "
                'accepted: NAME = "package.module:factory"'
            )
        try:
            declared[name] = parse_spec(f"{name}={target}")
        except MnprofError as error:
            raise MnprofError(f"{where} [tool.mnprof.families]: {error}") from None
    return declared


_SKIPPED: set[str] = set()  # distributions whose unreadable entry points were already warned of


def _skip_unreadable(distribution: Distribution, error: Exception) -> None:
    """One warning line (once per distribution) for an installed distribution whose entry points cannot be read."""
    try:
        name = f"{distribution.metadata['Name']} {distribution.version}"
    except Exception:  # noqa: BLE001 - its metadata as broken as its entry points
        name = "(unnamed)"
    where = getattr(distribution, "_path", None)  # its .dist-info directory, where it has one
    path = os.path.join(str(where), "entry_points.txt") if where is not None else "its entry_points.txt"
    if path in _SKIPPED:
        return
    _SKIPPED.add(path)
    text = " ".join(f"{type(error).__name__}: {error}".split())
    print(
        f"mnprof: warning: skipped the installed distribution {name}: its {path} cannot be read ({text}), so no "
        f"--model it registers is found; accepted: 'name = module:object' lines under '[group]' headers",
        file=sys.stderr,
    )


def _installed_entry_points(group: str) -> list[EntryPoint]:
    """The entry points of ``group``, read distribution by distribution (the first of each name, as
    ``importlib.metadata.entry_points`` reads them): one whose file cannot be read is skipped with a warning,
    instead of failing the whole lookup."""
    points: list[EntryPoint] = []
    seen = set()
    for distribution in distributions():
        key = getattr(distribution, "_normalized_name", None)
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        try:
            points.extend(distribution.entry_points.select(group=group))
        except Exception as error:  # noqa: BLE001 - whatever importlib.metadata's parser raises on a malformed file
            _skip_unreadable(distribution, error)
    return points


def installed_families() -> dict[str, UserFamily]:
    """The families installed packages register in the ``mnprof.models`` entry-point group (unparseable ones are
    skipped: a broken plugin must not break every command; naming it with ``--model`` says what is wrong; a
    distribution whose entry points cannot be read at all is skipped with a warning naming it)."""
    found = {}
    for point in _installed_entry_points(ENTRY_POINT_GROUP):
        try:
            if ":" not in point.name:  # --model a:b is read as package.module:factory
                found[point.name] = parse_spec(f"{point.name}={point.value.split('[')[0].strip()}")
        except MnprofError:
            continue
    return found


def resolve(text: str, declared: Mapping[str, UserFamily] | None = None, *, load: bool = True) -> Family | UserFamily:
    """The family ``text`` names (see the module's lookup order); ``declared``: ``[tool.mnprof.families]``
    (default: read from ./pyproject.toml). ``load``: import a user factory now, so that a bad one is a one-line
    error before any work."""
    text = text.strip()
    if text in set(Family):
        return Family(text)
    if ":" in text:
        family = parse_spec(text)
    else:
        declared = declared if declared is not None else declared_families(tool_table())
        installed = {} if text in declared else installed_families()
        found = declared.get(text) or installed.get(text)
        if found is None:
            raise MnprofError(f"unknown model {text!r}; accepted: {accepted_models()}")
        family = found
    if load:
        load_factory(family)
    return family


@functools.cache
def import_factory(target: str) -> Factory:
    """Import ``package.module:factory`` (once per process) and check that it is callable."""
    module_name, _, attribute = target.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    with user_code(f"model {target}: cannot import {module_name}:"):
        module = importlib.import_module(module_name)
        factory = getattr(module, attribute, None)  # a module's own __getattr__ is the user's code too
    if not callable(factory):
        raise MnprofError(f"model {target}: {module_name} has no callable {attribute!r}")
    source = getattr(module, "__file__", None)
    if isinstance(source, str):  # mnprof never writes over the code it runs (--out naming the factory's module)
        keep_unwritten(source, f"the source of {module_name}, the module of --model {target}")
    return factory  # type: ignore[no-any-return]


def load_factory(family: UserFamily) -> Factory:
    """Import ``family``'s factory (once per process)."""
    if not family.target:
        raise MnprofError(
            f"model {family}: only its name is known here (read back from a file); accepted: "
            f"--model {family}=package.module:factory to build it"
        )
    return import_factory(family.target)


def takes_resolution(factory: Factory) -> bool:
    """Whether ``factory`` has a ``resolution`` parameter (the contract's optional third argument)."""
    try:
        return "resolution" in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C callable without a signature: the two-argument contract
        return False


def call_factory(
    target: str, alpha: float, num_classes: int, resolution: int | None = None, *, who: str | None = None
) -> nn.Module:
    """``factory(alpha, num_classes[, resolution=resolution])`` for the factory ``target`` names, checked to return
    a module, in eval mode. ``resolution`` is passed only to a factory that takes it. ``who``: the model as a
    warning about torch's settings the factory changed names it (default: ``model <target>``)."""
    factory = import_factory(target)
    with user_code(f"{who or f'model {target}'}: factory raised", who=who):  # who names the configuration
        if resolution is not None and takes_resolution(factory):
            module = factory(alpha, num_classes, resolution=resolution)
        else:
            module = factory(alpha, num_classes)
        if isinstance(module, nn.Module):
            module.eval()  # the model's own train() may raise
    if not isinstance(module, nn.Module):
        raise MnprofError(f"model {target}: factory returned {type(module).__name__}, not a torch.nn.Module")
    return module


def build_user_model(config: ModelConfig) -> nn.Module:
    """A user family's model for ``config`` (see the factory contract above)."""
    assert isinstance(config.family, UserFamily), "build_user_model builds user families only"
    load_factory(config.family)  # a family known by name only says so
    who = f"model {config.family} at {config.id}"
    return call_factory(config.family.target, config.alpha, config.num_classes, config.resolution, who=who)
