"""A counter for any model, from shapes alone: every conv and linear layer's MACs by the closed-form
formulas of :mod:`mnprof.counting.analytic`, applied to shapes captured on PyTorch's meta device.

On the meta device tensors have shapes and no data: a forward pass there does no arithmetic and holds no
memory for activations or weights, so this counts a model in a fraction of the time a tracing counter
takes. It is the "analytic" count for a family without a layer plan; for MobileNetV1 and V2 it must
equal the plan's count exactly, layer by layer, so each is a witness for the other.

Convention: the paper's Mult-Adds. One MAC is one multiply-accumulate of a ``nn.Conv2d`` or
``nn.Linear`` (grouped convolutions by ``in_channels / groups``); bias additions, BatchNorm,
activations, pooling and residual adds cost 0. Params are the conv and linear layers' weights and
biases (the paper's convention); ``params_all`` is every parameter of the model.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from mnprof.counting.analytic import AnalyticCount, LayerCount, analytic_count, linear_macs
from mnprof.errors import MnprofError, user_code
from mnprof.model.arch import Activation, LayerKind, LayerSpec
from mnprof.model.config import ModelConfig
from mnprof.model.networks import build_model

__all__ = ["ShapeCount", "ShapeLayer", "count_config_shapes", "count_shapes", "plan_count", "traced_count"]


@dataclass(frozen=True)
class ShapeLayer:
    """One conv or linear module as the meta-device pass saw it."""

    path: str  # the module's path in the model (``blocks.3.dw.conv``)
    kind: str  # "conv" or "linear"
    in_shape: tuple[int, ...]  # of one image (batch dimension dropped)
    out_shape: tuple[int, ...]
    macs: int  # for one image
    params: int  # the module's weights and bias


@dataclass(frozen=True)
class ShapeCount:
    """The shape counter's result: per layer, in call order, and totals for one image."""

    layers: tuple[ShapeLayer, ...]
    params_all: int  # every parameter of the model (numel), BatchNorm included

    @cached_property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @cached_property
    def params(self) -> int:
        """Conv and linear weights and biases (the paper's convention)."""
        return sum(layer.params for layer in self.layers)

    def by_module(self) -> dict[str, int]:
        """MACs per module path (a module called twice counts twice)."""
        totals: dict[str, int] = {}
        for layer in self.layers:
            totals[layer.path] = totals.get(layer.path, 0) + layer.macs
        return totals


def _own_params(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters(recurse=False))


def _conv(module: nn.Conv2d, inputs: torch.Tensor, output: torch.Tensor) -> tuple[int, int]:
    """``Ho * Wo * Fh * Fw * (N / groups) * M`` (the seed's formula, any kernel shape)."""
    _, out_channels, out_height, out_width = output.shape
    kernel_height, kernel_width = module.kernel_size
    per_position = kernel_height * kernel_width * (module.in_channels // module.groups) * out_channels
    return out_height * out_width * per_position, _own_params(module)


def _linear(module: nn.Linear, inputs: torch.Tensor, output: torch.Tensor) -> tuple[int, int]:
    """``N * M`` at every position the layer is applied to (one for a classifier)."""
    rows = math.prod(inputs.shape[1:-1])
    return rows * linear_macs(module.in_features, module.out_features), _own_params(module)


SHAPE_KEEPING = (nn.modules.batchnorm._BatchNorm, nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.Identity)


def _passthrough(x: torch.Tensor) -> torch.Tensor:
    return x


RULES: dict[type[nn.Module], Callable[[Any, torch.Tensor, torch.Tensor], tuple[int, int]]] = {
    nn.Conv2d: _conv,
    nn.Linear: _linear,
}


def count_shapes(model: nn.Module, resolution: int, *, channels: int = 3, owned: bool = False) -> ShapeCount:
    """Count ``model`` on one ``channels`` x ``resolution`` x ``resolution`` image from shapes alone.

    The pass runs on a copy of the model on the meta device (no arithmetic, no memory), whose BatchNorm and
    activation modules pass their input through. ``owned``: ``model`` is already on the meta device and
    the caller does not need it afterwards, so it is used as it is (no copy).
    """
    meta = model if owned else copy.deepcopy(model).to("meta")
    layers: list[ShapeLayer] = []
    names = {module: name for name, module in meta.named_modules()}
    handles = []

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        rule = next(rule for kind, rule in RULES.items() if isinstance(module, kind))
        macs, params = rule(module, inputs[0], output)
        kind = "conv" if isinstance(module, nn.Conv2d) else "linear"
        layers.append(
            ShapeLayer(names[module], kind, tuple(inputs[0].shape[1:]), tuple(output.shape[1:]), macs, params)
        )

    for module in meta.modules():
        if isinstance(module, tuple(RULES)):
            handles.append(module.register_forward_hook(hook))
        elif isinstance(module, SHAPE_KEEPING):
            # These keep the shape, and their meta kernels are slow Python decompositions (BatchNorm was 50 of
            # 58 ms at 1.0-224): on the meta copy they pass their input through.
            module.forward = _passthrough  # type: ignore[method-assign]
    try:
        with torch.no_grad():
            meta.eval()(torch.empty(1, channels, resolution, resolution, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return ShapeCount(tuple(layers), sum(parameter.numel() for parameter in meta.parameters()))


def count_config_shapes(configs: Iterable[ModelConfig]) -> list[ShapeCount]:
    """Built-in configurations counted by shapes; each width's model is built once, on the meta device."""
    models: dict[tuple[Any, ...], nn.Module] = {}
    counts = []
    for config in configs:
        if not config.builtin:  # a user's factory may not build on the meta device: built, then copied there
            with user_code(f"model {config.family} at {config.id}: forward failed:"):
                counts.append(count_shapes(build_model(config), config.resolution))
            continue
        if config.width_key not in models:
            with torch.device("meta"):
                models[config.width_key] = build_model(config)
        counts.append(count_shapes(models[config.width_key], config.resolution, owned=True))
    return counts


# ------------------------------------------------------------------------------ a user family's layers

ACTIVATION_MODULES = ((nn.ReLU6, Activation.RELU6), (nn.ReLU, Activation.RELU))
ADDS = {torch.add, torch.Tensor.add, torch.Tensor.add_, torch.Tensor.__add__, torch.Tensor.__iadd__}


class _TensorAdds(TorchFunctionMode):
    """Counts tensor + tensor adds of equal shapes (residual adds, which are no module) on the meta pass."""

    def __init__(self, on_add: Callable[[tuple[int, ...]], None]) -> None:
        super().__init__()
        self.on_add = on_add

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        tensors = len(args) >= 2 and all(isinstance(a, torch.Tensor) for a in args[:2])
        if func in ADDS and tensors and args[0].shape == args[1].shape and args[0].dim() >= 2:
            self.on_add(tuple(args[0].shape[1:]))  # per image: (N, C[, H, W]) adds only
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
    the meta device (no arithmetic, no memory), with the closed-form MACs of :func:`count_shapes`.

    Also traced, for the reconciliation to predict the other counters from: the BatchNorm module that takes a
    layer's output, the ReLU or ReLU6 module after it, and tensor + tensor adds of equal shapes (residual adds,
    listed as ``add.<i>`` layers). An operator no module stands for (``F.relu``, ``x.mean``) is not seen here;
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


def _trace(meta: nn.Module, config: ModelConfig, device: str) -> AnalyticCount:
    """:func:`traced_count`'s pass on ``meta``, a copy of the user's model on ``device`` (changed here)."""
    names = {module: name for name, module in meta.named_modules()}
    counts: list[LayerCount] = []
    last: dict[str, Any] = {}  # the latest conv or linear output, and its index in counts
    seen: dict[str, int] = {}
    normalised: set[nn.Module] = set()

    def _layer_name(path: str) -> str:
        """The module's path; its second call (a shared module) is ``path#2``, and so on."""
        seen[path] = seen.get(path, 0) + 1
        return path if seen[path] == 1 else f"{path}#{seen[path]}"

    def layer(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        x = inputs[0]
        if isinstance(module, nn.AdaptiveAvgPool2d):
            spec = _spec(_layer_name(names[module]), names[module], module, LayerKind.POOL, x, output)
            counts.append(LayerCount(spec, 0, 0, 0, 0, (x[0].numel(), output[0].numel())))
            return
        rule = _conv if isinstance(module, nn.Conv2d) else _linear
        macs, params = rule(module, x, output)
        name = _layer_name(names[module])
        spec = _spec(name, names[module], module, _kind(module), x, output)
        if name != names[module]:  # a shared module's weights count once, at its first call
            params = 0
        bias = spec.out_channels if spec.bias and name == names[module] else 0
        counts.append(LayerCount(spec, macs, params, bias, 0, (x[0].numel(), output[0].numel())))
        last.update(output=output, index=len(counts) - 1)

    def follower(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if last.get("output") is not inputs[0]:  # not applied to a conv's or linear's output
            return
        index = last["index"]
        current = counts[index]
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            spec = dataclasses.replace(current.spec, batch_norm=True)
            first = module not in normalised  # a shared BatchNorm's parameters count once
            normalised.add(module)
            counts[index] = dataclasses.replace(current, spec=spec, batch_norm_channels=spec.out_channels * first)
        else:
            activation = next(a for kind, a in ACTIVATION_MODULES if isinstance(module, kind))
            counts[index] = dataclasses.replace(current, spec=dataclasses.replace(current.spec, activation=activation))

    for module in meta.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear, nn.AdaptiveAvgPool2d)):
            module.register_forward_hook(layer)
        elif isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.ReLU, nn.ReLU6)):
            module.register_forward_hook(follower)
        if isinstance(module, SHAPE_KEEPING):
            module.forward = _passthrough  # type: ignore[method-assign]

    def add(shape: tuple[int, ...]) -> None:
        elements, size = math.prod(shape), shape[1] if len(shape) == 3 else 1
        number = sum(1 for count in counts if count.spec.kind is LayerKind.ADD)
        spec = LayerSpec(f"add.{number}", LayerKind.ADD, shape[0], shape[0], 1, 1, 1, size, size, False, False,
                         Activation.NONE)  # fmt: skip
        counts.append(LayerCount(spec, 0, 0, 0, 0, (elements, elements)))

    image = torch.zeros(1, 3, config.resolution, config.resolution, device=device)
    with user_code(f"model {config.family} at {config.id}: forward failed:"), torch.no_grad(), _TensorAdds(add):
        meta.eval()(image)
    if not any(count.macs for count in counts):
        raise MnprofError(
            f"model {config.family} at {config.id}: no nn.Conv2d or nn.Linear module ran; accepted: a model built "
            "from torch.nn convolution and linear modules"
        )
    return AnalyticCount(config, tuple(counts), planned=False)


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
