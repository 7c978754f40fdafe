"""Explain, operator by operator, why fvcore's and thop's totals differ from the analytic count.

Each counter's documented convention predicts, from the analytic layer plan alone, what it
should charge for every operator it reports. A reconciliation lists each operator with what
the counter counted and what its convention predicts; whatever is left over is *unexplained*
and is shown, never dropped. For MobileNetV1 the conv and linear lines equal the analytic
count exactly and the remainder is BatchNorm and pooling; MobileNetV3 adds its squeeze-and-excite pools (counted
by fvcore and thop like the global pool), and its hard-swish, hard-sigmoid and gate multiplies, which no counter
charges (fvcore lists them as skipped).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mnprof.counting.analytic import AnalyticCount
from mnprof.model.arch import Activation, LayerKind, LayerSpec

__all__ = [
    "FVCORE_RULES",
    "FVCORE_SKIPPED",
    "THOP_RULES",
    "TORCH_RULES",
    "TORCH_SKIPPED",
    "Attribution",
    "Reconciliation",
    "reconcile",
]


@dataclass(frozen=True)
class Rule:
    """A counter's convention for one operator: in words, and as a prediction from the plan."""

    description: str
    predict: Callable[[AnalyticCount], int]
    in_analytic: bool  # True when the paper's Mult-Adds include this operator


def _conv(count: AnalyticCount) -> int:
    return count.conv_macs


def _fc(count: AnalyticCount) -> int:
    return count.fc_macs


FVCORE_RULES: dict[str, Rule] = {
    "conv": Rule("convolution MACs, bias not counted", _conv, True),
    "linear": Rule(
        "FC MACs, bias not counted (nn.MultiheadAttention's projections too)", lambda c: _fvcore_linear(c), True
    ),
    "matmul": Rule(
        "torch.matmul: rows x inner x columns per product (batch from the first operand)",
        lambda c: _products(c, lambda s: _op(s) == "matmul"),
        True,
    ),
    "bmm": Rule(
        "torch.bmm, and nn.MultiheadAttention's Q K^T and weighted sum of V: their MACs",
        lambda c: _products(
            c, lambda s: _op(s) == "bmm" or (_op(s) == "mha" and s.kind is LayerKind.MATMUL and s.aten)
        ),
        True,
    ),
    "einsum": Rule(
        "two-operand einsum: its MACs (numpy's einsum_path count, four significant digits, for other equations "
        "than batched matmul's)",
        lambda c: sum(_fvcore_einsum(x.spec, x.macs) for x in c.layers if _op(x.spec) == "einsum"),
        True,
    ),
    "batch_norm": Rule("eval-mode BatchNorm: 1 per element, 2 with affine", lambda c: 2 * c.batch_norm_elements, False),
    "adaptive_avg_pool2d": Rule("1 add per input element", lambda c: c.pool_in_elements, False),
}
THOP_RULES: dict[str, Rule] = {
    "Conv2d": Rule("convolution MACs, bias not counted", _conv, True),
    "Linear": Rule(
        "FC MACs, bias not counted",
        lambda c: sum(x.macs for x in c.layers if x.spec.kind is LayerKind.FC and _op(x.spec) != "mha"),
        True,
    ),
    "BatchNorm2d": Rule("2 per element, doubled with affine", lambda c: 4 * c.batch_norm_elements, False),
    "AdaptiveAvgPool2d": Rule(
        "1 add per input element + 1 divide per output element",
        lambda c: c.pool_in_elements + c.pool_out_elements,
        False,
    ),
    "ReLU": Rule("not counted", lambda c: 0, False),
    "ReLU6": Rule("not counted", lambda c: 0, False),
    "Identity": Rule("no arithmetic (MobileNetV2's and V3's first block has no expansion)", lambda c: 0, False),
    # MobileNetV3: thop has no rule for these module types and charges them 0 (its squeeze-and-excite gate and the
    # residual adds run in a module's forward, where thop sees no arithmetic either)
    "Hardswish": Rule("not counted (thop has no rule for it)", lambda c: 0, False),
    "Hardsigmoid": Rule("not counted (thop has no rule for it)", lambda c: 0, False),
    "Dropout": Rule("no arithmetic at inference", lambda c: 0, False),
    # Products of two tensors: thop counts torch.matmul, bmm, a two-operand einsum and scaled_dot_product_attention
    # run outside a module with a rule of its own (baddbmm not), and nn.MultiheadAttention by its own rule
    "functional": Rule(
        "matmul, bmm, einsum, scaled_dot_product_attention: MACs (baddbmm not counted)",
        lambda c: _products(c, lambda s: _op(s) in ("matmul", "bmm", "einsum", "sdpa")),
        True,
    ),
    "MultiheadAttention": Rule(
        "projections, Q K^T and weighted sum of V, + softmax: 3 x keys - 1 per row of every head",
        lambda c: _thop_attention(c),
        True,
    ),
    "NonDynamicallyQuantizableLinear": Rule(
        "0: nn.MultiheadAttention's out_proj, whose weights its attention uses (never called)", lambda c: 0, False
    ),
}


TORCH_RULES: dict[str, Rule] = {
    "aten.convolution": Rule("convolution: 2 FLOPs per MAC, bias not counted (shown as FLOPs / 2)", _conv, True),
    "aten.addmm": Rule("FC: 2 FLOPs per MAC, bias not counted (shown as FLOPs / 2)", lambda c: _fvcore_linear(c), True),
    "aten.mm": Rule(
        "matmul with a 2-D operand: 2 FLOPs per MAC (shown as FLOPs / 2)",
        lambda c: _products(c, lambda s: s.aten == "mm"),
        True,
    ),
    "aten.bmm": Rule(
        "batched matmul, bmm, einsum, nn.MultiheadAttention's products: 2 FLOPs per MAC (shown as FLOPs / 2)",
        lambda c: _products(c, lambda s: s.aten == "bmm"),
        True,
    ),
    "aten.baddbmm": Rule(
        "baddbmm: 2 FLOPs per MAC of its product, the add not counted (shown as FLOPs / 2)",
        lambda c: _products(c, lambda s: s.aten == "baddbmm"),
        True,
    ),
}
# Operators FlopCounterMode runs without a formula (it lists none of them): what each is, the calls predicted.
TORCH_SKIPPED: dict[str, tuple[str, Callable[[AnalyticCount], int]]] = {
    "aten._scaled_dot_product_flash_attention_for_cpu": (
        "scaled_dot_product_attention's CPU kernel (no formula: its Q K^T and weighted sum of V are not counted)",
        lambda c: sum(1 for x in c.layers if _op(x.spec) == "sdpa" and x.spec.name.endswith(".scores")),
    ),
    "aten._native_multi_head_attention": (
        "nn.MultiheadAttention's fused inference path (no formula: nothing of it is counted)",
        lambda c: _attention_calls(c, fused=True),
    ),
}


def _activations(activation: Activation) -> Callable[[AnalyticCount], int]:
    return lambda count: sum(
        1 for layer in count.layers if layer.spec.batch_norm and layer.spec.activation is activation
    )


def _adds(count: AnalyticCount) -> int:
    return sum(1 for layer in count.layers if layer.spec.kind is LayerKind.ADD)


def _calls(activation: Activation) -> Callable[[AnalyticCount], int]:
    """Layers followed by ``activation``, with or without BatchNorm (MobileNetV3's ``fc1`` and SE convs have none)."""
    return lambda count: sum(1 for layer in count.layers if layer.spec.activation is activation)


def _gates(count: AnalyticCount) -> int:
    return sum(1 for layer in count.layers if layer.spec.kind is LayerKind.SCALE)


# ---------------------------------------------------------------- products of two tensors (a user family's, traced)


def _products(count: AnalyticCount, keep: Callable[[LayerSpec], bool]) -> int:
    return sum(layer.macs for layer in count.layers if layer.spec.op is not None and keep(layer.spec))


def _op(spec: LayerSpec) -> str:
    return (spec.op or "").split(":")[0]


def _attention_calls(count: AnalyticCount, fused: bool) -> int:
    """nn.MultiheadAttention calls: on its fused inference path (``fused``) or the slow path the counters see."""
    return sum(
        1
        for layer in count.layers
        if _op(layer.spec) == "mha" and layer.spec.name.endswith(".scores") and (layer.spec.aten == "") == fused
    )


def _fvcore_einsum(spec: LayerSpec, macs: int) -> int:
    """fvcore's einsum: exact for its two bmm-like equations, else numpy's einsum_path "optimized FLOP count"
    (2 per MAC, printed with four significant digits) halved and floored."""
    equation = (spec.op or "").partition(":")[2]
    if equation.split("->")[0] in ("abc,abd", "abc,adc"):
        return macs
    return int(float(f"{2 * macs:.3e}") // 2)


def _fvcore_linear(count: AnalyticCount) -> int:
    """FC layers as fvcore sees them: an nn.MultiheadAttention's projections too, except on its fused path."""
    return sum(
        layer.macs
        for layer in count.layers
        if layer.spec.kind is LayerKind.FC and not (_op(layer.spec) == "mha" and layer.spec.aten == "")
    )


def _thop_attention(count: AnalyticCount) -> int:
    """thop's nn.MultiheadAttention rule: projections, Q K^T and the weighted sum of V, and its softmax: 3 x keys - 1
    per row of every head (exp, sum, divide)."""
    total = 0
    for layer in count.layers:
        if _op(layer.spec) == "mha":
            total += layer.macs
            if layer.spec.name.endswith(".scores"):
                total += layer.spec.groups * layer.spec.in_size * (3 * layer.spec.out_channels - 1)
    return total


def _softmaxes(count: AnalyticCount) -> int:
    return sum(1 for layer in count.layers if layer.spec.kind is LayerKind.SOFTMAX)


# Operators fvcore has no handle for and skips (it reports them as unsupported, with their calls): what each
# is in the plan, and how many calls the plan predicts. They cost 0 MACs in every convention here.
FVCORE_SKIPPED: dict[str, tuple[str, Callable[[AnalyticCount], int]]] = {
    "aten::hardtanh_": ("ReLU6 (MobileNetV2's activation)", _activations(Activation.RELU6)),
    "aten::add": ("the residual adds (tensor + tensor)", _adds),
    "aten::hardswish_": ("hard-swish (MobileNetV3's activation, fc1's too)", _calls(Activation.HARDSWISH)),
    "aten::hardsigmoid_": ("hard-sigmoid (MobileNetV3's squeeze-and-excite gate)", _calls(Activation.HARDSIGMOID)),
    "aten::mul": (
        "the squeeze-and-excite gates (the tensor times its excitation); 5 per nn.MultiheadAttention (its traced "
        "forward's scaling and shape arithmetic)",
        lambda c: _gates(c) + 5 * _attention_calls(c, fused=False),
    ),
    "aten::unflatten": (
        "1 per nn.MultiheadAttention self-attention (its packed input projection split in three)",
        lambda c: sum(
            1 for x in c.layers if x.spec.op == "mha:self" and x.spec.name.endswith(".in_proj") and x.spec.aten != ""
        ),
    ),
    "aten::div": (
        "1 per nn.MultiheadAttention (its traced forward's shape arithmetic)",
        lambda c: _attention_calls(c, fused=False),
    ),
    "aten::softmax": (
        "softmax (attention weights), nn.MultiheadAttention's too",
        lambda c: _softmaxes(c) + _attention_calls(c, fused=False),
    ),
    "aten::baddbmm": (
        "baddbmm (fvcore has no handle: its product is not counted)",
        lambda c: sum(1 for x in c.layers if _op(x.spec) == "baddbmm"),
    ),
    "aten::scaled_dot_product_attention": (
        "scaled_dot_product_attention (fvcore has no handle: its Q K^T and weighted sum of V are not counted)",
        TORCH_SKIPPED["aten._scaled_dot_product_flash_attention_for_cpu"][1],
    ),
    "aten::_native_multi_head_attention": (
        "nn.MultiheadAttention's fused inference path (fvcore has no handle: nothing of it is counted)",
        lambda c: _attention_calls(c, fused=True),
    ),
}


@dataclass(frozen=True)
class Attribution:
    """One operator as one counter saw it."""

    operator: str
    counted: int
    expected: int  # what the counter's convention predicts from the analytic plan
    rule: str  # the convention in words; "no known rule" when mnprof has none for this operator
    in_analytic: bool

    @property
    def unexplained(self) -> int:
        return self.counted - self.expected


@dataclass(frozen=True)
class Reconciliation:
    """A counter's total, split into what the analytic count covers, the explained extras, and the rest."""

    counter: str
    total: int
    analytic_macs: int
    attributions: tuple[Attribution, ...]

    @property
    def extras(self) -> tuple[Attribution, ...]:
        """Operators the counter charges for that the paper's Mult-Adds leave out."""
        return tuple(a for a in self.attributions if not a.in_analytic and a.counted)

    @property
    def in_analytic_counted(self) -> int:
        """The counter's own count of the operators that the analytic count covers (conv + linear)."""
        return sum(a.counted for a in self.attributions if a.in_analytic)

    @property
    def unexplained(self) -> int:
        """The counter's total minus everything its conventions predict; 0 when fully explained."""
        return self.total - sum(a.expected for a in self.attributions)

    def explain(self) -> str:
        """One line such as ``fvcore = analytic + batch_norm 10,085,376 + adaptive_avg_pool2d 50,176``."""
        text = f"{self.counter} = analytic"
        for extra in self.extras:
            text += f" + {extra.operator} {extra.counted:,}"
        if self.in_analytic_counted != self.analytic_macs:
            text += f" (conv+linear differ from analytic by {self.in_analytic_counted - self.analytic_macs:+,})"
        if self.unexplained:
            text += f" + unexplained {self.unexplained:+,}"
        return text


def reconcile(
    counter: str,
    total: int,
    breakdown: Mapping[str, int],
    analytic: AnalyticCount,
    rules: Mapping[str, Rule],
    skipped: Mapping[str, int] | None = None,
    skipped_rules: Mapping[str, tuple[str, Callable[[AnalyticCount], int]]] | None = None,
    analytic_macs: int | None = None,
) -> Reconciliation:
    """Attribute ``total`` (a counter's total with its per-operator ``breakdown``) against ``analytic``.

    ``skipped``: operators the counter reports it could not count, with their calls (fvcore's unsupported
    ops, FlopCounterMode's operators without a formula); each is listed by name with what the plan predicts
    (``skipped_rules``: :data:`FVCORE_SKIPPED` unless given, :data:`TORCH_SKIPPED` for FlopCounterMode), never
    dropped. ``analytic_macs``: the analytic total the counter's is set beside (default: ``analytic``'s forward MACs;
    a training step's, :mod:`mnprof.counting.training`).
    """
    attributions = []
    for operator in dict.fromkeys([*breakdown, *rules]):
        rule = rules.get(operator)
        counted = int(breakdown.get(operator, 0))
        if rule is None:
            attributions.append(Attribution(operator, counted, 0, "no known rule", False))
            continue
        expected = rule.predict(analytic)
        if counted or expected:
            attributions.append(Attribution(operator, counted, expected, rule.description, rule.in_analytic))
    for operator, calls in (skipped or {}).items():
        known = FVCORE_SKIPPED if skipped_rules is None else skipped_rules
        what, predict = known.get(operator, ("an operator mnprof has no rule for", lambda c: -1))
        predicted = predict(analytic)
        verdict = "as the plan predicts" if predicted == calls else f"the plan predicts {predicted}"
        rule = f"skipped, not counted: {what}; {calls} calls, {verdict}"
        attributions.append(Attribution(operator, 0, 0, rule, False))
    # Work done outside any reported operator would leave total != sum(breakdown): keep it visible.
    outside = total - sum(breakdown.values())
    if outside:
        attributions.append(Attribution("(not in the breakdown)", outside, 0, "no known rule", False))
    analytic_total = analytic.macs if analytic_macs is None else analytic_macs
    return Reconciliation(counter, total, analytic_total, tuple(attributions))
