"""What predicts latency on this host: least-squares fits of measured latency against MACs, activations and both.

For each timing series (one runtime, batch size, thread count, device, host and run) with at least
:data:`MIN_POINTS` configurations, three models are fitted to the headline latency (ms per batch):

- ``MACs``: ``ms = a x GMACs + c``
- ``activations``: ``ms = b x M activations + c`` (conv and linear output elements, one image)
- ``MACs + activations``: ``ms = a x GMACs + b x M activations + c``

each with its coefficients and R². The fits describe this host's measurements; they are not conventions.
:func:`seed_gflops_finding` asks the same question of the seed note's "GFLOPS" column, with leave-one-out
evidence, so that a two-parameter fit to seven printed numbers is not mistaken for a reproduced convention.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mnprof.model.reference import SEED_SOURCE

__all__ = [
    "MIN_POINTS",
    "PREDICTORS",
    "Fit",
    "fit_notes",
    "fit_summary",
    "latency_fits",
    "least_squares",
    "seed_gflops_finding",
]

MIN_POINTS = 4  # three coefficients need more points than that to leave a residual
PREDICTORS: dict[str, tuple[str, ...]] = {
    "MACs": ("gmacs",),
    "activations": ("mactivations",),
    "MACs + activations": ("gmacs", "mactivations"),
}


@dataclass(frozen=True)
class Fit:
    """One least-squares fit: coefficients by predictor column (and ``intercept``), R², points."""

    series: str
    model: str
    coefficients: dict[str, float]
    r2: float
    points: int

    @property
    def adjusted_r2(self) -> float:
        """R² adjusted for the number of predictors, so that adding one does not score by itself."""
        predictors = len(self.coefficients) - 1
        if self.points - predictors - 1 <= 0:
            return float("nan")
        return 1 - (1 - self.r2) * (self.points - 1) / (self.points - predictors - 1)

    def formula(self) -> str:
        names = {"gmacs": "GMACs", "mactivations": "M activations", "intercept": ""}
        text = "ms ="
        for index, (name, value) in enumerate(self.coefficients.items()):
            term = f"{abs(value):.3g}" + (f" x {names[name]}" if names[name] else "")
            text += f" {term}" if index == 0 and value >= 0 else f" {'-' if value < 0 else '+'} {term}"
        return text


def least_squares(columns: Sequence[Sequence[float]], y: Sequence[float]) -> tuple[list[float], float]:
    """Coefficients of ``y ~ columns + intercept`` (intercept last) and R² (NaN where y does not vary)."""
    design = np.column_stack([*(np.asarray(c, dtype=float) for c in columns), np.ones(len(y))])
    target = np.asarray(y, dtype=float)
    coefficients, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = float(((target - design @ coefficients) ** 2).sum())
    total = float(((target - target.mean()) ** 2).sum())
    return [float(c) for c in coefficients], (1 - residual / total) if total > 0 else float("nan")


def latency_fits(rows: pd.DataFrame, series: Sequence[str]) -> list[Fit]:
    """The three fits per timing series of ``rows`` (timed rows with ``latency_ms``, ``macs_analytic`` and
    ``activations``), for series with at least :data:`MIN_POINTS` distinct configurations."""
    timed = rows[rows["latency_ms"].notna() & rows["activations"].notna()].copy()
    if timed.empty:
        return []
    timed["gmacs"] = timed["macs_analytic"].astype(float) / 1e9
    timed["mactivations"] = timed["activations"].astype(float) / 1e6
    fits = []
    for key, part in timed.groupby(list(series), sort=False, dropna=False):
        if part["id"].nunique() < MIN_POINTS:
            continue
        values = dict(zip(series, key if isinstance(key, tuple) else (key,), strict=True))
        label = _label(values, several={column: timed[column].nunique() > 1 for column in series})
        for model, predictors in PREDICTORS.items():
            coefficients, r2 = least_squares([part[p] for p in predictors], part["latency_ms"])
            named = dict(zip([*predictors, "intercept"], coefficients, strict=True))
            fits.append(Fit(label, model, named, r2, len(part)))
    return fits


def _label(values: dict[str, object], several: dict[str, bool]) -> str:
    """``eager, batch 1, 2 threads``, with the device, host and run where the rows hold more than one."""
    parts = [str(values.get("backend", ""))]
    if "batch_size" in values:
        parts.append(f"batch {values['batch_size']}")
    if "threads" in values:
        parts.append(f"{values['threads']} threads")
    for column in ("device", "host", "run_id"):
        if several.get(column):
            parts.append(f"{column} {str(values[column])[:8]}")
    return ", ".join(part for part in parts if part)


def fit_notes(fits: Sequence[Fit]) -> list[str]:
    """One line per series: R² of each model, and the best model's formula."""
    notes = []
    for label in dict.fromkeys(fit.series for fit in fits):
        mine = [fit for fit in fits if fit.series == label]
        best = max(mine, key=lambda fit: fit.adjusted_r2 if fit.adjusted_r2 == fit.adjusted_r2 else -1)
        scores = "; ".join(f"{fit.model} {fit.adjusted_r2:.3f}" for fit in mine)
        notes.append(
            f"What predicts latency ({label}; {mine[0].points} configurations, least squares, adjusted R²): "
            f"{scores}; best: {best.formula()}"
        )
    return notes


def seed_gflops_finding(gmacs: Sequence[float], gacts: Sequence[float], printed: Sequence[float]) -> str:
    """Whether a combination of MACs and activations reproduces the seed note's GFLOPS column (``printed``, two
    decimals), with evidence: the fit to every printed value, and each value predicted by a fit to the others
    (leave-one-out), beside a fitted factor on MACs alone."""
    n = len(printed)

    def fitted(keep: Sequence[int], columns: Sequence[Sequence[float]]) -> np.ndarray:
        design = np.column_stack([[c[i] for i in keep] for c in columns])
        coefficients, *_ = np.linalg.lstsq(design, np.array([printed[i] for i in keep]), rcond=None)
        return coefficients

    def predicted(coefficients: np.ndarray, columns: Sequence[Sequence[float]], i: int) -> float:
        return round(float(np.dot(coefficients, [c[i] for c in columns])), 2)

    both = (gmacs, gacts)
    whole = fitted(range(n), both)
    in_sample = sum(predicted(whole, both, i) == printed[i] for i in range(n))
    held_out = {}
    for name, columns in (("both", both), ("macs", (gmacs,))):
        held_out[name] = sum(
            predicted(fitted([j for j in range(n) if j != i], columns), columns, i) == printed[i] for i in range(n)
        )
    return (
        f"Finding, not a convention: GFLOPS = {whole[0]:.2f} x GMACs + {whole[1]:.1f} x G activations (no "
        f"intercept, fitted to the {SEED_SOURCE}'s {n} printed values) gives {in_sample} of {n} to the printed 2 "
        f"decimals; each value predicted from a fit to the other {n - 1}: {held_out['both']} of {n} (a fitted "
        f"factor on MACs alone: {held_out['macs']} of {n}). Two free parameters on {n} two-decimal numbers cannot "
        "establish a convention: the column stays unexplained (mnprof.views.predict.seed_gflops_finding)."
    )


def fit_summary(fits: Sequence[Fit]) -> str | None:
    """The fits in one line for the terminal: R² of each model, per series (None without fits)."""
    if not fits:
        return None
    short = {"MACs": "MACs", "activations": "activations", "MACs + activations": "both"}
    parts = []
    for label in dict.fromkeys(fit.series for fit in fits):
        scores = ", ".join(f"{short[fit.model]} {fit.adjusted_r2:.2f}" for fit in fits if fit.series == label)
        parts.append(f"{label}: {scores}")
    return "what predicts latency (adjusted R² of least squares; --wide: the formulas): " + "; ".join(parts)
