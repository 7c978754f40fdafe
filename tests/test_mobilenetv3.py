"""MobileNetV3-Large and -Small built in: the plans, exact counts derived independently from the paper's Tables 1
and 2, the published rows (paper Table 3, TF-slim) beside the computed ones, the modules, every counter reconciled
operator by operator, and --model in table, layers and paper."""

from __future__ import annotations

import json

import pytest
import torch
from cli_run import run

from mnprof.counting.analytic import ParamConvention, analytic_count
from mnprof.counting.count import count
from mnprof.errors import MnprofError
from mnprof.model.arch import LayerKind, layer_of, layer_plan
from mnprof.model.config import Family, ModelConfig, UserFamily, family_grid
from mnprof.model.networks import SqueezeExcite, build_model
from mnprof.model.reference import V3_PUBLISHED, paper_entry, tfslim_entry
from mnprof.paper.mobilenetv3 import v3_table

LARGE, SMALL = Family.MOBILENETV3_LARGE, Family.MOBILENETV3_SMALL
# The paper's tables as printed: (kernel, expanded, out, SE, stride); input 16 channels after the stem.
TABLE1 = [(3, 16, 16, 0, 1), (3, 64, 24, 0, 2), (3, 72, 24, 0, 1), (5, 72, 40, 1, 2), (5, 120, 40, 1, 1),
          (5, 120, 40, 1, 1), (3, 240, 80, 0, 2), (3, 200, 80, 0, 1), (3, 184, 80, 0, 1), (3, 184, 80, 0, 1),
          (3, 480, 112, 1, 1), (3, 672, 112, 1, 1), (5, 672, 160, 1, 2), (5, 960, 160, 1, 1),
          (5, 960, 160, 1, 1)]  # fmt: skip
TABLE2 = [(3, 16, 16, 1, 2), (3, 72, 24, 0, 2), (3, 88, 24, 0, 1), (5, 96, 40, 1, 2), (5, 240, 40, 1, 1),
          (5, 240, 40, 1, 1), (5, 120, 48, 1, 1), (5, 144, 48, 1, 1), (5, 288, 96, 1, 2), (5, 576, 96, 1, 1),
          (5, 576, 96, 1, 1)]  # fmt: skip
TABLES = {LARGE: (TABLE1, 960, 1280), SMALL: (TABLE2, 576, 1024)}


def divisible(value: float) -> int:
    """TensorFlow's _make_divisible(value, 8), written out again as the test's own witness."""
    rounded = max(8, int(value + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * value else rounded


def by_hand(family: Family, alpha: float, resolution: int, classes: int) -> tuple[int, int]:
    """MACs and conv + FC weights and biases (no BatchNorm) from Table 1 or 2, without mnprof's plan."""
    table, head_channels, last = TABLES[family]
    size = (resolution - 1) // 2 + 1
    channels = divisible(16 * alpha)
    macs, params = size * size * 27 * channels, 27 * channels
    table_in = 16  # the block's input as printed: the expansion factor is expanded / table_in
    for kernel, expanded, printed, se, stride in table:
        hidden, out = divisible(channels * (expanded / table_in)), divisible(printed * alpha)
        if hidden != channels:
            macs, params = macs + size * size * channels * hidden, params + channels * hidden
        size = (size - 1) // stride + 1
        macs, params = macs + size * size * kernel * kernel * hidden, params + kernel * kernel * hidden
        if se:
            squeezed = divisible(hidden // 4)
            macs, params = macs + 2 * hidden * squeezed, params + 2 * hidden * squeezed + squeezed + hidden
        macs, params = macs + size * size * hidden * out, params + hidden * out
        channels, table_in = out, printed
    head = divisible(head_channels * alpha)
    macs, params = macs + size * size * channels * head, params + channels * head
    macs, params = macs + head * last + last * classes, params + head * last + last + last * classes + classes
    return macs, params


CONFIGS = [config for family in (LARGE, SMALL) for config in family_grid(family)]


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_counts_follow_the_tables_by_hand(config):
    for classes in (1000, 1001):
        counted = analytic_count(ModelConfig(config.alpha, config.resolution, classes, family=config.family))
        assert (counted.macs, counted.params(ParamConvention.PAPER)) == by_hand(
            config.family, config.alpha, config.resolution, classes
        )


def test_exact_counts_are_pinned():
    pinned = {  # MACs, PyTorch params (BatchNorm gamma and beta included), conv + FC weights and biases
        "v3-large-1.0-224": (216_589_760, 5_483_032, 5_458_632),
        "v3-large-0.75-224": (154_560_624, 3_993_528, 3_974_440),
        "v3-small-1.0-224": (56_510_400, 2_542_856, 2_530_744),
        "v3-small-0.75-224": (43_399_344, 2_041_872, 2_032_192),
    }
    counted = {c.id: analytic_count(c) for c in CONFIGS}
    assert {
        key: (count.macs, count.params(), count.params(ParamConvention.PAPER)) for key, count in counted.items()
    } == pinned
    # TF-slim's convention: the paper's plus the background class (1280 or 1024 weights and one bias)
    assert counted["v3-large-1.0-224"].params(ParamConvention.TFSLIM) == 5_458_632 + 1281
    assert counted["v3-small-1.0-224"].params(ParamConvention.TFSLIM) == 2_530_744 + 1025


def test_plan_has_the_tables_blocks_squeeze_excite_and_residuals():
    large = layer_plan(ModelConfig(1.0, 224, family=LARGE))
    names = {spec.name: spec for spec in large}
    assert sum(spec.kind is LayerKind.DEPTHWISE for spec in large) == 15
    assert [spec.name for spec in large if spec.kind is LayerKind.SCALE] == [
        f"blocks.{i}.se.scale" for i in (4, 5, 6, 11, 12, 13, 14, 15)
    ]
    assert [spec.name for spec in large if spec.kind is LayerKind.ADD] == [
        f"blocks.{i}.add" for i in (1, 3, 5, 6, 8, 9, 10, 12, 14, 15)
    ]
    assert "blocks.1.expand" not in names  # 16 expanded from 16: no expansion conv
    assert names["blocks.4.se.fc1"].out_channels == 24  # make_divisible(72 // 4, 8)
    assert names["blocks.4.se.fc1"].bias and not names["blocks.4.se.fc1"].batch_norm
    assert names["blocks.4.dw"].kernel == 5 and names["head"].out_shape == (960, 7, 7)
    assert (names["fc1"].in_channels, names["fc1"].out_channels, names["fc"].in_channels) == (960, 1280, 1280)
    small = {spec.name: spec for spec in layer_plan(ModelConfig(0.75, 224, family=SMALL))}
    assert small["fc1"].out_channels == 1024  # not narrowed below alpha 1 (the paper)
    # the stem's 16 x 0.75 = 12 is made 16; 16 x 72/16 = 72 (make_divisible(72 x 0.75, 8) would be 56)
    assert small["head"].out_channels == 432 and small["blocks.2.expand"].out_channels == 72
    assert "blocks.11.se.scale" in small and "head.se.scale" not in small  # no SE on the last conv
    wide = {spec.name: spec for spec in layer_plan(ModelConfig(1.25, 224, family=LARGE))}
    assert wide["fc1"].out_channels == 1600  # widened above 1, as MobileNetV2's last layer


def test_layer_of_resolves_the_squeeze_excite_forward_to_its_gate():
    names = frozenset(spec.name for spec in layer_plan(ModelConfig(1.0, 224, family=LARGE)))
    assert layer_of("blocks.4.se", names) == "blocks.4.se.scale"
    assert layer_of("blocks.4.se.fc1.hardsigmoid", names) == "blocks.4.se.fc1"
    assert layer_of("blocks.5", names) == "blocks.5.add" and layer_of("fc1_act", names) is None


@pytest.mark.parametrize("family", [LARGE, SMALL])
def test_the_built_module_matches_the_plan(family):
    config = ModelConfig(0.75, 96, family=family)
    model = build_model(config)
    assert sum(p.numel() for p in model.parameters()) == analytic_count(config).params()
    scales = sum(spec.kind is LayerKind.SCALE for spec in layer_plan(config))
    assert sum(isinstance(m, SqueezeExcite) for m in model.modules()) == scales
    assert sum(isinstance(m, torch.nn.Hardsigmoid) for m in model.modules()) == scales
    assert tuple(model(torch.zeros(2, 3, 96, 96)).shape) == (2, 1000)


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_every_counter_is_explained_operator_by_operator(config):
    report = count(config)
    analytic = report.analytic
    assert report.shapes.macs == analytic.macs and report.torch.total == analytic.macs
    for reconciliation in report.reconciliations:
        assert reconciliation.unexplained == 0 and reconciliation.in_analytic_counted == analytic.macs
    assert report.fvcore_activations.total == analytic.activations


def test_each_counter_treats_each_v3_operator_as_predicted():
    config = ModelConfig(1.0, 224, family=SMALL)
    report = count(config)
    fvcore = {a.operator: a for a in report.fvcore_reconciliation.attributions}
    assert {op: a.rule for op, a in fvcore.items() if a.rule.startswith("skipped")} == {
        "aten::hardswish_": "skipped, not counted: hard-swish (MobileNetV3's activation, fc1's too); 19 calls, as "
        "the plan predicts",
        "aten::hardsigmoid_": "skipped, not counted: hard-sigmoid (MobileNetV3's squeeze-and-excite gate); 9 calls, "
        "as the plan predicts",
        "aten::mul": "skipped, not counted: the squeeze-and-excite gates (the tensor times its excitation); 5 per "
        "nn.MultiheadAttention (its traced forward's scaling and shape arithmetic); 9 calls, as the plan predicts",
        "aten::add": "skipped, not counted: the residual adds (tensor + tensor); 6 calls, as the plan predicts",
    }
    # the global pool and the nine squeeze-and-excite pools: 1 add per input element (fvcore), + 1 divide per
    # output element (thop); 7x7x576 into the global pool, 56x56x16 into the first SE pool
    pools = [s for s in layer_plan(config) if s.kind is LayerKind.POOL]
    inputs = sum(s.in_channels * s.in_size * s.in_size for s in pools)
    assert len(pools) == 10 and fvcore["adaptive_avg_pool2d"].counted == inputs == 313_600
    thop = report.thop.by_type
    assert thop["AdaptiveAvgPool2d"] == inputs + sum(s.out_channels for s in pools)
    assert thop["Hardswish"] == thop["Hardsigmoid"] == thop["Dropout"] == 0
    # the SE's 1x1 convs are convolutions to every counter (bias not counted); fc1 and fc are linear / addmm
    se_macs = sum(layer.macs for layer in report.analytic.layers if ".se.fc" in layer.spec.name)
    fc1s = [s for s in layer_plan(config) if s.name.endswith(".se.fc1")]
    assert (
        se_macs
        == sum(2 * s.in_channels * s.out_channels for s in fc1s)
        == 2 * (16 * 8 + 96 * 24) + 2 * (2 * 240 * 64 + 120 * 32 + 144 * 40 + 288 * 72 + 2 * 576 * 144)
    )
    assert report.torch.by_operator == {"aten.convolution": report.analytic.conv_macs, "aten.addmm": 1_613_824}
    assert report.analytic.fc_macs == 576 * 1024 + 1024 * 1000 == fvcore["linear"].counted == thop["Linear"]


def test_published_rows_sit_beside_the_computed_ones():
    assert {(e.source.split(" (")[0], e.family, e.alpha) for e in V3_PUBLISHED} >= {
        ("paper", "mobilenetv3-large", 1.0), ("TF-slim mobilenet/README.md", "mobilenetv3-small", 0.75)
    }  # fmt: skip
    assert paper_entry(1.0, 224, "mobilenetv3-large").macs_m == 219
    assert tfslim_entry(1.0, 224, "mobilenetv3-large").macs_m == 217
    assert paper_entry(0.75, 224, "mobilenetv3-small") is None  # the final version's row is not kept
    large = v3_table(LARGE).frame.set_index("model")
    assert large.loc["Large dm=0.75 (float)", "macs"] == 154_561_904  # 1001 classes, TF-slim's
    assert list(large["macs_verdict"]) == ["differs", "reproduced", "reproduced", "reproduced"]
    assert list(large["params_verdict"]) == ["truncated", "reproduced", "truncated", "reproduced"]
    small = v3_table(SMALL)
    assert list(small.frame["macs_verdict"]) == ["truncated", "differs", "differs", "differs", "differs"]
    assert list(small.frame["params_verdict"]) == ["reproduced", "differs", "differs", "differs", "differs"]
    note = next(n for n in small.notes if n.startswith("Small:"))
    assert "are the paper's early version's Table 3" in note and "(403,968), but that adds 403,712 MACs" in note


def test_families_grid_ids_and_bad_combinations():
    assert [c.id for c in CONFIGS] == ["v3-large-1.0-224", "v3-large-0.75-224", "v3-small-1.0-224",
                                       "v3-small-0.75-224"]  # fmt: skip
    assert ModelConfig(0.75, 224, family="mobilenetv3-small").rounding.value == "div8"
    with pytest.raises(MnprofError, match="variant shallow is MobileNetV1's; accepted with mobilenetv3-large"):
        ModelConfig(1.0, 224, variant="shallow", family=LARGE)
    for reserved in ("mobilenetv3-small", "v3-large"):
        with pytest.raises(MnprofError, match="not a built-in family's name or id prefix"):
            UserFamily(reserved, "m:f")


@pytest.mark.slow
def test_table_counts_and_reconciles_both(capsys):
    code, out, _ = run(capsys, "table", "-q", "--no-timing", "--model", "mobilenetv3-large", "--model",
                       "mobilenetv3-small", "--format", "json")  # fmt: skip
    assert code == 0
    rows = {row["id"]: row for row in json.loads(out)["rows"]}
    assert sorted(rows) == sorted(c.id for c in CONFIGS)
    large = rows["v3-large-1.0-224"]
    assert large["macs_analytic"] == 216_589_760 and large["published_macs_m_paper"] == 219
    assert large["published_macs_m_tfslim"] == 217 and large["family"] == "mobilenetv3-large"
    assert all(row["macs_fvcore_unexplained"] == 0 == row["macs_thop_unexplained"] for row in rows.values())
    code, out, _ = run(capsys, "table", "-q", "--no-timing", "--model", "mobilenetv3-small", "--alpha", "1.0",
                       "--view", "reconcile", "--format", "csv")  # fmt: skip
    assert code == 0 and "aten::hardsigmoid_" in out and "Hardswish" not in out  # thop's 0 rules are not listed


def test_paper_shows_both_sources_and_their_disagreement(capsys):
    code, out, _ = run(capsys, "paper", "--model", "mobilenetv3-small", "--format", "markdown")
    assert code == 0
    assert "| paper | V3-Small 1.0 | 67.4% | 56 \\| 56.51 \\| +0.91% cut | 2.5 \\| 2.532 \\| +1.27% ✓ |" in out
    assert "| TF-slim | Small dm=1 (float) | 67.5% | 66 \\| 56.51 \\| -14.38% ✗ |" in out
    code, _, err = run(capsys, "paper", "--model", "mobilenetv3-large", "--table", "6")
    assert code == 2 and "accepted with --model mobilenetv3-large: all" in err


def test_layers_counts_and_times_mobilenetv3(capsys):
    config = ModelConfig(0.75, 64, family=SMALL)
    grid = ["--model", "mobilenetv3-small", "--alpha", "0.75", "--resolution", "64", "--format", "csv"]
    code, out, _ = run(capsys, "layers", "-q", "--no-timing", *grid)
    assert code == 0
    header, rows = out.splitlines()[0].split(","), [line.split(",") for line in out.splitlines()[1:]]
    layer, macs = header.index("layer"), header.index("macs_analytic")
    assert sum(int(row[macs]) for row in rows) == analytic_count(config).macs
    assert sum(row[layer].endswith(".se.scale") for row in rows) == 9
    code, out, _ = run(capsys, "layers", "-q", *grid, "--repeats", "3", "--warmup", "0", "--budget", "0.1")
    assert code == 0
    timed = out.splitlines()
    time_ms = timed[0].split(",").index("time_ms")
    for row in timed[1:]:
        cells = row.split(",")
        no_module = cells[layer].endswith((".add", ".se.scale"))  # a forward, not a module
        assert (cells[time_ms] == "") == no_module
