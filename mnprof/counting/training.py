"""Training cost: one forward pass and its backward, counted in closed form and by torch's FlopCounterMode.

Rule (per conv and linear layer, one image): the backward pass computes the gradient of the layer's weights,
``dL/dW``, which costs the layer's forward MACs, and the gradient of its input, ``dL/dx``, which costs them again,
except where the input needs no gradient: the image that enters the first layer, or any tensor computed from
nothing that trains. Depthwise layers likewise (both gradients are per channel, as the forward is). A frozen
layer (weights with ``requires_grad=False``) computes no weight gradient. Training MACs = forward + backward:
about 3x forward, less the first layer's input gradient. Bias gradients (sums), BatchNorm's, activations' and
pooling's backward cost 0 MACs here, as their forward does.

Who can count a backward pass: torch's FlopCounterMode (it counts at the dispatcher, so it sees
``aten.convolution_backward`` and the ``aten.mm`` products of a linear layer's backward). fvcore (a
torch.jit trace of the forward) and thop (forward hooks) count the forward only.

FlopCounterMode's formula for ``convolution_backward`` (torch <= 2.13) charges a grouped convolution's weight
gradient as if it were ungrouped: ``groups`` times its MACs, so a depthwise layer's is charged ``channels``
times. The reconciliation predicts that exactly and names it, so it is explained, not hidden.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mnprof.counting.analytic import AnalyticCount, LayerCount
from mnprof.counting.reconcile import TORCH_RULES, Reconciliation, Rule, reconcile
from mnprof.counting.torch_counter import TorchCount
from mnprof.errors import MnprofError
from mnprof.model.arch import CONV_KINDS, Activation, LayerKind
from mnprof.model.config import ModelConfig
from mnprof.user_code import user_code

__all__ = [
    "LayerGradients",
    "TrainingCount",
    "count_torch_training",
    "reconcile_training",
    "saved_activation_elements",
    "saved_for_backward",
    "training_count",
]


@dataclass(frozen=True)
class LayerGradients:
    """One conv or linear layer's backward: the MACs of its weight gradient and of its input gradient."""

    layer: LayerCount
    weight_grad: bool  # its weights train
    input_grad: bool  # its input needs a gradient (computed from something that trains)

    @property
    def weight_grad_macs(self) -> int:
        return self.layer.macs if self.weight_grad else 0

    @property
    def input_grad_macs(self) -> int:
        return self.layer.macs if self.input_grad else 0

    @property
    def backward_macs(self) -> int:
        return self.weight_grad_macs + self.input_grad_macs


@dataclass(frozen=True)
class TrainingCount:
    """Analytic MACs of one training step (forward and backward) of one image, per layer and in total."""

    forward: AnalyticCount
    layers: tuple[LayerGradients, ...]  # the forward's conv and linear layers, in its order

    @cached_property
    def backward_macs(self) -> int:
        return sum(layer.backward_macs for layer in self.layers)

    @property
    def macs(self) -> int:
        """Forward plus backward."""
        return self.forward.macs + self.backward_macs

    def backward_of(self, kinds: Sequence[LayerKind]) -> int:
        return sum(layer.backward_macs for layer in self.layers if layer.layer.spec.kind in kinds)

    @cached_property
    def flop_counter_conv_backward(self) -> int:
        """FlopCounterMode's ``aten.convolution_backward`` (in MACs): input gradients as they are, weight gradients
        ``groups`` times over (its formula does not divide by groups)."""
        return sum(
            layer.input_grad_macs + layer.layer.spec.groups * layer.weight_grad_macs
            for layer in self.layers
            if layer.layer.spec.kind in CONV_KINDS
        )


def _counted_layers(count: AnalyticCount) -> list[LayerCount]:
    return [layer for layer in count.layers if layer.macs]


def _refuse_products(count: AnalyticCount) -> None:
    products = [layer.spec.name for layer in count.layers if layer.spec.op is not None]
    if products:
        config = count.config
        raise MnprofError(
            f"--pass training: model {config.family} at {config.id} multiplies tensors ({products[0]}: matmul or "
            "attention), whose backward mnprof does not count yet; accepted: models of conv and linear layers"
        )


def _traced_flags(model: nn.Module, config: ModelConfig) -> list[tuple[bool, bool]]:
    """(weights train, input needs a gradient) of each conv and linear call of a user's model, in call order: one
    forward of a copy on the meta device with autograd on (no arithmetic, no memory)."""
    flags: list[tuple[bool, bool]] = []

    def seen(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        flags.append((module.weight.requires_grad, bool(inputs[0].requires_grad)))

    with user_code(f"model {config.family} at {config.id}: its backward cannot be traced:"):
        meta = copy.deepcopy(model).to("meta")
        for module in meta.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.register_forward_hook(seen)
        with torch.enable_grad():
            meta.eval()(torch.zeros(1, 3, config.resolution, config.resolution, device="meta"))
    return flags


def training_count(forward: AnalyticCount, model: nn.Module | None = None) -> TrainingCount:
    """The training step's analytic count from ``forward``'s layers: for a layer plan, every weight trains and only
    the first layer reads the image; for a user's traced layers, ``model`` says which weights train and which
    inputs need a gradient."""
    _refuse_products(forward)
    layers = _counted_layers(forward)
    if forward.planned:
        flags = [(True, index > 0) for index in range(len(layers))]
    else:
        if model is None:
            raise ValueError("a traced count's training step needs its model")
        flags = _traced_flags(model, forward.config)
        if len(flags) != len(layers):
            raise MnprofError(
                f"--pass training: model {forward.config.family} at {forward.config.id} ran {len(flags)} conv and "
                f"linear calls with autograd on and {len(layers)} without; accepted: a model whose forward runs the "
                "same layers in both"
            )
    return TrainingCount(
        forward,
        tuple(LayerGradients(layer, weight, needs) for layer, (weight, needs) in zip(layers, flags, strict=True)),
    )


# In-place activations whose backward needs their input: eager autograd keeps a copy of it (ReLU's backward needs
# only its result, which it keeps as it is).
_COPIED_INPUT = (Activation.RELU6, Activation.HARDSWISH, Activation.HARDSIGMOID)


def saved_activation_elements(forward: AnalyticCount) -> int | None:
    """Elements eager PyTorch's autograd keeps for the backward of one image's forward pass, from the layer plan
    (None for a user's traced layers: what they keep depends on code the trace does not see).

    Model (mnprof's networks; each tensor counted once, weights and BatchNorm's statistics not included): a
    convolution and a linear layer keep their input (for the weight gradient); BatchNorm keeps its input; an in-place
    ReLU keeps its result, an in-place ReLU6, hard-swish or hard-sigmoid a copy of its input; the global average pool
    (a mean) and the residual add keep nothing; a squeeze-and-excite gate keeps both its factors.
    """
    if not forward.planned:
        return None
    kept: dict[int, int] = {}  # tensor -> elements, for the tensors kept
    sizes: list[int] = []

    def tensor(elements: int) -> int:
        sizes.append(elements)
        return len(sizes) - 1

    def keep(which: int) -> None:
        kept[which] = sizes[which]

    current = tensor(forward.layers[0].in_elements)  # the image
    gated = current
    for layer in forward.layers:
        spec = layer.spec
        if spec.kind in (*CONV_KINDS, LayerKind.FC):
            keep(current)
            current = tensor(layer.out_elements)
            if spec.batch_norm:
                keep(current)
                current = tensor(layer.out_elements)
            if spec.activation is Activation.RELU:
                keep(current)
            elif spec.activation in _COPIED_INPUT:
                keep(tensor(layer.out_elements))
        elif spec.kind is LayerKind.SCALE:
            keep(gated)
            keep(current)
            current = tensor(layer.out_elements)
        elif spec.kind in (LayerKind.POOL, LayerKind.ADD):
            gated = current  # a squeeze-and-excite's pool: the tensor its gate multiplies
            current = tensor(layer.out_elements)
        else:
            raise ValueError(f"no rule for what a {spec.kind} layer keeps for its backward")
    return sum(kept.values())


def saved_for_backward(model: nn.Module, inputs: torch.Tensor) -> tuple[int, int]:
    """Measured: the bytes and the number of distinct tensors autograd keeps for the backward of ``model(inputs)``,
    seen as it saves them (``torch.autograd.graph.saved_tensors_hooks``); tensors sharing storage counted once, the
    model's parameters and buffers not counted."""
    own = {tensor.untyped_storage().data_ptr() for tensor in (*model.parameters(), *model.buffers())}
    kept: dict[int, int] = {}

    def pack(saved: torch.Tensor) -> torch.Tensor:
        storage = saved.untyped_storage()
        if storage.data_ptr() not in own:
            kept[storage.data_ptr()] = storage.nbytes()
        return saved

    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda saved: saved):
            model(inputs)
    finally:
        model.train(was_training)
    return sum(kept.values()), len(kept)


def count_torch_training(model: nn.Module, inputs: torch.Tensor) -> TorchCount:
    """One training step under FlopCounterMode: the forward, then the backward of its output's sum (a loss whose
    own backward costs no MACs). The model runs in eval mode (BatchNorm's and dropout's training behaviour moves
    no conv or linear MAC) and its gradients are cleared after."""
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as mode:
            output = model(inputs)
            if not isinstance(output, torch.Tensor):
                raise MnprofError(
                    f"--pass training needs a model whose forward returns one tensor; got {type(output).__name__}"
                )
            output.backward(torch.ones_like(output))
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    by_operator = {str(operator): int(flops) for operator, flops in mode.get_flop_counts().get("Global", {}).items()}
    odd = {operator: flops for operator, flops in by_operator.items() if flops % 2}
    if odd:
        raise ValueError(f"FlopCounterMode counted an odd number of FLOPs, not whole MACs: {odd}")
    return TorchCount(int(mode.get_total_flops()), by_operator)


def _training_rules(training: TrainingCount) -> dict[str, Rule]:
    """FlopCounterMode's conventions for a training step: the forward's operators as in :data:`TORCH_RULES`, and
    the backward's from ``training``."""
    forward_mm = TORCH_RULES["aten.mm"].predict
    return {
        **TORCH_RULES,
        "aten.convolution_backward": Rule(
            "convolutions' backward: input gradients, and weight gradients charged groups times (its formula does "
            "not divide by groups: a depthwise layer's is charged once per channel); 2 FLOPs per MAC",
            lambda _: training.flop_counter_conv_backward,
            True,
        ),
        "aten.mm": Rule(
            "linear layers' backward (their input and weight gradients, one mm each) and any forward matmul with a "
            "2-D operand: 2 FLOPs per MAC",
            lambda count: forward_mm(count) + training.backward_of([LayerKind.FC]),
            True,
        ),
    }


def reconcile_training(training: TrainingCount, torch_count: TorchCount) -> Reconciliation:
    """FlopCounterMode's training step operator by operator against the analytic training count."""
    return reconcile(
        "torch",
        torch_count.total,
        torch_count.by_operator,
        training.forward,
        _training_rules(training),
        analytic_macs=training.macs,
    )
