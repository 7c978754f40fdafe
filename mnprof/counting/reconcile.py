"""Explain, operator by operator, why fvcore's and thop's totals differ from the analytic count.

Each counter's documented convention predicts, from the analytic layer plan alone, what it
should charge for every operator it reports. A reconciliation lists each operator with what
the counter counted and what its convention predicts; whatever is left over is *unexplained*
and is shown, never dropped. For MobileNetV1 the conv and linear lines equal the analytic
count exactly and the remainder is BatchNorm and pooling.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mnprof.counting.analytic import AnalyticCount
from mnprof.model.arch import Activation, LayerKind

__all__ = ["FVCORE_RULES", "FVCORE_SKIPPED", "THOP_RULES", "TORCH_RULES", "Attribution", "Reconciliation", "reconcile"]


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
    "linear": Rule("FC MACs, bias not counted", _fc, True),
    "batch_norm": Rule("eval-mode BatchNorm: 1 per element, 2 with affine", lambda c: 2 * c.batch_norm_elements, False),
    "adaptive_avg_pool2d": Rule("1 add per input element", lambda c: c.pool_in_elements, False),
}
THOP_RULES: dict[str, Rule] = {
    "Conv2d": Rule("convolution MACs, bias not counted", _conv, True),
    "Linear": Rule("FC MACs, bias not counted", _fc, True),
    "BatchNorm2d": Rule("2 per element, doubled with affine", lambda c: 4 * c.batch_norm_elements, False),
    "AdaptiveAvgPool2d": Rule(
        "1 add per input element + 1 divide per output element",
        lambda c: c.pool_in_elements + c.pool_out_elements,
        False,
    ),
    "ReLU": Rule("not counted", lambda c: 0, False),
    "ReLU6": Rule("not counted", lambda c: 0, False),
    "Identity": Rule("no arithmetic (MobileNetV2's first block has no expansion)", lambda c: 0, False),
}


TORCH_RULES: dict[str, Rule] = {
    "aten.convolution": Rule("convolution: 2 FLOPs per MAC, bias not counted (shown as FLOPs / 2)", _conv, True),
    "aten.addmm": Rule("FC: 2 FLOPs per MAC, bias not counted (shown as FLOPs / 2)", _fc, True),
}


def _activations(activation: Activation) -> Callable[[AnalyticCount], int]:
    return lambda count: sum(
        1 for layer in count.layers if layer.spec.batch_norm and layer.spec.activation is activation
    )


def _adds(count: AnalyticCount) -> int:
    return sum(1 for layer in count.layers if layer.spec.kind is LayerKind.ADD)


# Operators fvcore has no handle for and skips (it reports them as unsupported, with their calls): what each
# is in the plan, and how many calls the plan predicts. They cost 0 MACs in every convention here.
FVCORE_SKIPPED: dict[str, tuple[str, Callable[[AnalyticCount], int]]] = {
    "aten::hardtanh_": ("ReLU6 (MobileNetV2's activation)", _activations(Activation.RELU6)),
    "aten::add": ("the residual adds (tensor + tensor)", _adds),
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
) -> Reconciliation:
    """Attribute ``total`` (a counter's total with its per-operator ``breakdown``) against ``analytic``.

    ``skipped``: operators the counter reports it could not count, with their calls (fvcore's unsupported
    ops); each is listed by name with what the plan predicts (:data:`FVCORE_SKIPPED`), never dropped.
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
        what, predict = FVCORE_SKIPPED.get(operator, ("an operator mnprof has no rule for", lambda c: -1))
        predicted = predict(analytic)
        verdict = "as the plan predicts" if predicted == calls else f"the plan predicts {predicted}"
        rule = f"skipped, not counted: {what}; {calls} calls, {verdict}"
        attributions.append(Attribution(operator, 0, 0, rule, False))
    # Work done outside any reported operator would leave total != sum(breakdown): keep it visible.
    outside = total - sum(breakdown.values())
    if outside:
        attributions.append(Attribution("(not in the breakdown)", outside, 0, "no known rule", False))
    return Reconciliation(counter, total, analytic.macs, tuple(attributions))
