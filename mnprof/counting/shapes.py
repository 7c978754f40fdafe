"""A counter for any model, from shapes alone: every conv and linear layer's MACs by the closed-form
formulas of :mod:`mnprof.counting.analytic`, applied to shapes captured on PyTorch's meta device.

On the meta device tensors have shapes and no data: a forward pass there does no arithmetic and holds no
memory for activations or weights, so this counts a model in a fraction of the time a tracing counter
takes. It is the "analytic" count for a family without a layer plan; for MobileNetV1, V2 and V3 it must
equal the plan's count exactly, layer by layer, so each is a witness for the other.

Convention: the paper's Mult-Adds. One MAC is one multiply-accumulate of a ``nn.Conv2d`` or
``nn.Linear`` (grouped convolutions by ``in_channels / groups``), of a product of two tensors (``matmul``,
``bmm``, ``baddbmm``, a two-operand ``einsum`` that contracts, ``scaled_dot_product_attention``'s Q K^T and
weighted sum of V, every head and image) and of an ``nn.MultiheadAttention`` (its projections and both
products); bias additions, BatchNorm, activations, softmax, pooling and residual adds cost 0. Params are the
conv and linear layers' weights and biases (an attention module's too: the paper's convention); ``params_all`` is
every parameter of the model.
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
from mnprof.errors import MnprofError
from mnprof.model.arch import Activation, LayerKind, LayerSpec
from mnprof.model.config import ModelConfig
from mnprof.model.networks import build_model
from mnprof.user_code import user_code

__all__ = ["ShapeCount", "ShapeLayer", "count_config_shapes", "count_shapes", "plan_count", "traced_count"]


@dataclass(frozen=True)
class ShapeLayer:
    """One conv or linear module as the meta-device pass saw it."""

    path: str  # the module's path in the model (``blocks.3.dw.conv``); a product's ``matmul.<i>``, ``sdpa.<i>``, ...
    # "conv" or "linear"; "matmul" for a product of two tensors, "attention" for a part of an nn.MultiheadAttention
    # (``<path>.in_proj``, ``.scores``, ``.values``, ``.out_proj``)
    kind: str
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


SHAPE_KEEPING = (
    nn.modules.batchnorm._BatchNorm,
    nn.ReLU,
    nn.ReLU6,
    nn.Hardtanh,
    nn.Identity,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Dropout,
)


def _passthrough(x: torch.Tensor) -> torch.Tensor:
    return x


RULES: dict[type[nn.Module], Callable[[Any, torch.Tensor, torch.Tensor], tuple[int, int]]] = {
    nn.Conv2d: _conv,
    nn.Linear: _linear,
}


# ------------------------------------------------------------------------------ products of two activations


@dataclass(frozen=True)
class Product:
    """One product the forward runs between two tensors, or one part of an attention module, in closed form.

    ``batch`` independent ``(m x k) @ (k x n)`` products: ``batch * m * k * n`` MACs for the traced batch of one
    image. ``op`` is what ran (``matmul``, ``bmm``, ``baddbmm``, ``einsum:<equation>``, ``sdpa``, ``mha``), ``part``
    which product of an attention it is (``scores``: Q K^T, ``values``: the weighted sum of V; ``in_proj`` and
    ``out_proj``: an ``nn.MultiheadAttention``'s projections), ``aten`` the operator PyTorch dispatches it to
    (``mm``, ``bmm``, ``baddbmm``, ``addmm``; empty where FlopCounterMode has no formula for it).
    """

    op: str
    part: str
    batch: int
    m: int
    k: int
    n: int
    aten: str
    params: int = 0
    bias: bool = False

    @property
    def macs(self) -> int:
        return self.batch * self.m * self.k * self.n


def _rows(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def _matmul(a: torch.Tensor, b: torch.Tensor, op: str) -> list[Product]:
    """``a @ b`` with broadcast batch dimensions; a 1-D operand is a row (``a``) or a column (``b``)."""
    m, k = (1, a.shape[0]) if a.dim() == 1 else (a.shape[-2], a.shape[-1])
    n = 1 if b.dim() == 1 else b.shape[-1]
    batch = _rows(tuple(torch.broadcast_shapes(a.shape[:-2], b.shape[:-2]))) if min(a.dim(), b.dim()) > 1 else 1
    if a.dim() == 1 and b.dim() > 2:
        batch = _rows(tuple(b.shape[:-2]))
    if b.dim() == 1 and a.dim() > 2:
        batch = _rows(tuple(a.shape[:-2]))
    # torch.matmul folds a product with a 2-D operand into one mm, and runs the rest as bmm
    smaller = min(a.dim(), b.dim())
    matmul_aten = "bmm" if smaller > 2 else ("mm" if smaller == 2 else "")
    aten = matmul_aten if op == "matmul" else op  # bmm and baddbmm run as themselves
    return [Product(op, "", batch, m, k, n, aten)]


def _einsum(equation: str, operands: list[Any]) -> list[Product]:
    """A two-operand einsum that contracts at least one label (no ellipsis, no label twice in one operand): batch
    labels (in both operands and the output), rows (first only), columns (second only), the contracted labels."""
    equation = equation.replace(" ", "")
    lhs, arrow, out = equation.partition("->")
    terms = lhs.split(",")
    if len(operands) != 2 or not arrow or "." in equation or len(terms) != 2:
        return []
    first, second = terms
    if any(len(set(term)) != len(term) for term in terms):
        return []
    sizes = {
        label: size for term, t in zip(terms, operands, strict=True) for label, size in zip(term, t.shape, strict=True)
    }
    contracted = [label for label in sizes if label in first and label in second and label not in out]
    if not contracted or any(label not in out and label not in contracted for label in sizes):
        return []
    batch = [label for label in sizes if label in first and label in second and label in out]
    rows = [label for label in first if label not in second]
    columns = [label for label in second if label not in first]
    # fvcore remaps the labels in order of first appearance before matching its two special forms
    order = {label: chr(97 + i) for i, label in enumerate(dict.fromkeys(c for c in equation if c.isalpha()))}
    normal = "".join(order.get(c, c) for c in equation)
    product = [math.prod(sizes[label] for label in group) for group in (batch, rows, contracted, columns)]
    return [Product(f"einsum:{normal}", "", *product, aten="bmm")]


def _sdpa(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Product]:
    """``scaled_dot_product_attention(q, k, v)``: Q K^T over every head and image, then the weights times V."""
    q, k, v = (*args, *(kwargs[name] for name in ("query", "key", "value")[len(args) :]))[:3]
    batch, length, width, keys = _rows(tuple(q.shape[:-2])), q.shape[-2], q.shape[-1], k.shape[-2]
    # on the CPU PyTorch runs its fused kernel (aten._scaled_dot_product_flash_attention_for_cpu), for which
    # FlopCounterMode has no formula
    return [
        Product("sdpa", "scores", batch, length, width, keys, ""),
        Product("sdpa", "values", batch, length, keys, v.shape[-1], ""),
    ]


PRODUCTS: dict[Any, str] = {
    torch.matmul: "matmul",
    torch.Tensor.matmul: "matmul",
    torch.Tensor.__matmul__: "matmul",
    torch.bmm: "bmm",
    torch.Tensor.bmm: "bmm",
    torch.baddbmm: "baddbmm",
    torch.Tensor.baddbmm: "baddbmm",
    torch.einsum: "einsum",
    nn.functional.scaled_dot_product_attention: "sdpa",
}
SOFTMAXES = {torch.softmax, torch.Tensor.softmax, nn.functional.softmax}


def products_of(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Product] | None:
    """The products one call runs (None: not a product mnprof counts; [] a product it cannot count in closed
    form, such as an einsum that is no matrix product)."""
    op = PRODUCTS.get(func)
    if op is None:
        return None
    if op == "einsum":
        operands = list(args[1:])
        if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
            operands = list(operands[0])
        return _einsum(args[0], operands)
    if op == "sdpa":
        return _sdpa(args, kwargs)
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    a, b = tensors[-2:] if op == "baddbmm" else tensors[:2]
    return _matmul(a, b, op)


def attention_products(module: nn.MultiheadAttention, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Product]:
    """An ``nn.MultiheadAttention`` call in closed form: the Q, K and V projections, Q K^T and the weighted sum of V
    over every head (``num_heads`` products of ``embed_dim / num_heads`` each), and the output projection.

    Its forward uses its projection weights functionally (its ``out_proj`` module never runs). The slow path, which
    fvcore and FlopCounterMode see as linear/addmm and bmm operators, is what runs with ``batch_first=False``;
    ``batch_first=True`` self-attention in inference runs PyTorch's fused kernel, which neither counts (``aten``
    empty).
    """
    names = ("query", "key", "value")
    query, key, value = (*args, *(kwargs[name] for name in names[len(args) :]))[:3]
    layout = 0 if module.batch_first or query.dim() == 2 else 1  # the batch dimension, where there is one

    def length(t: torch.Tensor) -> int:
        return t.shape[-2] if module.batch_first or t.dim() == 2 else t.shape[0]

    batch = 1 if query.dim() == 2 else query.shape[layout]
    width, heads = module.embed_dim, module.num_heads
    targets, sources = length(query), length(key)
    keys = sources + (module.bias_k is not None) + bool(module.add_zero_attn)
    fused = module.batch_first and query.dim() == 3 and query is key and key is value and not module.training
    op = "mha:self" if query is key and key is value else "mha"  # self-attention: one packed input projection
    in_params = sum(
        p.numel()
        for name, p in module.named_parameters(recurse=False)
        if name.startswith(("in_proj", "q_proj", "k_proj", "v_proj", "bias_"))
    )
    out_params = sum(p.numel() for p in module.out_proj.parameters())
    projected = targets * width + sources * (module.kdim + module.vdim)  # rows x input width of the three projections
    return [
        Product(op, "in_proj", batch, 1, projected, width, "" if fused else "addmm", in_params,
                module.in_proj_bias is not None),
        Product(op, "scores", batch * heads, targets, width // heads, keys, "" if fused else "bmm"),
        Product(op, "values", batch * heads, targets, keys, width // heads, "" if fused else "bmm"),
        Product(op, "out_proj", batch, targets, width, width, "" if fused else "addmm", out_params,
                module.out_proj.bias is not None),
    ]  # fmt: skip


def product_names(found: list[Product], path: str, calls: dict[str, int]) -> list[str]:
    """Layer names of one call's products: ``<path>.<part>`` for an attention module's, else ``<op>.<i>`` (the
    i-th call of that operator), with ``.scores`` / ``.values`` for the two of a ``scaled_dot_product_attention``."""
    if path:
        return [f"{path}.{product.part}" for product in found]
    op = found[0].op.split(":")[0]
    index = calls[op] = calls.get(op, -1) + 1
    return [f"{op}.{index}" + (f".{product.part}" if product.part else "") for product in found]


class _Products(TorchFunctionMode):
    """Reports every product of two tensors (and every softmax) the forward runs outside ``nn.MultiheadAttention``,
    whose calls :func:`attention_products` counts as a whole."""

    def __init__(self, on_products: Callable[[list[Product]], None], on_softmax: Callable[[int], None]) -> None:
        super().__init__()
        self.on_products = on_products
        self.on_softmax = on_softmax

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        found = products_of(func, args, kwargs)
        if found:
            self.on_products(found)
        elif func in SOFTMAXES and args and isinstance(args[0], torch.Tensor):
            self.on_softmax(args[0].numel())  # the traced batch is one image
        return func(*args, **kwargs)


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

    calls: dict[str, int] = {}

    def products(found: list[Product], path: str = "") -> None:
        for name, product in zip(product_names(found, path, calls), found, strict=True):
            kind = "attention" if path else "matmul"
            shape_in, shape_out = (product.batch, product.m, product.k), (product.batch, product.m, product.n)
            layers.append(ShapeLayer(name, kind, shape_in, shape_out, product.macs, product.params))

    def attention(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        products(attention_products(module, args, kwargs), names[module])

    for module in meta.modules():
        if isinstance(module, nn.MultiheadAttention):
            handles.append(module.register_forward_hook(attention, with_kwargs=True))
        elif isinstance(module, tuple(RULES)):
            handles.append(module.register_forward_hook(hook))
        elif isinstance(module, SHAPE_KEEPING):
            # These keep the shape, and their meta kernels are slow Python decompositions (BatchNorm was 50 of
            # 58 ms at 1.0-224): on the meta copy they pass their input through.
            module.forward = _passthrough  # type: ignore[method-assign]
    try:
        with torch.no_grad(), _Products(products, lambda elements: None):
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
    the meta device (no arithmetic, no memory), with the closed-form MACs of :func:`count_shapes`.

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
        elif isinstance(module, (nn.modules.batchnorm._BatchNorm, *(kind for kind, _ in ACTIVATION_MODULES))):
            module.register_forward_hook(follower)
        if isinstance(module, SHAPE_KEEPING):
            module.forward = _passthrough  # type: ignore[method-assign]

    def add(shape: tuple[int, ...]) -> None:
        elements, size = math.prod(shape), shape[1] if len(shape) == 3 else 1
        number = sum(1 for count in counts if count.spec.kind is LayerKind.ADD)
        spec = LayerSpec(f"add.{number}", LayerKind.ADD, shape[0], shape[0], 1, 1, 1, size, size, False, False,
                         Activation.NONE)  # fmt: skip
        counts.append(LayerCount(spec, 0, 0, 0, 0, (elements, elements)))

    calls: dict[str, int] = {}

    def products(found: list[Product], path: str = "") -> None:
        for name, product in zip(product_names(found, path, calls), found, strict=True):
            projection = product.part in ("in_proj", "out_proj")
            kind = LayerKind.FC if projection else LayerKind.MATMUL
            spec = LayerSpec(
                name, kind, product.k, product.n, 1, 1, product.batch, product.m, product.m, product.bias, False,
                Activation.NONE, path or None, op=product.op, aten=product.aten,
            )  # fmt: skip
            bias = product.n if product.bias and product.part == "out_proj" else 0
            elements = (product.batch * product.m * product.k, product.batch * product.m * product.n)
            counts.append(LayerCount(spec, product.macs, product.params, bias, 0, elements))

    def softmax(elements: int) -> None:
        number = sum(1 for count in counts if count.spec.kind is LayerKind.SOFTMAX)
        spec = LayerSpec(f"softmax.{number}", LayerKind.SOFTMAX, 1, 1, 1, 1, 1, 1, 1, False, False, Activation.NONE)
        counts.append(LayerCount(spec, 0, 0, 0, 0, (elements, elements)))

    def attention(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        products(attention_products(module, args, kwargs), names[module])

    for module in meta.modules():
        if isinstance(module, nn.MultiheadAttention):
            module.register_forward_hook(attention, with_kwargs=True)

    def gate(shape: tuple[int, ...]) -> None:
        channels, size = shape[0], shape[1]
        number = sum(1 for count in counts if count.spec.kind is LayerKind.SCALE)
        spec = LayerSpec(f"scale.{number}", LayerKind.SCALE, channels, channels, 1, 1, channels, size, size, False,
                         False, Activation.NONE, None, shape[2] if shape[2] != size else None)  # fmt: skip
        elements = math.prod(shape)
        counts.append(LayerCount(spec, 0, 0, 0, 0, (elements, elements)))

    image = torch.zeros(1, 3, config.resolution, config.resolution, device=device)
    traced = _TensorAdds(add, gate)
    with (
        user_code(f"model {config.family} at {config.id}: forward failed:"),
        torch.no_grad(),
        traced,
        _Products(products, softmax),
    ):
        meta.eval()(image)
    if not any(count.macs for count in counts):
        raise MnprofError(
            f"model {config.family} at {config.id}: no nn.Conv2d or nn.Linear module ran; accepted: a model built "
            "from torch.nn convolution and linear modules (and products of tensors: matmul, attention)"
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
