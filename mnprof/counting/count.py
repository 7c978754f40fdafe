"""Count a configuration every way mnprof knows (the layer plan, fvcore, thop, torch's FlopCounterMode, and
the shape counter as the plan's independent witness) and sweep a grid into rows: the API behind ``mnprof table``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from mnprof.counting.analytic import AnalyticCount, ParamConvention
from mnprof.counting.fvcore_counter import FvcoreActivations, FvcoreCount, count_fvcore, count_fvcore_activations
from mnprof.counting.reconcile import (
    FVCORE_RULES,
    THOP_RULES,
    TORCH_RULES,
    TORCH_SKIPPED,
    Reconciliation,
    reconcile,
)
from mnprof.counting.shapes import ShapeCount, count_config_shapes
from mnprof.counting.thop_counter import ThopCount, count_thop
from mnprof.counting.torch_counter import TorchCount, count_torch
from mnprof.counting.traced import plan_count
from mnprof.counting.training import (
    TrainingCount,
    count_torch_training,
    reconcile_training,
    saved_activation_elements,
    saved_for_backward,
    training_count,
)
from mnprof.model.config import ModelConfig
from mnprof.model.networks import build_model
from mnprof.user_code import user_code

__all__ = ["CountReport", "count", "count_many", "plan_count", "sweep"]


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
    # torch's FlopCounterMode and the shape counter (conv and linear MACs from shapes on the meta device, the
    # layer plan's independent witness), when asked for: the first use of either in a process costs about a
    # second (PyTorch's dispatch-mode and meta machinery load), which the default table does not need.
    torch: TorchCount | None = None
    torch_reconciliation: Reconciliation | None = None
    shapes: ShapeCount | None = None
    fvcore_activations: FvcoreActivations | None = None  # one more fvcore trace, run with the other extras
    # a training step (``--pass training``): forward and backward, analytic and FlopCounterMode's (fvcore and thop
    # count the forward only)
    training: TrainingCount | None = None
    torch_training: TorchCount | None = None
    torch_training_reconciliation: Reconciliation | None = None
    saved_bytes_measured: int | None = None  # what autograd kept for the backward, seen as it saved it

    @property
    def reconciliations(self) -> tuple[Reconciliation, ...]:
        every = (self.fvcore_reconciliation, self.thop_reconciliation, self.torch_reconciliation)
        return tuple(reconciliation for reconciliation in every if reconciliation is not None)

    def row(self) -> dict[str, Any]:
        """A flat record: exact integers, units in the key names (MACs for one image)."""
        return {
            **self.config.columns(),
            "params": self.analytic.params(ParamConvention.PYTORCH),
            "params_model": self.params_model,
            "params_thop": self.thop.params,
            "params_paper": self.analytic.params(ParamConvention.PAPER),
            "params_tfslim": self.analytic.params(ParamConvention.TFSLIM) if self.analytic.planned else None,
            "macs_analytic": self.analytic.macs,
            "analytic_source": "plan" if self.analytic.planned else "traced",
            "macs_fvcore": self.fvcore.total,
            "macs_thop": self.thop.total,
            "macs_fvcore_conv_linear": self.fvcore_reconciliation.in_analytic_counted,
            "macs_thop_conv_linear": self.thop_reconciliation.in_analytic_counted,
            "macs_fvcore_unexplained": self.fvcore_reconciliation.unexplained,
            "macs_thop_unexplained": self.thop_reconciliation.unexplained,
            "fvcore_explained": self.fvcore_reconciliation.explain(),
            "thop_explained": self.thop_reconciliation.explain(),
            "fvcore_unsupported_ops": ";".join(f"{op}x{n}" for op, n in sorted(self.fvcore.unsupported_ops.items())),
            "macs_torch": self.torch.total if self.torch is not None else None,
            "macs_torch_unexplained": self.torch_reconciliation.unexplained if self.torch_reconciliation else None,
            "torch_explained": self.torch_reconciliation.explain() if self.torch_reconciliation else None,
            "macs_shapes": self.shapes.macs if self.shapes is not None else None,
            "activations": self.analytic.activations,
            "activations_fvcore": self.fvcore_activations.total if self.fvcore_activations is not None else None,
            "weights_bytes": 4 * self.analytic.params(ParamConvention.PYTORCH),
            "peak_activation_bytes": 4 * self.analytic.peak_working_set() if self.analytic.planned else None,
            **self._training_row(),
        }

    def _training_row(self) -> dict[str, Any]:
        """A training step's columns (only with ``--pass training``)."""
        if self.training is None or self.torch_training is None or self.torch_training_reconciliation is None:
            return {}
        reconciliation = self.torch_training_reconciliation
        excess = reconciliation.in_analytic_counted - self.training.macs
        explained = "torch = analytic training" + (
            f" + grouped weight gradients charged groups times {excess:,}" if excess else ""
        )
        if reconciliation.unexplained:
            explained += f" + unexplained {reconciliation.unexplained:+,}"
        return {
            "pass": "training",
            "macs_backward": self.training.backward_macs,
            "macs_training": self.training.macs,
            "macs_training_torch": self.torch_training.total,
            "macs_training_torch_unexplained": reconciliation.unexplained,
            # FlopCounterMode's grouped weight gradients charged groups times: the one way it differs (explained)
            "macs_training_torch_groups_excess": excess,
            "torch_training_explained": explained,
            # float32 elements autograd keeps for the backward of one image: the model (a layer plan's) and as seen
            "saved_activation_bytes": 4 * saved if (saved := saved_activation_elements(self.analytic)) else None,
            "saved_activation_bytes_measured": self.saved_bytes_measured,
        }


def _input(config: ModelConfig) -> torch.Tensor:
    return torch.zeros(1, 3, config.resolution, config.resolution)


def _count_built(
    config: ModelConfig,
    model: torch.nn.Module,
    shapes: ShapeCount | None = None,
    with_torch: bool = False,
    training: bool = False,
) -> CountReport:
    # A user's model is its code all through (named_modules, parameters, __hash__ ...), not only in its forward:
    # what any of it raises is one line naming the model (a forward's own failure says so first).
    fence = nullcontext() if config.builtin else user_code(f"model {config.family} at {config.id}: counting failed:")
    with fence:
        report = _counted(config, model, shapes, with_torch)
        return _with_training(report, model) if training else report


def _with_training(report: CountReport, model: torch.nn.Module) -> CountReport:
    """``report`` with its configuration's training step counted (analytic and FlopCounterMode, reconciled)."""
    config = report.config
    training = training_count(report.analytic, model)
    with user_code(f"model {config.family} at {config.id}: its training step failed:"):
        torch_training = count_torch_training(model, _input(config))
        saved_bytes, _ = saved_for_backward(model, _input(config))
    return dataclasses.replace(
        report,
        training=training,
        torch_training=torch_training,
        torch_training_reconciliation=reconcile_training(training, torch_training),
        saved_bytes_measured=saved_bytes,
    )


def _counted(config: ModelConfig, model: torch.nn.Module, shapes: ShapeCount | None, with_torch: bool) -> CountReport:
    analytic = plan_count(config, model)
    inputs = _input(config)
    with user_code(f"model {config.family} at {config.id}: forward failed:"):  # a user's forward, counted
        fvcore = count_fvcore(model, inputs)
        thop = count_thop(model, inputs)
        torch_count = count_torch(model, inputs) if with_torch else None
        activations = count_fvcore_activations(model, inputs) if with_torch else None
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
        torch=torch_count,
        torch_reconciliation=(
            reconcile(
                "torch",
                torch_count.total,
                torch_count.by_operator,
                analytic,
                TORCH_RULES,
                torch_count.uncounted,
                TORCH_SKIPPED,
            )  # fmt: skip
            if torch_count is not None
            else None
        ),
        shapes=shapes,
        fvcore_activations=activations,
    )


def count(config: ModelConfig, *, every_counter: bool = True, training: bool = False) -> CountReport:
    """Build ``config``'s model and count it (``every_counter``: torch's and the shape counter too; ``training``:
    a training step's forward and backward too)."""
    shapes = count_config_shapes([config])[0] if every_counter else None
    return _count_built(config, build_model(config), shapes, with_torch=every_counter, training=training)


def count_many(
    configs: Iterable[ModelConfig],
    on_done: Callable[[ModelConfig], None] | None = None,
    *,
    every_counter: bool = False,
    training: bool = False,
) -> list[CountReport]:
    """Count every configuration, building one model per width (the input size does not change weights).

    ``on_done`` is called after each configuration (for progress bars); ``every_counter`` adds torch's
    FlopCounterMode and the shape counter to the layer plan, fvcore and thop; ``training``, a training step's
    forward and backward (:mod:`mnprof.counting.training`).
    """
    configs = list(configs)
    models: dict[tuple[Any, ...], torch.nn.Module] = {}
    reports = []
    witnesses = count_config_shapes(configs) if every_counter else [None] * len(configs)
    for config, shape_count in zip(configs, witnesses, strict=True):
        model = models.get(config.width_key)
        if model is None:
            model = models[config.width_key] = build_model(config)
        reports.append(_count_built(config, model, shape_count, with_torch=every_counter, training=training))
        if on_done is not None:
            on_done(config)
    return reports


def sweep(configs: Sequence[ModelConfig]) -> Any:
    """Count every configuration into a pandas DataFrame, one row per configuration."""
    return pd.DataFrame([report.row() for report in count_many(configs)])
