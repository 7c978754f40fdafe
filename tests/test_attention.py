"""Attention in the traced count of a user family: matmul, bmm, baddbmm, einsum, scaled_dot_product_attention and
nn.MultiheadAttention counted in closed form from shapes, and fvcore, thop and FlopCounterMode reconciled with
them operator by operator (tests/attention_family.py)."""

from __future__ import annotations

import pytest
import torch
from cli_run import ROOT

from mnprof.counting.count import count
from mnprof.counting.products import products_of
from mnprof.counting.shapes import count_shapes
from mnprof.model import families
from mnprof.model.arch import LayerKind
from mnprof.model.config import ModelConfig

ATTENTION = "attn=tests.attention_family:attention"
FUSED = "fused=tests.attention_family:fused"


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # factories are imported relative to the working directory


@pytest.fixture(scope="module")
def report():
    import os

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return count(ModelConfig(1.0, 32, family=families.resolve(ATTENTION)))
    finally:
        os.chdir(cwd)


# By hand, one 32x32 image at alpha 1.0: 16 channels, the 4x4 stem's 8x8 output is L = 64 tokens, 4 heads of 4.
L, C, H = 64, 16, 4
PRODUCT = L * C * L  # one L x C @ C x L (or L x L @ L x C) product: 65,536
BY_LAYER = {
    "stem.0": 8 * 8 * 48 * C,
    "q": L * C * C, "k": L * C * C, "v": L * C * C,
    "matmul.0": PRODUCT,  # q @ k^T
    "matmul.1": PRODUCT,  # weights @ v
    "bmm.0": PRODUCT,
    "baddbmm.0": PRODUCT,
    "einsum.0": PRODUCT,
    "sdpa.0.scores": H * L * (C // H) * L,  # every head: L x 4 @ 4 x L
    "sdpa.0.values": H * L * L * (C // H),
    "mha.in_proj": 3 * L * C * C,
    "mha.scores": H * L * (C // H) * L,
    "mha.values": H * L * L * (C // H),
    "mha.out_proj": L * C * C,
    "fc": C * 1000,
}  # fmt: skip


def test_every_product_is_counted_exactly_from_shapes(report):
    analytic = report.analytic
    assert {layer.spec.name: layer.macs for layer in analytic.layers if layer.macs} == BY_LAYER
    assert analytic.macs == sum(BY_LAYER.values()) == 769_664
    assert report.shapes.macs == analytic.macs  # the shape counter, the same products
    # stem 768 + BatchNorm 32 + Q, K, V 3 x 272 + the attention's in_proj 816 and out_proj 272 + classifier 17,000
    assert analytic.params() == report.params_model == 19_704
    kinds = [layer.spec.kind for layer in analytic.layers]
    assert kinds.count(LayerKind.MATMUL) == 9 and kinds.count(LayerKind.SOFTMAX) == 1


def test_every_counter_is_explained_operator_by_operator(report):
    for reconciliation in report.reconciliations:
        assert reconciliation.unexplained == 0, reconciliation.explain()
        for attribution in reconciliation.attributions:
            assert attribution.counted == attribution.expected, attribution
            assert "no known rule" not in attribution.rule and ", the plan predicts" not in attribution.rule


def test_each_counter_treats_each_attention_operator_as_predicted(report):
    fvcore = {a.operator: a for a in report.fvcore_reconciliation.attributions}
    # fvcore: matmul and bmm exact; einsum from numpy's einsum_path, four significant digits (131,072 FLOPs is
    # printed 1.311e+05); baddbmm and scaled_dot_product_attention skipped (no handle)
    assert fvcore["matmul"].counted == 2 * PRODUCT and fvcore["bmm"].counted == 3 * PRODUCT  # bmm + the attention's
    assert fvcore["einsum"].counted == 131_100 // 2
    assert fvcore["linear"].counted == 3 * L * C * C + 3 * L * C * C + L * C * C + C * 1000
    assert report.fvcore.unsupported_ops == {"aten::softmax": 2, "aten::add": 5, "aten::baddbmm": 1,
                                             "aten::scaled_dot_product_attention": 1, "aten::div": 1,
                                             "aten::unflatten": 1, "aten::mul": 5}  # fmt: skip
    # thop: functional matmul, bmm, einsum, sdpa (not baddbmm); nn.MultiheadAttention by its own rule, with softmax
    thop = report.thop.by_type
    assert thop["functional"] == 6 * PRODUCT
    assert thop["MultiheadAttention"] == 3 * L * C * C + 2 * PRODUCT + L * C * C + H * L * (3 * L - 1)
    assert thop["Linear"] == 3 * L * C * C + C * 1000 and thop["NonDynamicallyQuantizableLinear"] == 0
    # FlopCounterMode: products as aten.bmm and aten.baddbmm; the CPU's sdpa kernel has no formula
    assert report.torch.by_operator == {
        "aten.convolution": BY_LAYER["stem.0"],
        "aten.addmm": fvcore["linear"].counted,
        "aten.bmm": 6 * PRODUCT,
        "aten.baddbmm": PRODUCT,
    }
    assert report.torch.uncounted == {"aten._scaled_dot_product_flash_attention_for_cpu": 1}
    assert report.torch.total == report.analytic.macs - 2 * PRODUCT


def test_the_fused_attention_path_is_predicted_too():
    report = count(ModelConfig(1.0, 32, family=families.resolve(FUSED)))
    tokens, width = 64, 8  # 8x8 patches of 4x4, 8 channels, 2 heads
    attention = 3 * tokens * width * width + 2 * tokens * width * tokens + tokens * width * width
    assert report.analytic.macs == 8 * 8 * 48 * width + attention + width * 1000
    assert report.fvcore.unsupported_ops == {"aten::_native_multi_head_attention": 1}
    assert report.torch.uncounted == {"aten._native_multi_head_attention": 1}
    assert report.thop.by_type["MultiheadAttention"] == attention + 2 * tokens * (3 * tokens - 1)
    for reconciliation in report.reconciliations:
        assert reconciliation.unexplained == 0
        for attribution in reconciliation.attributions:
            assert attribution.counted == attribution.expected and "no known rule" not in attribution.rule


@pytest.mark.parametrize(
    ("func", "args", "macs"),
    [
        (torch.matmul, (torch.zeros(2, 3, 5, 7), torch.zeros(7, 4)), 2 * 3 * 5 * 7 * 4),  # broadcast batch, folded
        (torch.matmul, (torch.zeros(5, 7), torch.zeros(2, 7, 4)), 2 * 5 * 7 * 4),
        (torch.matmul, (torch.zeros(7), torch.zeros(7, 4)), 7 * 4),
        (torch.einsum, ("bhqd,bhkd->bhqk", torch.zeros(2, 3, 5, 4), torch.zeros(2, 3, 6, 4)), 2 * 3 * 5 * 4 * 6),
        (torch.einsum, ("ij,jk->ik", [torch.zeros(3, 4), torch.zeros(4, 5)]), 3 * 4 * 5),
    ],
)
def test_products_in_closed_form(func, args, macs):
    assert sum(product.macs for product in products_of(func, args, {})) == macs


@pytest.mark.parametrize(
    "args", [("ii->i", torch.zeros(3, 3)), ("i,j->ij", torch.zeros(3), torch.zeros(4)), ("...ij,...jk", 1, 2)]
)
def test_an_einsum_that_is_no_matrix_product_is_not_counted(args):
    operands = [a if isinstance(a, torch.Tensor) else torch.zeros(2, 2) for a in args[1:]]
    assert products_of(torch.einsum, (args[0], *operands), {}) == []


def test_the_shape_counter_counts_attention_in_a_model_it_did_not_build():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 4, 4), torch.nn.Flatten(2))

    class Tokens(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body, self.mha = model, torch.nn.MultiheadAttention(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            t = self.body(x).permute(2, 0, 1)  # (L, N, E)
            return self.mha(t, t, t)[0]

    counted = count_shapes(Tokens(), 16)
    assert [(layer.path, layer.macs) for layer in counted.layers] == [
        ("body.0", 16 * 48 * 8), ("mha.in_proj", 3 * 16 * 8 * 8), ("mha.scores", 16 * 8 * 16),
        ("mha.values", 16 * 16 * 8), ("mha.out_proj", 16 * 8 * 8),
    ]  # fmt: skip
