"""Configurations: small immutable values, parsed and validated where user input enters."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mnprof.errors import MnprofError
from mnprof.parsing import parse_choice, parse_list

__all__ = [
    "DEFAULT_ALPHAS",
    "DEFAULT_RESOLUTIONS",
    "DIVISIBLE_FAMILIES",
    "FAMILY_PREFIX",
    "Family",
    "MAX_ALPHA",
    "MAX_CLASSES",
    "MAX_RESOLUTION",
    "MIN_RESOLUTION",
    "ModelConfig",
    "Rounding",
    "UserFamily",
    "Variant",
    "default_grid",
    "family_grid",
    "family_named",
    "format_alpha",
    "grid",
    "parse_alphas",
    "parse_family",
    "parse_resolutions",
]

# The paper's grid (Tables 6 and 7 and Figure 4): four widths times four input sizes.
DEFAULT_ALPHAS: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25)
DEFAULT_RESOLUTIONS: tuple[int, ...] = (224, 192, 160, 128)
MAX_ALPHA = 4.0
# Five stride-2 stages take 32 pixels down to 1: below that the last feature map is empty.
MIN_RESOLUTION = 32
# Eight times the largest input the papers use; a 1.0 MobileNetV1 at 2048 already holds 128 MiB in one activation.
MAX_RESOLUTION = 2048
# Classifier outputs: ImageNet-21k has 21,841 classes; 100,000 leaves room and keeps the FC under 0.5 GB at alpha 1.
MAX_CLASSES = 100_000


class Family(StrEnum):
    """The built-in network families."""

    MOBILENETV1 = "mobilenetv1"  # Howard et al. 2017, Table 1
    MOBILENETV2 = "mobilenetv2"  # Sandler et al. 2018, Table 2: inverted residuals, linear bottlenecks
    # Howard et al. 2019, Tables 1 and 2: two networks of one paper, each its own family (their layers, grids and
    # published rows differ), as MobileNetV2 is MobileNetV1's
    MOBILENETV3_LARGE = "mobilenetv3-large"
    MOBILENETV3_SMALL = "mobilenetv3-small"


# The families whose channels are TensorFlow's make_divisible(c x alpha, 8) by definition.
DIVISIBLE_FAMILIES = frozenset({Family.MOBILENETV2, Family.MOBILENETV3_LARGE, Family.MOBILENETV3_SMALL})


# The prefix that tells a configuration's family in its id (MobileNetV1's ids carry none).
FAMILY_PREFIX = {
    Family.MOBILENETV1: "",
    Family.MOBILENETV2: "v2-",
    Family.MOBILENETV3_LARGE: "v3-large-",
    Family.MOBILENETV3_SMALL: "v3-small-",
}

# A user family's name: it keys baseline entries (``name@alpha-resolution``) and starts its configurations' ids.
USER_FAMILY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}")


class UserFamily(str):
    """A family the user brings: its name, and the factory ``package.module:factory`` that builds it.

    A ``str`` (the name), so that configurations of every family compare, sort and print together; ``target``
    is empty where only the name is known (a configuration read back from a results file, which can be shown
    but not built). Building one is :func:`mnprof.model.families.build_user_model`.
    """

    target: str

    def __new__(cls, name: str, target: str = "") -> UserFamily:
        prefixes = [prefix.rstrip("-") for prefix in FAMILY_PREFIX.values() if prefix]  # v2: v2-1.0-224
        reserved = {*Family, *prefixes}
        if not isinstance(name, str) or not USER_FAMILY_NAME.fullmatch(name) or name in reserved:
            raise MnprofError(
                f"model name {name!r} is invalid; accepted: up to 100 letters, digits and _ . : - (not a built-in "
                f"family's name or id prefix: {', '.join([*(family.value for family in Family), *prefixes])})"
            )
        family = super().__new__(cls, name)
        family.target = target
        return family

    def __getnewargs__(self) -> tuple[str, str]:  # type: ignore[override]
        return (str(self), self.target)

    def __repr__(self) -> str:
        return f"UserFamily({str(self)!r}, {self.target!r})"

    @property
    def value(self) -> str:
        """The name (as a built-in :class:`Family` member's ``value``)."""
        return str(self)


def family_named(name: str) -> Family | UserFamily:
    """The family a file names: a built-in one, else a user family known by name only (it can be shown, not
    built)."""
    return Family(name) if name in set(Family) else UserFamily(name)


def parse_family(value: object) -> Family | UserFamily:
    """A built-in family from its name, or a :class:`UserFamily` as it is; anything else is a one-line error."""
    if isinstance(value, UserFamily):
        return value
    return parse_choice(value, Family, "model")


class Variant(StrEnum):
    """Architectures that the MobileNetV1 paper's tables compare."""

    STANDARD = "standard"  # Table 1: thirteen depthwise separable blocks
    FULL = "full"  # Table 4: every separable block replaced by one full 3x3 convolution
    SHALLOW = "shallow"  # Table 5: the five 14x14x512 separable blocks removed
    SEED = "seed"  # the seed note's block: its two convolutions keep PyTorch's default bias


class Rounding(StrEnum):
    """How the width multiplier turns a channel count into an integer."""

    FLOOR = "floor"  # int(channels * alpha): reproduces the paper's published counts
    DIVISIBLE_BY_8 = "div8"  # TensorFlow's and timm's make_divisible(channels * alpha, 8)


def format_alpha(alpha: float) -> str:
    """Alpha as the paper writes it (``1.0``, ``0.75``, ``0.5``), with every digit it needs: the shortest text
    that reads back as the same number, so that two alphas never share an id (``0.5`` and ``0.4999999`` build
    different models)."""
    return repr(float(alpha))


@dataclass(frozen=True, order=True)
class ModelConfig:
    """One configuration of a family: built in (MobileNetV1 unless ``family`` says otherwise) or the user's.

    Args:
        alpha: width multiplier, in (0, 4]; every layer's channels are scaled by it.
        resolution: input height and width in pixels, at least 32.
        num_classes: classifier outputs (1000 for ImageNet).
        variant: architecture variant, see :class:`Variant` (MobileNetV1 only).
        rounding: channel rounding rule, see :class:`Rounding`. MobileNetV2 is defined with TensorFlow's
            ``div8`` rule, which it always uses; a user family rounds its own channels (``floor`` stands for it).
        family: the network, see :class:`Family`, or a :class:`UserFamily`.
    """

    alpha: float
    resolution: int
    num_classes: int = 1000
    variant: Variant = Variant.STANDARD
    rounding: Rounding = Rounding.FLOOR
    family: Family | UserFamily = Family.MOBILENETV1

    def __post_init__(self) -> None:
        alpha, resolution = self.alpha, self.resolution
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
            raise MnprofError(f"alpha {alpha!r} is not a number; accepted: a number in (0, {MAX_ALPHA:g}]")
        if not 0 < alpha <= MAX_ALPHA:
            raise MnprofError(f"alpha {alpha:g} is out of range; accepted: a number in (0, {MAX_ALPHA:g}]")
        if isinstance(resolution, bool) or not isinstance(resolution, int):
            accepted = f"an integer in [{MIN_RESOLUTION}, {MAX_RESOLUTION}]"
            raise MnprofError(f"resolution {resolution!r} is not an integer; accepted: {accepted}")
        if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
            size = "too small" if resolution < MIN_RESOLUTION else "too large"
            raise MnprofError(
                f"resolution {resolution} is {size}; accepted: an integer in [{MIN_RESOLUTION}, {MAX_RESOLUTION}]"
            )
        classes = self.num_classes
        if isinstance(classes, bool) or not isinstance(classes, int) or not 1 <= classes <= MAX_CLASSES:
            raise MnprofError(f"num_classes {classes!r} is invalid; accepted: an integer in [1, {MAX_CLASSES:,}]")
        object.__setattr__(self, "alpha", float(alpha))
        object.__setattr__(self, "variant", parse_choice(self.variant, Variant, "variant"))
        object.__setattr__(self, "rounding", parse_choice(self.rounding, Rounding, "rounding"))
        object.__setattr__(self, "family", parse_family(self.family))
        if isinstance(self.family, UserFamily):
            if self.variant is not Variant.STANDARD or self.rounding is not Rounding.FLOOR:
                raise MnprofError(
                    f"--variant and --rounding shape mnprof's own families; model {self.family} builds its own "
                    "channels (accepted with it: the defaults, standard and floor)"
                )
        elif self.family in DIVISIBLE_FAMILIES:
            if self.variant is not Variant.STANDARD:
                raise MnprofError(
                    f"variant {self.variant.value} is MobileNetV1's; accepted with {self.family.value}: standard"
                )
            object.__setattr__(self, "rounding", Rounding.DIVISIBLE_BY_8)  # how MobileNetV2 and V3 are defined

    @property
    def builtin(self) -> bool:
        """Whether the family is mnprof's own (it has a layer plan); else a user family."""
        return not isinstance(self.family, UserFamily)

    @property
    def default_rounding(self) -> Rounding:
        """The family's own channel rounding (not shown in the id)."""
        return Rounding.DIVISIBLE_BY_8 if self.family in DIVISIBLE_FAMILIES else Rounding.FLOOR

    @property
    def id(self) -> str:
        """Readable, stable id: ``1.0-224`` (MobileNetV2: ``v2-1.0-224``; MobileNetV3: ``v3-large-1.0-224``,
        ``v3-small-1.0-224``; a user family: ``NAME-1.0-224``), with
        suffixes only for non-default settings (``1.0-224-full``)."""
        prefix = f"{self.family}-" if isinstance(self.family, UserFamily) else FAMILY_PREFIX[self.family]
        parts = [prefix + format_alpha(self.alpha), str(self.resolution)]
        if self.variant is not Variant.STANDARD:
            parts.append(self.variant.value)
        if self.rounding is not self.default_rounding:
            parts.append(self.rounding.value)
        if self.num_classes != 1000:
            parts.append(f"c{self.num_classes}")
        return "-".join(parts)

    def columns(self) -> dict[str, Any]:
        """The configuration as the leading columns of a table or results row."""
        return {
            "id": self.id,
            "alpha": self.alpha,
            "resolution": self.resolution,
            "num_classes": self.num_classes,
            "variant": self.variant.value,
            "rounding": self.rounding.value,
            "family": self.family.value,
        }

    @property
    def width_key(self) -> tuple[Any, ...]:
        """Everything that decides the model's weights: configurations sharing it differ only in input size (a
        user factory may take the resolution, so a user family's configurations each build their own)."""
        key = (self.alpha, self.num_classes, self.variant, self.rounding, self.family)
        return key if self.builtin else (*key, self.resolution)

    def __str__(self) -> str:
        return self.id


def parse_alphas(text: str) -> tuple[float, ...]:
    """Parse ``"1.0,0.75"`` into width multipliers, each in (0, 4]."""
    alphas = []
    for item in parse_list(text, "alpha", f"numbers in (0, {MAX_ALPHA:g}]", numbers=True):
        try:
            alpha = float(item)
        except ValueError:
            raise MnprofError(f"alpha {item!r} is not a number; accepted: numbers in (0, {MAX_ALPHA:g}]") from None
        if not math.isfinite(alpha) or not 0 < alpha <= MAX_ALPHA:
            raise MnprofError(f"alpha {item} is out of range; accepted: numbers in (0, {MAX_ALPHA:g}]")
        alphas.append(alpha)
    return tuple(dict.fromkeys(alphas))


def parse_resolutions(text: str) -> tuple[int, ...]:
    """Parse ``"224,96"`` into input resolutions, each an integer >= 32."""
    resolutions = []
    for item in parse_list(text, "resolution", f"integers in [{MIN_RESOLUTION}, {MAX_RESOLUTION}]", numbers=True):
        try:
            resolution = int(item)
        except ValueError:
            raise MnprofError(
                f"resolution {item!r} is not an integer; accepted: integers in [{MIN_RESOLUTION}, {MAX_RESOLUTION}]"
            ) from None
        if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
            size = "too small" if resolution < MIN_RESOLUTION else "too large"
            raise MnprofError(
                f"resolution {item} is {size}; accepted: integers in [{MIN_RESOLUTION}, {MAX_RESOLUTION}]"
            )
        resolutions.append(resolution)
    return tuple(dict.fromkeys(resolutions))


def grid(
    alphas: Iterable[float] = DEFAULT_ALPHAS,
    resolutions: Sequence[int] = DEFAULT_RESOLUTIONS,
    *,
    num_classes: int = 1000,
    variant: Variant | str = Variant.STANDARD,
    rounding: Rounding | str = Rounding.FLOOR,
    family: Family | str = Family.MOBILENETV1,
) -> list[ModelConfig]:
    """Every alpha x resolution configuration, widest and largest first (the paper's order)."""
    configs = [
        ModelConfig(alpha, resolution, num_classes, variant, rounding, family)  # type: ignore[arg-type]
        for alpha in alphas
        for resolution in resolutions
    ]
    if not configs:
        raise MnprofError("the grid is empty; accepted: at least one alpha and one resolution")
    return configs


# MobileNetV2's published grid: TF-slim's checkpoints, 1.4 and 1.3 at 224 only.
V2_GRID: tuple[tuple[float, int], ...] = ((1.4, 224), (1.3, 224)) + tuple(
    (alpha, resolution) for alpha in (1.0, 0.75, 0.5, 0.35) for resolution in (224, 192, 160, 128, 96)
)


# MobileNetV3's published grid: the paper's Table 3 and TF-slim's checkpoints, 1.0 and 0.75 at 224 (no other input
# size is published).
V3_GRID: tuple[tuple[float, int], ...] = ((1.0, 224), (0.75, 224))


def family_grid(
    family: Family | UserFamily | str = Family.MOBILENETV1,
    *,
    num_classes: int = 1000,
    variant: Variant | str = Variant.STANDARD,
    rounding: Rounding | str = Rounding.FLOOR,
) -> list[ModelConfig]:
    """A family's published grid: MobileNetV1's 16 (the paper's), MobileNetV2's 22 (TF-slim's checkpoints),
    MobileNetV3-Large's and -Small's 2 each (1.0 and 0.75 at 224); a user family has none and gets MobileNetV1's 16,
    so that the two line up."""
    family = parse_family(family)
    if isinstance(family, UserFamily):  # no published grid: MobileNetV1's, the paper's
        return grid(num_classes=num_classes, variant=variant, rounding=rounding, family=family)
    if family in DIVISIBLE_FAMILIES:
        published = V2_GRID if family is Family.MOBILENETV2 else V3_GRID
        return [
            ModelConfig(alpha, resolution, num_classes, variant, rounding, family)  # type: ignore[arg-type]
            for alpha, resolution in published
        ]
    return grid(num_classes=num_classes, variant=variant, rounding=rounding)


def default_grid() -> list[ModelConfig]:
    """The paper's 16 configurations."""
    return grid()
