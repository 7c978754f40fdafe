"""fvcore's FlopCountAnalysis behind one small adapter (the only module that imports fvcore).

fvcore traces the model with torch.jit, which is deprecated upstream; keeping it here means
another counter can replace it without touching the rest of mnprof.

Convention (fvcore 0.1.5): one "flop" is one multiply-add. Convolutions and linear layers
count their MACs without bias; eval-mode BatchNorm counts 1 per element, 2 with the affine
transform; adaptive average pooling counts 1 per input element; ReLU is not counted.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["FvcoreActivations", "FvcoreCount", "count_fvcore", "count_fvcore_activations"]


@dataclass(frozen=True)
class FvcoreCount:
    """What fvcore counted for one input, and everything it said it did not count."""

    total: int
    by_operator: dict[str, int]
    by_module: dict[str, int]
    unsupported_ops: dict[str, int] = field(default_factory=dict)
    uncalled_modules: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()  # warnings and log records emitted while tracing


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


def count_fvcore(model: nn.Module, inputs: torch.Tensor) -> FvcoreCount:
    """Trace ``model`` on ``inputs`` with fvcore and return its totals and breakdowns."""
    from fvcore.nn import FlopCountAnalysis  # imported here: tracing is the only thing that needs it

    handler = _Collect()
    fvcore_logger = logging.getLogger("fvcore")
    fvcore_logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught, torch.no_grad():
            warnings.simplefilter("always")
            # Its own warnings are switched off because everything they would say is recorded below.
            analysis = FlopCountAnalysis(model, inputs)
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            total = analysis.total()
            by_operator = {name: int(value) for name, value in analysis.by_operator().items()}
            by_module = {name: int(value) for name, value in analysis.by_module().items()}
            unsupported = {name: int(value) for name, value in analysis.unsupported_ops().items()}
            uncalled = tuple(sorted(analysis.uncalled_modules()))
    finally:
        fvcore_logger.removeHandler(handler)
    messages = tuple(dict.fromkeys([str(w.message) for w in caught] + handler.records))
    return FvcoreCount(int(total), by_operator, by_module, unsupported, uncalled, messages)


@dataclass(frozen=True)
class FvcoreActivations:
    """What fvcore's ActivationCountAnalysis counted for one input: output elements of conv and linear layers."""

    total: int
    by_operator: dict[str, int]


def count_fvcore_activations(model: nn.Module, inputs: torch.Tensor) -> FvcoreActivations:
    """Trace ``model`` on ``inputs`` with fvcore's ActivationCountAnalysis (one more trace than the MACs')."""
    from fvcore.nn import ActivationCountAnalysis  # imported here, as FlopCountAnalysis above

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # its unsupported-op notes repeat the MAC analysis's, which are kept
        analysis = ActivationCountAnalysis(model, inputs)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return FvcoreActivations(int(analysis.total()), {k: int(v) for k, v in analysis.by_operator().items()})
