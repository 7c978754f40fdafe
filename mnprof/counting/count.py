"""Count a configuration three ways and sweep a grid into rows: the Python API behind ``mnprof table``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from mnprof.counting.analytic import AnalyticCount, ParamConvention, analytic_count
from mnprof.counting.fvcore_counter import FvcoreCount, count_fvcore
from mnprof.counting.reconcile import FVCORE_RULES, THOP_RULES, Reconciliation, reconcile
from mnprof.counting.thop_counter import ThopCount, count_thop
from mnprof.model.config import ModelConfig
from mnprof.model.networks import build_model

__all__ = ["CountReport", "count", "count_many", "sweep"]


@dataclass(frozen=True)
class CountReport:
    """Params and MACs of one configuration from every counter, with the reconciliations."""

    config: ModelConfig
    analytic: AnalyticCount
    params_model: int  # sum of numel over model.parameters()
    fvcore: FvcoreCount
    thop: ThopCount
    fvcore_reconciliation: Reconciliation
    thop_reconciliation: Reconciliation

    def row(self) -> dict[str, Any]:
        """A flat record: exact integers, units in the key names (MACs for one image)."""
        return {
            **self.config.columns(),
            "params": self.analytic.params(ParamConvention.PYTORCH),
            "params_model": self.params_model,
            "params_thop": self.thop.params,
            "params_paper": self.analytic.params(ParamConvention.PAPER),
            "params_tfslim": self.analytic.params(ParamConvention.TFSLIM),
            "macs_analytic": self.analytic.macs,
            "macs_fvcore": self.fvcore.total,
            "macs_thop": self.thop.total,
            "macs_fvcore_conv_linear": self.fvcore_reconciliation.in_analytic_counted,
            "macs_thop_conv_linear": self.thop_reconciliation.in_analytic_counted,
            "macs_fvcore_unexplained": self.fvcore_reconciliation.unexplained,
            "macs_thop_unexplained": self.thop_reconciliation.unexplained,
            "fvcore_explained": self.fvcore_reconciliation.explain(),
            "thop_explained": self.thop_reconciliation.explain(),
            "fvcore_unsupported_ops": ";".join(f"{op}x{n}" for op, n in sorted(self.fvcore.unsupported_ops.items())),
        }


def _input(config: ModelConfig) -> torch.Tensor:
    return torch.zeros(1, 3, config.resolution, config.resolution)


def _count_built(config: ModelConfig, model: torch.nn.Module) -> CountReport:
    analytic = analytic_count(config)
    inputs = _input(config)
    fvcore = count_fvcore(model, inputs)
    thop = count_thop(model, inputs)
    return CountReport(
        config=config,
        analytic=analytic,
        params_model=sum(parameter.numel() for parameter in model.parameters()),
        fvcore=fvcore,
        thop=thop,
        fvcore_reconciliation=reconcile(
            "fvcore", fvcore.total, fvcore.by_operator, analytic, FVCORE_RULES, fvcore.unsupported_ops
        ),
        thop_reconciliation=reconcile("thop", thop.total, thop.by_type, analytic, THOP_RULES),
    )


def count(config: ModelConfig) -> CountReport:
    """Build ``config``'s model and count it analytically, with fvcore and with thop."""
    return _count_built(config, build_model(config))


def count_many(
    configs: Iterable[ModelConfig],
    on_done: Callable[[ModelConfig], None] | None = None,
) -> list[CountReport]:
    """Count every configuration, building one model per width (the input size does not change weights).

    ``on_done`` is called after each configuration (for progress bars).
    """
    configs = list(configs)
    models: dict[tuple[Any, ...], torch.nn.Module] = {}
    reports = []
    for config in configs:
        model = models.get(config.width_key)
        if model is None:
            model = models[config.width_key] = build_model(config)
        reports.append(_count_built(config, model))
        if on_done is not None:
            on_done(config)
    return reports


def sweep(configs: Sequence[ModelConfig]) -> Any:
    """Count every configuration into a pandas DataFrame, one row per configuration."""
    return pd.DataFrame([report.row() for report in count_many(configs)])
