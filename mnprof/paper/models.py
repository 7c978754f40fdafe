"""The paper's Tables 4 to 9, computed: whole models, published | computed | delta, and the table registry.

Every published entry of these tables becomes one row of :func:`computed_rows` (the one function that
computes "published | computed | delta" rows; :func:`mnprof.views.grid.paper_frame` uses it too).
Where a computed number differs from the printed one beyond rounding, the notes say which of a few
conventions (no FC, 1001 classes, PyTorch's or TF-slim's parameter count, ...) reproduce it.

Conventions: Mult-Adds are the analytic conv + FC multiply-accumulates of one image (the paper's);
params are conv and FC weights and biases; channels are ``int(channels x alpha)``, 1000 classes.
Only counts are computed (no model is run), so every table takes well under a second after import.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import pandas as pd

from mnprof.counting.analytic import AnalyticCount, ParamConvention, analytic_count
from mnprof.errors import MnprofError
from mnprof.model.arch import layer_plan, scale_channels
from mnprof.model.config import ModelConfig, Variant
from mnprof.model.reference import MILLION, PAPER, PAPER_SOURCE, TFSLIM, TFSLIM_SOURCE, Published, delta_pct
from mnprof.paper.architecture import REFERENCE, macs_with, table1, table2, table3
from mnprof.paper.verdict import PaperTable, Verdict, rounded, verdict
from mnprof.parsing import parse_list

__all__ = [
    "TABLES",
    "TABLE_KEYS",
    "computed_rows",
    "paper_tables",
    "parse_tables",
    "table4",
    "table5",
    "table6",
    "table7",
    "table8",
    "table9",
]

TABLE_KEYS: tuple[str, ...] = ("1", "2", "3", "4", "5", "6", "7", "8", "9")


def _config(entry: Published) -> ModelConfig | None:
    if entry.alpha is None or entry.resolution is None:
        return None
    return ModelConfig(entry.alpha, entry.resolution, variant=Variant(entry.variant))


def computed_rows(keys: Iterable[str], count: Callable[[ModelConfig], AnalyticCount] = analytic_count) -> pd.DataFrame:
    """The paper's published entries of tables ``keys``, in print order: published | computed | delta.

    One row per entry: ``table``, ``model``, ``id`` (``""`` for models mnprof does not build), the
    published top-1, then published, computed and delta (percent) for million Mult-Adds and params.
    ``count`` gives a configuration's analytic count (callers with counts at hand pass a lookup).
    """
    wanted = tuple(keys)
    rows = []
    for entry in PAPER:
        if entry.table not in wanted:
            continue
        config = _config(entry)
        counted = count(config) if config else None
        macs_m = counted.macs / MILLION if counted else math.nan
        params_m = counted.params(ParamConvention.PAPER) / MILLION if counted else math.nan
        rows.append(
            {
                "table": entry.table,
                "model": entry.model,
                "id": config.id if config else "",
                "published_top1": entry.top1,
                "published_macs_m": entry.macs_m,
                "macs_m": macs_m,
                "delta_macs_pct": delta_pct(macs_m, entry.macs_m),
                "published_params_m": entry.params_m,
                "params_m": params_m,
                "delta_params_pct": delta_pct(params_m, entry.params_m),
            }
        )
    return pd.DataFrame(rows)


def _tfslim(config_id: str) -> Published | None:
    for entry in TFSLIM:
        if entry.alpha is not None and entry.resolution is not None and _id(entry) == config_id:
            return entry
    return None


def _id(entry: Published) -> str:
    config = _config(entry)
    return config.id if config else ""


def _with_verdicts(frame: pd.DataFrame) -> pd.DataFrame:
    """Add exact counts, verdicts and TF-slim's published numbers to rows of :func:`computed_rows`."""
    frame = frame.copy()
    macs, params, macs_verdicts, params_verdicts, tfslim_macs = [], [], [], [], []
    for _, row in frame.iterrows():
        computed = bool(row["id"])
        count = analytic_count(_config_of(row)) if computed else None
        macs.append(count.macs if count else pd.NA)
        params.append(count.params(ParamConvention.PAPER) if count else pd.NA)
        macs_verdicts.append(verdict(row["macs_m"], row["published_macs_m"]).value if computed else "not computed")
        params_verdicts.append(
            verdict(row["params_m"], row["published_params_m"]).value if computed else "not computed"
        )
        entry = _tfslim(str(row["id"])) if computed else None
        tfslim_macs.append(entry.macs_m if entry else math.nan)
    frame.insert(frame.columns.get_loc("macs_m"), "macs", pd.array(macs, dtype="Int64"))
    frame.insert(frame.columns.get_loc("delta_macs_pct") + 1, "macs_verdict", macs_verdicts)
    frame.insert(frame.columns.get_loc("params_m"), "params", pd.array(params, dtype="Int64"))
    frame.insert(frame.columns.get_loc("delta_params_pct") + 1, "params_verdict", params_verdicts)
    frame["published_macs_m_tfslim"] = tfslim_macs
    return frame


def _config_of(row: pd.Series) -> ModelConfig:
    entry = next(e for e in PAPER if e.table == row["table"] and e.model == row["model"])
    config = _config(entry)
    assert config is not None  # rows with an id have a configuration
    return config


# Conventions tried when a computed number differs from the published one. Each maps a
# configuration to a count; a note lists those that reproduce the printed number.
def _last_block_stride_2(config: ModelConfig) -> int:
    last = next(spec for spec in reversed(layer_plan(config)) if spec.name.startswith("blocks."))
    first_of_block = next(spec for spec in layer_plan(config) if spec.name.startswith(last.name.rsplit(".", 1)[0]))
    return macs_with(config, strides={first_of_block.name: 2})


MACS_CANDIDATES: dict[str, Callable[[ModelConfig], int]] = {
    "without the FC layer": lambda c: (a := analytic_count(c)).macs - a.fc.macs,
    "FC with 1001 classes (TF-slim)": lambda c: (a := analytic_count(c)).macs + a.fc.spec.in_channels,
    "last block's 3x3 conv with stride 2 (as Table 1 prints it)": _last_block_stride_2,
}
PARAMS_CANDIDATES: dict[str, Callable[[ModelConfig], int]] = {
    "weights only (no FC bias)": lambda c: (a := analytic_count(c)).params(ParamConvention.PAPER) - a.fc.bias_params,
    "PyTorch's (BatchNorm gamma and beta too)": lambda c: analytic_count(c).params(ParamConvention.PYTORCH),
    "TF-slim's (1001 classes, BatchNorm beta and moving statistics)": lambda c: analytic_count(c).params(
        ParamConvention.TFSLIM
    ),
}


def _explain(frame: pd.DataFrame, what: str) -> list[str]:
    """Notes for every computed cell of column ``what`` ("macs" or "params") that is not reproduced."""
    candidates = MACS_CANDIDATES if what == "macs" else PARAMS_CANDIDATES
    label = "Mult-Adds" if what == "macs" else "params"
    counted_rows = frame[frame["id"] != ""]
    notes = []
    for _, row in counted_rows.iterrows():
        published, value, status = row[f"published_{what}_m"], row[f"{what}_m"], row[f"{what}_verdict"]
        if status == Verdict.REPRODUCED:
            continue
        line = f"{row['model']} {label}: printed {published:g}, computed {value:.2f}"
        if status == Verdict.TRUNCATED:
            line += f", which rounds to {rounded(value, published)}: the paper cut it rather than rounded it"
            tfslim = row.get("published_macs_m_tfslim") if what == "macs" else None
            if tfslim is not None and not math.isnan(tfslim):
                line += f" ({TFSLIM_SOURCE} prints {tfslim:g}, {verdict(value, tfslim).value})"
            notes.append(line + ".")
            continue
        line += f" ({rounded(value, published)}, {row[f'delta_{what}_pct']:+.2f}%). Conventions tried: "
        tried = []
        fitting = []
        for name, candidate in candidates.items():
            candidate_m = candidate(_config_of(row)) / MILLION
            result = verdict(candidate_m, published)
            tried.append(f"{name} {candidate_m:.2f} ({result.value})")
            if result is Verdict.REPRODUCED:
                fitting.append(name)
        line += "; ".join(tried) + "."
        for name in fitting:
            others = [
                (other["model"], candidates[name](_config_of(other)) / MILLION, other[f"published_{what}_m"])
                for _, other in counted_rows.iterrows()
                if other["model"] != row["model"]
            ]
            broken = [
                (model, value, printed)
                for model, value, printed in others
                if verdict(value, printed) is Verdict.DIFFERS
            ]
            if broken:
                line += (
                    f" '{name}' reproduces it but not "
                    + ", ".join(
                        f"{model} ({value:.2f} -> {rounded(value, printed)} vs {printed:g})"
                        for model, value, printed in broken
                    )
                    + ": no single convention tried reproduces the whole table."
                )
            else:
                line += f" '{name}' reproduces it and every other computed row of the table."
        if not fitting:
            line += " None of them reproduces the printed number; mnprof leaves the difference unexplained."
        notes.append(line)
    return notes


def _summary(frame: pd.DataFrame) -> str:
    computed = frame[frame["id"] != ""]
    cells = len(computed) * 2
    good = int(
        (computed["macs_verdict"] == Verdict.REPRODUCED).sum()
        + (computed["params_verdict"] == Verdict.REPRODUCED).sum()
    )
    text = f"{good} of {cells} computed cells reproduced at the printed precision."
    uncomputed = frame.loc[frame["id"] == "", "model"].tolist()
    if uncomputed:
        text += f" {', '.join(uncomputed)}: published only (mnprof builds MobileNets only)."
    return text


ACCURACY_NOTE = f"ImageNet accuracy: published in {PAPER_SOURCE}, not measured by mnprof."


def _models_table(key: str, title: str, frame: pd.DataFrame, extra: Iterable[str] = ()) -> PaperTable:
    frame = _with_verdicts(frame)
    notes = (_summary(frame), *_explain(frame, "macs"), *_explain(frame, "params"), *extra, ACCURACY_NOTE)
    return PaperTable(key, title, frame.reset_index(drop=True), notes)


def table4() -> PaperTable:
    """Table 4: MobileNet with full 3x3 convolutions instead of depthwise separable ones (variant ``full``)."""
    return _models_table("4", "Table 4: depthwise separable vs full convolution MobileNet", computed_rows(("4",)))


def table5() -> PaperTable:
    """Table 5: a thinner MobileNet (alpha 0.75) vs a shallower one (the five 14x14x512 blocks removed)."""
    return _models_table("5", "Table 5: narrow vs shallow MobileNet", computed_rows(("5",)))


def _tfslim_notes() -> list[str]:
    """TF-slim's published MACs against the computed counts and the paper, and what fits its 0.75 rows."""
    differ = []
    for entry in TFSLIM:
        config = _config(entry)
        assert config is not None and entry.macs_m is not None
        value = analytic_count(config).macs / MILLION
        if verdict(value, entry.macs_m) is not Verdict.REPRODUCED:
            differ.append((config, value, entry.macs_m))
    notes = [
        f"{TFSLIM_SOURCE} ({len(TFSLIM)} configurations): the computed Mult-Adds, rounded, reproduce "
        f"{len(TFSLIM) - len(differ)}; they differ for "
        + ", ".join(f"{c.id} (TF-slim {m:g}, computed {v:.3f})" for c, v, m in differ)
        + "."
    ]
    # Configurations that both the paper (Tables 5 to 9) and TF-slim print, where the two disagree.
    paper_by_id = {_id(e): e for e in PAPER if e.table in ("5", "6", "7", "8", "9") and _id(e)}
    parts = []
    for config_id, paper_entry in paper_by_id.items():
        tfslim_entry = _tfslim(config_id)
        if tfslim_entry is None or tfslim_entry.macs_m == paper_entry.macs_m:
            continue
        assert paper_entry.macs_m is not None and tfslim_entry.macs_m is not None
        value = analytic_count(_config(paper_entry) or REFERENCE).macs / MILLION
        parts.append(
            f"{config_id}: paper {paper_entry.macs_m:g} ({verdict(value, paper_entry.macs_m).value}), "
            f"TF-slim {tfslim_entry.macs_m:g} ({verdict(value, tfslim_entry.macs_m).value}), computed {value:.3f}"
        )
    if parts:
        notes.append("Where the paper and TF-slim print different Mult-Adds: " + "; ".join(parts) + ".")
    thin = [(c, v, m) for c, v, m in differ if c.alpha == 0.75]
    if thin:
        # A search, not a cause: the first layer's width over multiples of 8, everything else as built.
        fits = []
        for width in (8, 16, 24, 32):
            values = [macs_with(c, widths={"stem": width}) / MILLION for c, _, _ in thin]
            if all(verdict(value, m) is Verdict.REPRODUCED for value, (_, _, m) in zip(values, thin, strict=True)):
                fits.append((width, values))
        stem = scale_channels(32, 0.75)
        below = [(v - m) / v * 100 for _, v, m in thin]
        line = (
            f"TF-slim's {len(thin)} alpha 0.75 rows are {min(below):.2f} to {max(below):.2f}% below the computed "
            f"count. Tried: first-layer widths 8, 16, 24, 32 (int(32 x 0.75) = {stem} as built), all else unchanged: "
        )
        if fits:
            line += "; ".join(
                f"{width} channels give " + ", ".join(f"{value:.2f}" for value in values) for width, values in fits
            )
            line += (
                ", which round to all of TF-slim's 0.75 numbers. A fit, not a documented cause: TF-slim's own "
                f"depth rule max(int(d x alpha), 8) gives {stem}, and {stem} reproduces the paper's 0.75-224 number."
            )
        else:
            line += "none reproduces them all."
        notes.append(line)
    return notes


def table6() -> PaperTable:
    """Table 6: the width multiplier at input 224 (the rows of ``mnprof table --view paper``)."""
    return _models_table("6", "Table 6: MobileNet width multiplier", computed_rows(("6",)), _tfslim_notes())


def table7() -> PaperTable:
    """Table 7: the input resolution at alpha 1.0 (the rows of ``mnprof table --view paper``)."""
    return _models_table("7", "Table 7: MobileNet resolution", computed_rows(("7",)))


def table8() -> PaperTable:
    """Table 8: MobileNet beside popular models (only MobileNet's row is computed)."""
    return _models_table("8", "Table 8: MobileNet comparison to popular models", computed_rows(("8",)))


def table9() -> PaperTable:
    """Table 9: a smaller MobileNet beside popular models (only MobileNet's row is computed)."""
    return _models_table("9", "Table 9: smaller MobileNet comparison to popular models", computed_rows(("9",)))


TABLES: dict[str, Callable[[], PaperTable]] = {
    "1": table1,
    "2": table2,
    "3": table3,
    "4": table4,
    "5": table5,
    "6": table6,
    "7": table7,
    "8": table8,
    "9": table9,
}


def parse_tables(text: str | None) -> tuple[str, ...]:
    """``"1,3"`` -> ("1", "3"); ``None`` or ``"all"`` -> every table. Empty or unknown numbers raise MnprofError."""
    if text is None or text.strip().lower() == "all":
        return TABLE_KEYS
    accepted = f"{', '.join(TABLE_KEYS)} or all (comma-separated)"
    keys = parse_list(text, "table", accepted)
    for key in keys:
        if key not in TABLES:
            raise MnprofError(f"unknown table {key!r}; accepted: {accepted}")
    return tuple(dict.fromkeys(keys))


def paper_tables(keys: Iterable[str] = TABLE_KEYS) -> list[PaperTable]:
    """The paper's tables ``keys`` ("1" to "9"), computed."""
    return [TABLES[key]() for key in keys]
