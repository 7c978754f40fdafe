"""A user family's layers traced: its conv, linear, pool, product and attention calls in the plan's vocabulary,
so that a model without a layer plan gets the same analytic count (and reconciliation) as mnprof's own.

The pass runs on a copy on the meta device where it can, on the CPU where the forward reads values; the MACs
are the closed forms of :mod:`mnprof.counting.shapes` and :mod:`mnprof.counting.products`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from mnprof.counting.analytic import AnalyticCount, LayerCount, analytic_count
from mnprof.counting.products import Product, ProductsMode, attention_products, product_names
from mnprof.counting.shapes import SHAPE_KEEPING, conv_rule, linear_rule, passthrough
from mnprof.errors import MnprofError
from mnprof.model.arch import Activation, LayerKind, LayerSpec
from mnprof.model.config import ModelConfig
from mnprof.model.networks import build_model
from mnprof.user_code import user_code

__all__ = ["plan_count", "traced_count"]


ACTIVATION_MODULES = (
    (nn.ReLU6, Activation.RELU6),
    (nn.ReLU, Activation.RELU),
    (nn.Hardswish, Activation.HARDSWISH),
    (nn.Hardsigmoid, Activation.HARDSIGMOID),
)
ADDS = {torch.add, torch.Tensor.add, torch.Tensor.add_, torch.Tensor.__add__, torch.Tensor.__iadd__}
MULS = {torch.mul, torch.Tensor.mul, torch.Tensor.mul_, torch.Tensor.__mul__, torch.Tensor.__rmul__}


def _gated(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor | None:
    """The gated tensor of a squeeze-and-excite gate ``(N, C, H, W) x (N, C, 1, 1)`` (either order), else None."""
    for x, gate in ((a, b), (b, a)):
        if x.dim() == 4 and gate.dim() == 4 and gate.shape[:2] == x.shape[:2] and tuple(gate.shape[2:]) == (1, 1):
            return x if tuple(x.shape[2:]) != (1, 1) else None
    return None


class _TensorAdds(TorchFunctionMode):
    """Counts tensor + tensor adds of equal shapes (residual adds, which are no module) and squeeze-and-excite
    gates (a feature map times a per-channel vector, no module either) on the meta pass."""

    def __init__(
        self, on_add: Callable[[tuple[int, ...]], None], on_gate: Callable[[tuple[int, ...]], None] | None = None
    ) -> None:
        super().__init__()
        self.on_add = on_add
        self.on_gate = on_gate

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        tensors = len(args) >= 2 and all(isinstance(a, torch.Tensor) for a in args[:2])
        if func in ADDS and tensors and args[0].shape == args[1].shape and args[0].dim() >= 2:
            self.on_add(tuple(args[0].shape[1:]))  # per image: (N, C[, H, W]) adds only
        if func in MULS and tensors and self.on_gate is not None:
            gated = _gated(args[0], args[1])
            if gated is not None:
                self.on_gate(tuple(gated.shape[1:]))
        return func(*args, **(kwargs or {}))


def _kind(module: nn.Module) -> LayerKind:
    if isinstance(module, nn.Linear):
        return LayerKind.FC
    if module.groups > 1 and module.groups == module.in_channels:
        return LayerKind.DEPTHWISE
    if tuple(module.kernel_size) == (1, 1) and module.groups == 1:
        return LayerKind.POINTWISE
    return LayerKind.CONV


def _spec(name: str, path: str, module: nn.Module, kind: LayerKind, x: torch.Tensor, y: torch.Tensor) -> LayerSpec:
    """A traced layer in the plan's vocabulary; sizes are heights (the counts use the traced elements)."""
    in_size = x.shape[2] if x.dim() == 4 else 1
    out_size = y.shape[2] if y.dim() == 4 else 1
    if isinstance(module, nn.Conv2d):
        channels = (module.in_channels, module.out_channels)
        kernel, stride, groups, bias = module.kernel_size[0], module.stride[0], module.groups, module.bias is not None
    elif isinstance(module, nn.Linear):
        channels = (module.in_features, module.out_features)
        kernel, stride, groups, bias = 1, 1, 1, module.bias is not None
    else:  # a global pool
        channels = (x.shape[1], y.shape[1])
        kernel, stride, groups, bias = in_size, 1, 1, False
    widths = (
        x.shape[3] if x.dim() == 4 else 1,
        y.shape[3] if y.dim() == 4 else 1,
        module.kernel_size[1] if isinstance(module, nn.Conv2d) else (x.shape[3] if x.dim() == 4 else kernel),
        module.stride[1] if isinstance(module, nn.Conv2d) else stride,
    )
    heights = (in_size, out_size, kernel, stride)
    in_width, out_width, kernel_width, stride_width = (
        width if width != height else None for width, height in zip(widths, heights, strict=True)
    )
    return LayerSpec(
        name, kind, *channels, kernel, stride, groups, in_size, out_size, bias, False, Activation.NONE, path,
        in_width, out_width, kernel_width, stride_width,
    )  # fmt: skip


def traced_count(model: nn.Module, config: ModelConfig) -> AnalyticCount:
    """A user family's "analytic" count: its conv, linear and global-pool modules, in call order, from one pass on
    the meta device (no arithmetic, no memory), with the closed-form MACs of
    :func:`mnprof.counting.shapes.count_shapes`.

    Also traced, for the reconciliation to predict the other counters from: the BatchNorm module that takes a
    layer's output, the ReLU, ReLU6, Hardswish or Hardsigmoid module after it, tensor + tensor adds of equal shapes
    (residual adds, listed as ``add.<i>`` layers) and squeeze-and-excite gates, a feature map times a per-channel
    vector (``scale.<i>``). An operator no module stands for (``F.relu``, ``x.mean``) is not seen here;
    the counters that charge for it then show it as unexplained, never hidden.
    """
    who = f"model {config.family} at {config.id}"  # as a warning about torch's settings it changed names it
    try:
        with user_code(f"model {config.family}: its model cannot be moved to the meta device:", who=who):
            meta = copy.deepcopy(model).to("meta")
        return _trace(meta, config, "meta")
    except MnprofError as error:
        if "meta" not in str(error):
            raise
    # A forward that reads values (``if x.sum() > 0``, numpy) cannot run on the meta device: the same trace on a
    # CPU copy, with arithmetic (zeros in, one image), still counts from shapes only.
    with user_code(f"model {config.family}: its model cannot be copied to be counted (copy.deepcopy):", who=who):
        cpu = copy.deepcopy(model).to("cpu")
    return _trace(cpu, config, "cpu")


class _Tracer:
    """:func:`_trace`'s hooks: each appends what it saw to ``counts``, in call order."""

    def __init__(self, model: nn.Module) -> None:
        self.names = {module: name for name, module in model.named_modules()}
        self.counts: list[LayerCount] = []
        self.last: dict[str, Any] = {}  # the latest conv or linear output, and its index in counts
        self.seen: dict[str, int] = {}
        self.normalised: set[nn.Module] = set()
        self.calls: dict[str, int] = {}

    def hook(self, model: nn.Module) -> None:
        """Hooks on ``model``'s layers, their followers and attention modules; shape-keeping modules pass through."""
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear, nn.AdaptiveAvgPool2d)):
                module.register_forward_hook(self.layer)
            elif isinstance(module, (nn.modules.batchnorm._BatchNorm, *(kind for kind, _ in ACTIVATION_MODULES))):
                module.register_forward_hook(self.follower)
            if isinstance(module, SHAPE_KEEPING):
                module.forward = passthrough  # type: ignore[method-assign]
        for module in model.modules():
            if isinstance(module, nn.MultiheadAttention):
                module.register_forward_hook(self.attention, with_kwargs=True)

    def _layer_name(self, path: str) -> str:
        """The module's path; its second call (a shared module) is ``path#2``, and so on."""
        self.seen[path] = self.seen.get(path, 0) + 1
        return path if self.seen[path] == 1 else f"{path}#{self.seen[path]}"

    def _number(self, kind: LayerKind) -> int:
        return sum(1 for count in self.counts if count.spec.kind is kind)

    def layer(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        x, path = inputs[0], self.names[module]
        if isinstance(module, nn.AdaptiveAvgPool2d):
            spec = _spec(self._layer_name(path), path, module, LayerKind.POOL, x, output)
            self.counts.append(LayerCount(spec, 0, 0, 0, 0, (x[0].numel(), output[0].numel())))
            return
        rule = conv_rule if isinstance(module, nn.Conv2d) else linear_rule
        macs, params = rule(module, x, output)
        name = self._layer_name(path)
        spec = _spec(name, path, module, _kind(module), x, output)
        if name != path:  # a shared module's weights count once, at its first call
            params = 0
        bias = spec.out_channels if spec.bias and name == path else 0
        self.counts.append(LayerCount(spec, macs, params, bias, 0, (x[0].numel(), output[0].numel())))
        self.last.update(output=output, index=len(self.counts) - 1)

    def follower(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if self.last.get("output") is not inputs[0]:  # not applied to a conv's or linear's output
            return
        index = self.last["index"]
        current = self.counts[index]
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            spec = dataclasses.replace(current.spec, batch_norm=True)
            first = module not in self.normalised  # a shared BatchNorm's parameters count once
            self.normalised.add(module)
            self.counts[index] = dataclasses.replace(current, spec=spec, batch_norm_channels=spec.out_channels * first)
        else:
            activation = next(a for kind, a in ACTIVATION_MODULES if isinstance(module, kind))
            spec = dataclasses.replace(current.spec, activation=activation)
            self.counts[index] = dataclasses.replace(current, spec=spec)

    def add(self, shape: tuple[int, ...]) -> None:
        elements, size = math.prod(shape), shape[1] if len(shape) == 3 else 1
        spec = LayerSpec(f"add.{self._number(LayerKind.ADD)}", LayerKind.ADD, shape[0], shape[0], 1, 1, 1, size, size,
                         False, False, Activation.NONE)  # fmt: skip
        self.counts.append(LayerCount(spec, 0, 0, 0, 0, (elements, elements)))

    def products(self, found: list[Product], path: str = "") -> None:
        for name, product in zip(product_names(found, path, self.calls), found, strict=True):
            projection = product.part in ("in_proj", "out_proj")
            kind = LayerKind.FC if projection else LayerKind.MATMUL
            spec = LayerSpec(
                name, kind, product.k, product.n, 1, 1, product.batch, product.m, product.m, product.bias, False,
                Activation.NONE, path or None, op=product.op, aten=product.aten,
            )  # fmt: skip
            bias = product.n if product.bias and product.part == "out_proj" else 0
            elements = (product.batch * product.m * product.k, product.batch * product.m * product.n)
            self.counts.append(LayerCount(spec, product.macs, product.params, bias, 0, elements))

    def softmax(self, elements: int) -> None:
        number = self._number(LayerKind.SOFTMAX)
        spec = LayerSpec(f"softmax.{number}", LayerKind.SOFTMAX, 1, 1, 1, 1, 1, 1, 1, False, False, Activation.NONE)
        self.counts.append(LayerCount(spec, 0, 0, 0, 0, (elements, elements)))

    def attention(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        self.products(attention_products(module, args, kwargs), self.names[module])

    def gate(self, shape: tuple[int, ...]) -> None:
        channels, size = shape[0], shape[1]
        number = self._number(LayerKind.SCALE)
        spec = LayerSpec(f"scale.{number}", LayerKind.SCALE, channels, channels, 1, 1, channels, size, size, False,
                         False, Activation.NONE, None, shape[2] if shape[2] != size else None)  # fmt: skip
        elements = math.prod(shape)
        self.counts.append(LayerCount(spec, 0, 0, 0, 0, (elements, elements)))


def _trace(meta: nn.Module, config: ModelConfig, device: str) -> AnalyticCount:
    """:func:`traced_count`'s pass on ``meta``, a copy of the user's model on ``device`` (changed here)."""
    tracer = _Tracer(meta)
    tracer.hook(meta)
    image = torch.zeros(1, 3, config.resolution, config.resolution, device=device)
    traced = _TensorAdds(tracer.add, tracer.gate)
    with (
        user_code(f"model {config.family} at {config.id}: forward failed:"),
        torch.no_grad(),
        traced,
        ProductsMode(tracer.products, tracer.softmax),
    ):
        meta.eval()(image)
    if not any(count.macs for count in tracer.counts):
        raise MnprofError(
            f"model {config.family} at {config.id}: no nn.Conv2d or nn.Linear module ran; accepted: a model built "
            "from torch.nn convolution and linear modules (and products of tensors: matmul, attention)"
        )
    return AnalyticCount(config, tuple(tracer.counts), planned=False)


@functools.lru_cache(maxsize=256)
def _traced(config: ModelConfig, target: str) -> AnalyticCount:  # target: a family's name may change factories
    return traced_count(build_model(config), config)


def plan_count(config: ModelConfig, model: nn.Module | None = None) -> AnalyticCount:
    """The analytic count of ``config``: from the layer plan for mnprof's own families, from the traced layers of
    ``model`` (built from its factory if not given, and then kept for the process) for a user family."""
    if config.builtin:
        return analytic_count(config)
    with user_code(f"model {config.family} at {config.id}: counting failed:"):  # its named_modules, __hash__ ...
        if model is not None:
            return traced_count(model, config)
        return _traced(config, getattr(config.family, "target", ""))
