"""What a memory measurement holds: the peak of one forward pass, the tensors alive at it and why each is."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mnprof.model.config import ModelConfig
from mnprof.runtimes.registry import Backend, Device

__all__ = ["ANALYTIC_CAUSES", "Cause", "LiveTensor", "MemoryMeasurement"]


class Cause(StrEnum):
    """Why a tensor is alive at the peak. The first three are what the analytic model counts."""

    LAYER_INPUT = "layer input"
    LAYER_OUTPUT = "layer output"
    RESIDUAL = "block input kept for the add"
    UNFOLDED_BATCHNORM = "conv output kept while BatchNorm writes its own (BatchNorm not folded)"
    HELD_BY_CALLER = "held as an argument by an enclosing module call"
    INPUT_BATCH = "input batch, held by the caller"
    WORKSPACE = "workspace of the running operator"
    OTHER = "other"

    @property
    def key(self) -> str:
        """Its column in a memory row: ``layer_input_bytes``, ..."""
        return f"{self.name.lower()}_bytes"


ANALYTIC_CAUSES = (Cause.LAYER_INPUT, Cause.LAYER_OUTPUT, Cause.RESIDUAL)


@dataclass(frozen=True)
class LiveTensor:
    """One allocation alive at the peak: its bytes, the module call and aten operator that made it, and why."""

    nbytes: int
    module: str  # module path ("" the model's own forward; "(caller)" allocated before the call)
    op: str
    cause: Cause


@dataclass(frozen=True)
class MemoryMeasurement:
    """The peak of one forward pass of ``config`` at ``batch_size`` on ``backend``, and what makes it up."""

    config: ModelConfig
    backend: Backend
    device: Device
    batch_size: int
    weights_held_bytes: int  # parameters and buffers as the runtime holds them
    input_bytes: int
    forward_peak_bytes: int  # the pass's own allocations alive at their peak
    layer: str | None  # the plan layer (or, for a user family, the module) running at the peak
    live: tuple[LiveTensor, ...]  # empty where not broken down (CUDA)
    analytic_at_layer_bytes: int | None  # the analytic model's working set at ``layer``
    analytic_peak_bytes: int | None  # the analytic model's peak over all layers
    analytic_peak_layer: str | None
    analytic_weights_bytes: int  # float32 parameters (PyTorch's convention), at the runtime's element size
    activation_bytes: int  # bytes per activation element on this runtime

    @property
    def total_bytes(self) -> int:
        return self.weights_held_bytes + self.input_bytes + self.forward_peak_bytes

    @property
    def analytic_total_bytes(self) -> int | None:
        if self.analytic_peak_bytes is None:
            return None
        return self.analytic_weights_bytes + self.analytic_peak_bytes

    def bytes_of(self, cause: Cause) -> int:
        return sum(tensor.nbytes for tensor in self.live if tensor.cause is cause)

    @property
    def buffer_bytes(self) -> int:
        """Weights held minus the parameters at the runtime's element size: BatchNorm's running statistics and
        counters where BatchNorm runs; where it is folded (fused), minus its scale and shift plus a bias per
        folded channel."""
        return self.weights_held_bytes - self.analytic_weights_bytes

    def row(self) -> dict[str, Any]:
        """One flat row: the measured total and its parts, the analytic figures, and the bytes of each cause
        (``<cause>_bytes``; null where the peak is not broken down, as on CUDA)."""
        row: dict[str, Any] = {
            "id": self.config.id,
            "family": str(self.config.family),
            "alpha": self.config.alpha,
            "resolution": self.config.resolution,
            "backend": self.backend.value,
            "device": self.device.value,
            "batch_size": self.batch_size,
            "activation_element_bytes": self.activation_bytes,
            "weights_held_bytes": self.weights_held_bytes,
            "input_bytes": self.input_bytes,
            "forward_peak_bytes": self.forward_peak_bytes,
            "measured_bytes": self.total_bytes,
            "weights_bytes": self.analytic_weights_bytes,
            "analytic_working_set_bytes": self.analytic_peak_bytes,
            "analytic_working_set_layer": self.analytic_peak_layer,
            "analytic_bytes": self.analytic_total_bytes,
            "peak_layer": self.layer,
            "analytic_at_peak_layer_bytes": self.analytic_at_layer_bytes,
            "weights_beyond_params_bytes": self.buffer_bytes,
        }
        for cause in Cause:
            row[cause.key] = self.bytes_of(cause) if self.live else None
        return row

    def tensor_rows(self) -> list[dict[str, Any]]:
        """One flat row per tensor alive at the peak."""
        head = {"id": self.config.id, "backend": self.backend.value, "batch_size": self.batch_size}
        head["peak_layer"] = self.layer
        return [{**head, "module": t.module, "op": t.op, "cause": t.cause.value, "bytes": t.nbytes} for t in self.live]
