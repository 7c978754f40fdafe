"""Per-layer counts of one configuration: shapes, params, MACs (analytic, and fvcore's count of each module), the
standard convolution each separable block replaces, bytes moved and arithmetic intensity, and (``--pass training``)
each layer's backward. :mod:`mnprof.views.layers` sets measured times beside them and renders them.

Conventions:

- params and MACs: the paper's (a layer's own weights and biases; conv and FC multiply-accumulates).
- bytes moved: float32 (4 bytes), the layer's weights once + its input activations once + its
  output activations once. BatchNorm and ReLU are taken as folded into the convolution, as
  inference runtimes deploy them, so neither their parameters nor their own passes over the
  activations are counted (nor the M-float bias that folding BatchNorm adds). This is the
  minimum traffic of a layer without caching across layers: a lower bound, not a measurement.
- arithmetic intensity: FLOPs per byte = 2 x MACs / bytes moved.
"""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from typing import Any

import pandas as pd
import torch

from mnprof.counting.analytic import AnalyticCount
from mnprof.counting.fvcore_counter import FvcoreCount, count_fvcore
from mnprof.counting.traced import plan_count
from mnprof.counting.training import training_count
from mnprof.model.arch import CONV_KINDS, LayerKind
from mnprof.model.config import ModelConfig
from mnprof.model.networks import build_model, module_paths
from mnprof.user_code import user_code

__all__ = ["BYTES_PER_ELEMENT", "layer_counts", "layer_fvcore", "layer_training"]

BYTES_PER_ELEMENT = 4  # float32


def _shape(channels: int, height: int, width: int | None = None) -> str:
    return f"{height}x{width or height}x{channels}"


def _bytes_moved(layer_params: int, in_elements: int, out_elements: int) -> int:
    return BYTES_PER_ELEMENT * (layer_params + in_elements + out_elements)


def layer_counts(config: ModelConfig, fvcore_by_module: dict[str, int] | None = None) -> pd.DataFrame:
    """One row per layer: shapes, params, MACs, the standard conv each separable block replaces, bytes, intensity.

    ``fvcore_by_module``: fvcore's per-module counts of the built model (``FvcoreCount.by_module``);
    when given, ``macs_fvcore`` (the layer's own module) and ``macs_fvcore_unit`` (with its
    BatchNorm and ReLU) are filled in.
    """
    count = plan_count(config)
    total_macs = count.macs
    rows = []
    layers = count.layers
    # fvcore counts a module's calls together: a module that runs more than once (shared) has no per-call figure
    calls = Counter(module_paths(layer.spec)[0] for layer in layers)
    for index, layer in enumerate(layers):
        spec = layer.spec
        op_path, unit_path = module_paths(spec)
        block = int(spec.name.split(".")[1]) if spec.name.startswith("blocks.") else None
        bytes_moved = _bytes_moved(layer.params, layer.in_elements, layer.out_elements)
        # a product of two tensors (a user's attention) runs in a forward, no module of its own: fvcore has no
        # per-module figure for it
        fvcore = fvcore_by_module is not None and spec.kind not in (LayerKind.MATMUL, LayerKind.SOFTMAX)
        row: dict[str, Any] = {
            "id": config.id,
            "layer": spec.name,
            "kind": spec.kind.value,
            "block": block,
            "in_shape": _shape(spec.in_channels, spec.in_size, spec.in_width),
            "out_shape": _shape(spec.out_channels, spec.out_size, spec.out_width),
            "kernel": spec.kernel,
            "kernel_width": spec.kernel_width or spec.kernel,
            "stride": spec.stride,
            "stride_width": spec.stride_width or spec.stride,
            "groups": spec.groups,
            "params": layer.params,
            "macs_analytic": layer.macs,
            "macs_fvcore": fvcore_by_module.get(op_path, 0) if fvcore and calls[op_path] == 1 else pd.NA,
            "macs_fvcore_unit": fvcore_by_module.get(unit_path, 0) if fvcore and calls[op_path] == 1 else pd.NA,
            "macs_share": layer.macs / total_macs,
            "bytes_moved": bytes_moved,
            "activations": layer.out_elements if spec.kind in (*CONV_KINDS, LayerKind.FC) else 0,
            "arithmetic_intensity_flops_per_byte": 2 * layer.macs / bytes_moved,
        }
        row.update(_standard_in_place(layers, index))
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["block"] = frame["block"].astype("Int64")
    for column in ("macs_fvcore", "macs_fvcore_unit", "macs_standard", "params_standard"):
        frame[column] = frame[column].astype("Int64")
    return frame


def _standard_in_place(layers: tuple[Any, ...], index: int) -> dict[str, Any]:
    """On a block's pointwise row: the standard 3x3 conv the depthwise + pointwise pair stands in for (MobileNetV3:
    with its squeeze-and-excite between them, whose small MACs are not part of the pair).

    Separable/standard is computed from the two counts, and the seed note's 1/M + 1/F^2 beside it;
    the two are equal exactly (as fractions) for every block, since both sides share Ho * Wo * N.
    """
    empty = {
        "macs_standard": pd.NA,
        "params_standard": pd.NA,
        "separable_to_standard": float("nan"),
        "seed_formula_ratio": float("nan"),
    }
    spec = layers[index].spec
    previous = index - 1
    if previous > 0 and layers[previous].spec.kind is LayerKind.SCALE:  # MobileNetV3: the SE between dw and project
        while previous > 0 and layers[previous].spec.kind is not LayerKind.POOL:
            previous -= 1
        previous -= 1
    if spec.kind is not LayerKind.POINTWISE or index == 0 or layers[previous].spec.kind is not LayerKind.DEPTHWISE:
        return empty
    depthwise = layers[previous]
    channels_in, channels_out = spec.in_channels, spec.out_channels
    # a traced layer may not be square: F^2 is the kernel's height x width, Ho x Wo the output's
    kernel_area = depthwise.spec.kernel * (depthwise.spec.kernel_width or depthwise.spec.kernel)
    positions = spec.out_size * (spec.out_width or spec.out_size)
    params_standard = kernel_area * channels_in * channels_out
    standard = positions * params_standard
    separable = depthwise.macs + layers[index].macs
    return {
        "macs_standard": standard,
        "params_standard": params_standard,
        "separable_to_standard": float(Fraction(separable, standard)),
        "seed_formula_ratio": float(Fraction(1, channels_out) + Fraction(1, kernel_area)),
    }


def layer_training(frame: pd.DataFrame, config: ModelConfig, count: AnalyticCount) -> pd.DataFrame:
    """``frame`` with each layer's backward (``--pass training``): its weight and input gradients' MACs and the
    layer's training MACs (forward + backward), by :mod:`mnprof.counting.training`'s rule."""
    training = training_count(count, None if count.planned else build_model(config))
    by_name = {gradients.layer.spec.name: gradients for gradients in training.layers}
    frame = frame.copy()
    frame["macs_weight_grad"] = [by_name[n].weight_grad_macs if n in by_name else 0 for n in frame["layer"]]
    frame["macs_input_grad"] = [by_name[n].input_grad_macs if n in by_name else 0 for n in frame["layer"]]
    frame["macs_training"] = frame["macs_analytic"] + frame["macs_weight_grad"] + frame["macs_input_grad"]
    return frame


def layer_fvcore(config: ModelConfig) -> FvcoreCount:
    """fvcore's count of ``config``'s built model, for its per-module figures (about a second at 1.0-224)."""
    with user_code(f"model {config.family} at {config.id}: forward failed:"):
        return count_fvcore(build_model(config), torch.zeros(1, 3, config.resolution, config.resolution))
