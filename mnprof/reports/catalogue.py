"""The files a report holds: what each is and the command that regenerates it alone, for a report on some
families (MobileNetV1 by default)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from mnprof.errors import MnprofError
from mnprof.model.config import Family, ModelConfig, UserFamily, family_grid
from mnprof.views.render import families_title
from mnprof.views.table_document import TABLE_SCHEMA_VERSION

__all__ = [
    "COUNT_FILES",
    "DEFAULT_FAMILIES",
    "TIMING_FILES",
    "Families",
    "ReportFile",
    "configs_of",
    "count_files",
    "families_title_of",
    "layers_config",
    "layers_name",
    "model_args",
    "refuse_shared_files",
    "timing_files",
]

LAYERS_CONFIG = (1.0, 224)
Families = Sequence[Family | UserFamily]
DEFAULT_FAMILIES: tuple[Family | UserFamily, ...] = (Family.MOBILENETV1,)


@dataclass(frozen=True)
class ReportFile:
    name: str
    what: str
    regenerate: str


def model_args(families: Families) -> str:
    """The ``--model`` options that name ``families`` (none for the default, MobileNetV1 alone)."""
    if tuple(families) == DEFAULT_FAMILIES:
        return ""
    specs = (f"{family}={family.target}" if isinstance(family, UserFamily) else family.value for family in families)
    return "".join(f" --model {spec}" for spec in specs)


def layers_config(family: Family | UserFamily) -> ModelConfig:
    return ModelConfig(*LAYERS_CONFIG, family=family)


def layers_name(family: Family | UserFamily, timed: bool) -> str:
    """``layers-1.0-224-counts.md`` (MobileNetV1), ``layers-v2-1.0-224.md``: one file per family, named by its
    configuration's id (``:`` of a factory name written ``_``, which file systems accept)."""
    return f"layers-{layers_config(family).id.replace(':', '_')}{'' if timed else '-counts'}.md"


def configs_of(families: Families) -> list[ModelConfig]:
    return [config for family in families for config in family_grid(family)]


def families_title_of(families: Families) -> str:
    return families_title(pd.DataFrame({"family": [str(family) for family in families]}))


def refuse_shared_files(families: Families) -> None:
    """Refuse two families whose layer tables would be one file (``a:b`` and ``a_b``: ``:`` is written ``_``)."""
    named: dict[str, Family | UserFamily] = {}
    for family in families:
        name = layers_name(family, timed=False)
        other = named.setdefault(name, family)
        if other != family:
            raise MnprofError(
                f"models {other} and {family} would share the layer table {name} (a ':' in a name is written '_' "
                "in file names); accepted: model names that differ in more than ':' and '_'"
            )


def _layers_files(families: Families, *, timed: bool) -> tuple[ReportFile, ...]:
    """One layer table per family, of its 1.0-224: counted, or timed."""
    refuse_shared_files(families)
    what = (
        "layer by layer, timed: share of MACs vs share of time, GFLOP/s"
        if timed
        else "layer by layer: shapes, params, MACs, bytes, intensity"
    )
    return tuple(
        ReportFile(
            layers_name(family, timed=timed),
            f"{layers_config(family).id} {what}",
            f"mnprof layers{model_args([family])} --alpha 1.0 --resolution 224"
            + ("" if timed else " --no-timing")
            + " --format markdown",
        )
        for family in families
    )


def count_files(families: Families = DEFAULT_FAMILIES) -> tuple[ReportFile, ...]:
    """The count-only files of a report on ``families`` (MobileNetV1 by default)."""
    models = model_args(families)
    described = f"the {len(configs_of(families))} configurations of {families_title_of(families)}"
    layers = _layers_files(families, timed=False)
    return (
        ReportFile("table.md", f"params and MACs of {described}, three counters, published values and deltas",
                   f"mnprof table{models} --no-timing --format markdown"),
        ReportFile("table.csv", "the same rows as CSV (exact integers)",
                   f"mnprof table{models} --no-timing --format csv"),
        ReportFile("table.json", f"the same rows as versioned JSON (schema_version {TABLE_SCHEMA_VERSION})",
                   f"mnprof table{models} --no-timing --format json"),
        ReportFile("paper.md", "every computable table of the paper (published, computed, delta) with findings",
                   "mnprof paper --format markdown"),
        ReportFile("paper-mobilenetv2.md", "TF-slim's 22 MobileNetV2 checkpoints (published, computed, delta) and "
                   "the conventions that reproduce them", "mnprof paper --model mobilenetv2 --format markdown"),
        *layers,
        ReportFile("baseline.json", "the regression baseline that mnprof check (and this repository's CI) compares "
                   "with", f"mnprof baseline{models} --out reports/baseline.json"),
    )  # fmt: skip


def timing_files(families: Families = DEFAULT_FAMILIES) -> tuple[ReportFile, ...]:
    """The host-specific files of a report on ``families``."""
    models = model_args(families)
    layers = _layers_files(families, timed=True)
    return (
        ReportFile("results.json", "every latency measurement with its host provenance (mnprof.results, schema 4)",
                   f"mnprof table{models} --backend eager,fused --results reports/results.json"),
        *layers,
        ReportFile("figures.html", "the figures: accuracy vs MACs and params, latency vs MACs, Pareto front, "
                   "roofline", f"mnprof plot{models} --results reports/results.json (the roofline comes from "
                   "mnprof report)"),
        ReportFile("pareto.png", "the main figure as a picture (accuracy vs measured latency, Pareto front; "
                   "latency vs MACs where no family has published accuracy)",
                   f"mnprof plot{models} --results reports/results.json --out pareto.png"),
        ReportFile("memory.md", "the peak memory of one forward pass per configuration (eager and fused, batch 1 "
                   "and 8), measured from PyTorch's allocator beside the analytic figure, every byte's cause named",
                   f"mnprof memory{models} --backend eager,fused --format markdown --out reports/memory.md"),
        ReportFile("roofline.json", "the host's measured GEMM peak and copy bandwidth, and the timed layer points "
                   f"of {layers_config(families[0]).id}", f"mnprof report{models}"),
    )  # fmt: skip


COUNT_FILES = count_files()
TIMING_FILES = timing_files()
