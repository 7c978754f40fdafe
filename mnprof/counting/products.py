"""Products of two tensors in closed form: ``matmul``, ``bmm``, ``baddbmm``, a two-operand ``einsum`` that
contracts, ``scaled_dot_product_attention`` and ``nn.MultiheadAttention``, each as ``batch`` matrix products.

Kept apart from the counters that use them (:mod:`mnprof.counting.shapes` and :mod:`mnprof.counting.traced`):
what one call multiplies is the same whichever counter records it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

__all__ = ["Product", "ProductsMode", "attention_products", "product_names", "products_of"]


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


class ProductsMode(TorchFunctionMode):
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
