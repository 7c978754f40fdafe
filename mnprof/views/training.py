"""A training step's counts in the grid and counts views (``--pass training``): their columns and notes."""

from __future__ import annotations

import pandas as pd

from mnprof.views.render import Column, number

__all__ = ["training_columns"]

MILLION = 1e6


def training_columns(frame: pd.DataFrame, flops: bool = False) -> tuple[tuple[Column, ...], tuple[str, ...]]:
    """The training step's columns and notes when ``frame``'s rows were counted with ``--pass training``."""
    if "macs_training" not in frame.columns or not frame["macs_training"].notna().any():
        return (), ()
    scale = 2 if flops else 1
    work = "MFLOPs" if flops else "MMACs"
    columns = (
        Column(f"backward {work}", lambda r: number(scale * r["macs_backward"] / MILLION, 1)),
        Column(f"training {work}", lambda r: number(scale * r["macs_training"] / MILLION, 1)),
        Column("x forward", lambda r: number(r["macs_training"] / r["macs_analytic"], 2)),
        Column(f"torch training {work}", lambda r: number(scale * r["macs_training_torch"] / MILLION, 1)),
        Column("torch unexplained", lambda r: number(scale * r["macs_training_torch_unexplained"])),
        Column("saved MB", lambda r: number(r["saved_activation_bytes"], 2, scale=1 / MILLION)),
        Column("measured", lambda r: number(r["saved_activation_bytes_measured"], 2, scale=1 / MILLION)),
    )
    notes = (
        "training = one training step of one image: the forward pass and its backward (analytic: each conv and "
        "linear layer's weight gradient costs its forward MACs, and its input gradient too, except the first "
        "layer's, whose input is the image). fvcore and thop count the forward only.",
        "torch training: FlopCounterMode over the forward and the backward; its convolution_backward charges a "
        "grouped (depthwise) layer's weight gradient groups times, which mnprof predicts exactly "
        "(mnprof table --pass training --view reconcile); torch unexplained is what is left, and must be 0.",
        "saved MB: float32 activations eager PyTorch's autograd keeps for the backward of one image (convolutions, "
        "linear layers and BatchNorm keep their input, ReLU its result, ReLU6, hard-swish and hard-sigmoid a copy "
        "of their input; weights not included), from the layer plan; measured: the same, seen as autograd saves "
        "each tensor (saved_tensors_hooks).",
    )
    return columns, notes
