"""Exact integers, derived by hand from the paper's Table 1 in the test, not by the code under test."""

from __future__ import annotations

import pytest

from mnprof.counting.analytic import (
    ParamConvention,
    analytic_count,
    conv_macs,
    depthwise_separable_macs,
)
from mnprof.model.arch import scale_channels
from mnprof.model.config import ModelConfig, Rounding, Variant


def hand_count(widths: list[int], sizes: list[int], classes: int = 1000) -> tuple[int, int, int]:
    """MACs, paper params and BatchNorm channels, written out from Table 1.

    ``widths``: stem channels, then the 13 blocks' output channels. ``sizes``: the feature map
    side after the stem and after each stride-2 stage (112, 56, 28, 14, 7 at 224).
    """
    s1, s2, s3, s4, s5 = sizes
    c = widths
    # (output side, input channels, output channels) of each depthwise separable block; Table 1 order.
    blocks = [
        (s1, c[0], c[1]),
        (s2, c[1], c[2]),
        (s2, c[2], c[3]),
        (s3, c[3], c[4]),
        (s3, c[4], c[5]),
        (s4, c[5], c[6]),
        (s4, c[6], c[7]),
        (s4, c[7], c[8]),
        (s4, c[8], c[9]),
        (s4, c[9], c[10]),
        (s4, c[10], c[11]),
        (s5, c[11], c[12]),
        (s5, c[12], c[13]),
    ]
    macs = s1 * s1 * 3 * 3 * 3 * c[0]  # standard conv Ho*Wo*F^2*N*M
    params = 3 * 3 * 3 * c[0]
    bn = c[0]
    for side, n, m in blocks:
        macs += side * side * n * (3 * 3 + m)  # depthwise separable Ho*Wo*N*(F^2+M)
        params += 3 * 3 * n + n * m
        bn += n + m
    macs += c[13] * classes
    params += c[13] * classes + classes
    return macs, params, bn


def test_one_point_oh_224_by_hand():
    widths = [32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
    macs, params, bn = hand_count(widths, [112, 56, 28, 14, 7])
    count = analytic_count(ModelConfig(1.0, 224))
    assert count.macs == macs == 568_740_352
    assert count.params(ParamConvention.PAPER) == params == 4_210_088
    assert count.params(ParamConvention.PYTORCH) == params + 2 * bn == 4_231_976
    # TF-slim: 1001 classes, beta + moving mean + moving variance, no gamma.
    assert count.params(ParamConvention.TFSLIM) == params + 1024 + 1 + 3 * bn == 4_243_945


def test_quarter_width_128_by_hand():
    widths = [8, 16, 32, 32, 64, 64, 128, 128, 128, 128, 128, 128, 256, 256]
    macs, params, bn = hand_count(widths, [64, 32, 16, 8, 4])
    count = analytic_count(ModelConfig(0.25, 128))
    assert count.macs == macs == 13_570_048
    assert count.params(ParamConvention.PYTORCH) == params + 2 * bn == 470_072


def test_odd_resolution_rounds_feature_maps_up():
    # 'same' padding with stride 2 gives ceil(side / 2): 97 -> 49 -> 25 -> 13 -> 7 -> 4.
    widths = [32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
    macs, _, _ = hand_count(widths, [49, 25, 13, 7, 4])
    assert analytic_count(ModelConfig(1.0, 97)).macs == macs


def test_num_classes_changes_only_the_classifier():
    base = analytic_count(ModelConfig(1.0, 224))
    ten = analytic_count(ModelConfig(1.0, 224, num_classes=10))
    assert base.macs - ten.macs == 1024 * 990
    assert base.params(ParamConvention.PAPER) - ten.params(ParamConvention.PAPER) == 1024 * 990 + 990


def test_table_3_layer_example_from_the_seed_formulas():
    # A 14x14x512 input, 3x3 kernel, 512 outputs: the paper's Table 3 (462 M vs 52.3 M Mult-Adds).
    standard = conv_macs(14, 14, 3, 512, 512)
    separable = depthwise_separable_macs(14, 14, 3, 512, 512)
    assert standard == 14 * 14 * 9 * 512 * 512 == 462_422_016
    assert separable == 14 * 14 * 512 * 9 + 14 * 14 * 512 * 512 == 52_283_392
    assert separable / standard == pytest.approx(1 / 512 + 1 / 9)
    assert conv_macs(14, 14, 3, 512, 512, groups=512) == 14 * 14 * 9 * 512  # depthwise alone


def test_full_variant_replaces_each_block_with_a_3x3_conv():
    full = analytic_count(ModelConfig(1.0, 224, variant=Variant.FULL))
    standard = analytic_count(ModelConfig(1.0, 224))
    # block 7 (14x14, 512 -> 512): 3x3 full conv instead of depthwise + pointwise
    full_layer = next(layer for layer in full.layers if layer.spec.name == "blocks.7.conv")
    assert full_layer.macs == 462_422_016
    assert full.macs > 8 * standard.macs


def test_shallow_variant_drops_five_14x14x512_blocks():
    shallow = analytic_count(ModelConfig(1.0, 224, variant=Variant.SHALLOW))
    standard = analytic_count(ModelConfig(1.0, 224))
    five_blocks = 5 * depthwise_separable_macs(14, 14, 3, 512, 512)
    assert standard.macs - shallow.macs == five_blocks
    assert [layer.spec.name for layer in shallow.layers if layer.spec.name.startswith("blocks.7")] == []


def test_seed_variant_adds_only_bias_params():
    seed = analytic_count(ModelConfig(1.0, 224, variant=Variant.SEED))
    standard = analytic_count(ModelConfig(1.0, 224))
    # every depthwise conv has N biases, every pointwise conv M: the sum of both convs' output channels
    widths = [32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
    biases = sum(widths[i] + widths[i + 1] for i in range(13))
    assert seed.params(ParamConvention.PAPER) - standard.params(ParamConvention.PAPER) == biases == 10_912
    assert seed.macs == standard.macs  # bias additions are not multiply-accumulates


@pytest.mark.parametrize(
    ("channels", "alpha", "rounding", "expected"),
    [
        (32, 0.75, Rounding.FLOOR, 24),
        (32, 0.6, Rounding.FLOOR, 19),
        (32, 0.6, Rounding.DIVISIBLE_BY_8, 24),  # 19.2 -> 16 would lose >10%, so 24
        (1024, 0.35, Rounding.DIVISIBLE_BY_8, 360),
        (32, 0.01, Rounding.FLOOR, 1),  # never zero channels
        (32, 0.01, Rounding.DIVISIBLE_BY_8, 8),
    ],
)
def test_scale_channels(channels, alpha, rounding, expected):
    assert scale_channels(channels, alpha, rounding) == expected
