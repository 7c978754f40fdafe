"""MobileNetV2 built in: the plan, exact counts derived independently, TF-slim's 22 checkpoints reproduced,
the module, the counters reconciled, and --model in table, paper and plot."""

from __future__ import annotations

import json

import pytest
import torch
from cli_run import run
from factories import timing_record

from mnprof.cli import main
from mnprof.counting.analytic import ParamConvention, analytic_count
from mnprof.counting.count import count, count_many
from mnprof.errors import MnprofError
from mnprof.model.arch import LayerKind, layer_plan
from mnprof.model.config import Family, ModelConfig, family_grid
from mnprof.model.networks import InvertedResidual, build_model
from mnprof.model.reference import TFSLIM_V2
from mnprof.paper.mobilenetv2 import tfslim_v2_table
from mnprof.timing.store import RESULTS_KIND, RESULTS_SCHEMA_VERSION
from mnprof.views.plot_inputs import plot_inputs

V2 = Family.MOBILENETV2
STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def divisible(value: float) -> int:
    """TensorFlow's _make_divisible(value, 8), written out again here as the test's own witness."""
    rounded = max(8, int(value + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * value else rounded


def by_hand(alpha: float, resolution: int, classes: int) -> tuple[int, int]:
    """MACs and conv + FC weights + FC bias of MobileNetV2 from Table 2 of the paper, without mnprof's plan."""
    size = (resolution - 1) // 2 + 1
    channels = divisible(32 * alpha)
    macs, params = size * size * 27 * channels, 27 * channels
    for t, c, n, s in STAGES:
        out = divisible(c * alpha)
        for i in range(n):
            hidden = channels * t
            if t != 1:
                macs, params = macs + size * size * channels * hidden, params + channels * hidden
            size = (size - 1) // (s if i == 0 else 1) + 1
            macs += size * size * 9 * hidden + size * size * hidden * out
            params += 9 * hidden + hidden * out
            channels = out
    head = divisible(1280 * alpha) if alpha > 1 else 1280
    macs += size * size * channels * head + head * classes
    params += channels * head + head * classes + classes
    return macs, params


def test_plan_has_the_papers_blocks_residuals_and_head():
    plan = layer_plan(ModelConfig(1.0, 224, family=V2))
    assert sum(spec.kind is LayerKind.DEPTHWISE for spec in plan) == 17
    assert [spec.name for spec in plan if spec.kind is LayerKind.ADD] == [
        f"blocks.{i}.add" for i in (3, 5, 6, 8, 9, 10, 12, 13, 15, 16)
    ]
    assert "blocks.1.expand" not in {spec.name for spec in plan}  # t = 1: no expansion
    head = {
        a: next(s for s in layer_plan(ModelConfig(a, 224, family=V2)) if s.name == "head") for a in (0.35, 1.3, 1.4)
    }
    assert [head[a].out_channels for a in (0.35, 1.3, 1.4)] == [1280, 1664, 1792]
    assert plan[-3].out_size == 7 and plan[-1].in_channels == 1280


@pytest.mark.parametrize("entry", TFSLIM_V2, ids=lambda e: e.model)
def test_tfslim_checkpoints_are_reproduced_under_the_stated_conventions(entry):
    config = ModelConfig(entry.alpha, entry.resolution, 1001, family=V2)
    counted = analytic_count(config)
    macs, params = by_hand(entry.alpha, entry.resolution, 1001)
    assert (counted.macs, counted.params(ParamConvention.PAPER)) == (macs, params)
    assert int(counted.macs / 1e6) == entry.macs_m  # TF-slim cuts MACs to whole millions
    assert round(params / 1e6, 2) == entry.params_m
    as_built = analytic_count(ModelConfig(entry.alpha, entry.resolution, family=V2))  # 1000 classes
    assert as_built.params(ParamConvention.TFSLIM) == params  # the TF-slim convention adds the background class


def test_exact_counts_are_pinned():
    config = ModelConfig(1.0, 224, family=V2)
    counted = analytic_count(config)
    assert counted.macs == 300_774_272  # 1000 classes
    assert counted.params() == 3_504_872  # PyTorch's count, BatchNorm included (torchvision's mobilenet_v2 too)
    assert counted.params(ParamConvention.TFSLIM) == 3_472_041
    frame = tfslim_v2_table().frame.set_index("id")
    assert frame.loc["v2-1.4-224", "macs"] == 582_197_616 and frame.loc["v2-0.35-96", "macs"] == 11_935_408
    assert frame.loc["v2-1.4-224", "params"] == 6_062_633 and frame.loc["v2-0.35-96", "params"] == 1_664_329
    cut = sum(int(row.macs_m) == row.published_macs_m for row in frame.itertuples())
    assert cut == 22 and (frame["params_verdict"] == "reproduced").all()


@pytest.mark.parametrize("alpha", [0.35, 1.0, 1.4])
def test_the_built_module_matches_the_plan(alpha):
    config = ModelConfig(alpha, 96, family=V2)
    model = build_model(config)
    assert sum(p.numel() for p in model.parameters()) == analytic_count(config).params()
    assert sum(isinstance(m, InvertedResidual) and m.residual for m in model.modules()) == 10
    assert tuple(model(torch.zeros(2, 3, 96, 96)).shape) == (2, 1000)


@pytest.mark.parametrize("config", [ModelConfig(1.0, 224, family=V2), ModelConfig(0.35, 96, family=V2)], ids=str)
def test_fvcore_and_thop_are_explained_operator_by_operator(config):
    report = count(config)
    for reconciliation in (report.fvcore_reconciliation, report.thop_reconciliation):
        assert reconciliation.unexplained == 0 and reconciliation.in_analytic_counted == report.analytic.macs
    skipped = {a.operator: a.rule for a in report.fvcore_reconciliation.attributions if a.rule.startswith("skipped")}
    assert skipped == {
        "aten::hardtanh_": "skipped, not counted: ReLU6 (MobileNetV2's activation); 35 calls, as the plan predicts",
        "aten::add": "skipped, not counted: the residual adds (tensor + tensor); 10 calls, as the plan predicts",
    }
    assert report.thop.by_type.get("ReLU6") == 0


def test_published_grid_and_bad_combinations():
    assert [c.id for c in family_grid(V2)][:3] == ["v2-1.4-224", "v2-1.3-224", "v2-1.0-224"]
    assert len(family_grid(V2)) == 22
    with pytest.raises(MnprofError, match="variant full is MobileNetV1's; accepted with mobilenetv2: standard"):
        ModelConfig(1.0, 224, variant="full", family=V2)
    with pytest.raises(MnprofError, match="unknown model 'mobilenetv9'; accepted: mobilenetv1, mobilenetv2"):
        ModelConfig(1.0, 224, family="mobilenetv9")


def test_table_sets_the_families_side_by_side(capsys):
    code, out, _ = run(capsys, "table", "-q", "--no-timing", "--model", "mobilenetv1", "--model", "mobilenetv2",
                       "--alpha", "1.0", "--resolution", "224", "--format", "json")  # fmt: skip
    assert code == 0
    rows = {row["id"]: row for row in json.loads(out)["rows"]}
    assert rows["v2-1.0-224"]["family"] == "mobilenetv2" and rows["v2-1.0-224"]["macs_analytic"] == 300_774_272
    assert rows["1.0-224"]["family"] == "mobilenetv1" and rows["v2-1.0-224"]["published_top1_tfslim"] == 71.8
    assert rows["v2-1.0-224"]["macs_fvcore_unexplained"] == 0 and rows["v2-1.0-224"]["macs_thop_unexplained"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["table", "--no-timing", "--model", "mobilenetv2", "--view", "paper"], "--view paper shows MobileNetV1's"),
        (["table", "--no-timing", "--model", "mobilenetv2", "--variant", "full"], "variant full is MobileNetV1's"),
        (["table", "--no-timing", "--model", "mobilenetv3"], "unknown model 'mobilenetv3'; accepted: mobilenetv1"),
        (["paper", "--model", "mobilenetv2", "--table", "1"], "accepted with --model mobilenetv2: all"),
    ],
)
def test_bad_model_input_is_one_line_exit_2(capsys, args, message):
    code, out, err = run(capsys, *args)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err and "Traceback" not in err


def test_paper_shows_tfslims_checkpoints(capsys):
    code, out, _ = run(capsys, "paper", "--model", "mobilenetv2", "--format", "markdown")
    assert code == 0
    assert "| mobilenet_v2_1.0_224 | 71.8% | 300 \\| 300.78 \\| +0.26% cut | 3.47 \\| 3.4720 \\| +0.06% ✓ |" in out
    assert "gives the printed number for 22 of 22 checkpoints" in out and "22 of 22 reproduced, 0 differ" in out


@pytest.mark.slow
def test_plot_draws_each_family_as_its_own_series(tmp_path):
    rows = [timing_record(config).to_row() for config in ("1.0-224", "0.5-160")]
    rows += [timing_record(ModelConfig(a, r, family=V2)).to_row() for a, r in ((1.0, 224), (0.5, 160))]
    path = tmp_path / "r.json"
    document = {"schema_version": RESULTS_SCHEMA_VERSION, "kind": RESULTS_KIND,
                "environment": {"cpu_model": "Test CPU"}, "gemm_peaks": [], "measurements": rows}  # fmt: skip
    path.write_text(json.dumps(document))
    inputs = plot_inputs([path], count_many, [ModelConfig(1.0, 224), ModelConfig(1.0, 224, family=V2)])
    assert set(inputs.latency["series"]) == {"MobileNetV1: eager, batch 1, 2 threads",
                                             "MobileNetV2: eager, batch 1, 2 threads"}  # fmt: skip
    assert set(inputs.grid["family"]) == {"mobilenetv1", "mobilenetv2"}


@pytest.mark.slow
def test_check_guards_the_builtin_mobilenetv2(capsys, tmp_path):
    baseline = tmp_path / "b.json"
    grid = ["--model", "mobilenetv2", "--alpha", "1.0,0.35", "--resolution", "96"]
    assert main(["baseline", "-q", *grid, "--out", str(baseline)]) == 0
    entries = json.loads(baseline.read_text())["entries"]
    assert (
        entries["mobilenetv2@1.0-96"]["counts"]["analytic"]["macs"]
        == analytic_count(ModelConfig(1.0, 96, family=V2)).macs
    )
    capsys.readouterr()
    assert main(["check", "-q", *grid, "--baseline", str(baseline)]) == 0
    assert "2 configurations compared" in capsys.readouterr().out


def test_layers_counts_and_times_mobilenetv2(capsys):
    grid = ["--model", "mobilenetv2", "--alpha", "0.35", "--resolution", "64", "--format", "csv"]
    assert main(["layers", "-q", "--no-timing", *grid]) == 0
    lines = capsys.readouterr().out.splitlines()
    header, rows = lines[0].split(","), [line.split(",") for line in lines[1:]]
    layer, macs = header.index("layer"), header.index("macs_analytic")
    assert sum(int(row[macs]) for row in rows) == analytic_count(ModelConfig(0.35, 64, family=V2)).macs
    assert sum(row[layer].endswith(".add") for row in rows) == 10
    assert main(["layers", "-q", *grid, "--repeats", "3", "--warmup", "0", "--budget", "0.1"]) == 0
    timed = capsys.readouterr().out.splitlines()
    time_ms = timed[0].split(",").index("time_ms")
    for row in timed[1:]:
        cells = row.split(",")
        assert (cells[time_ms] == "") == cells[layer].endswith(".add")  # every module timed; adds are no module
    code = main(["layers", "-q", "--model", "mobilenetv2", "--method", "profiler"])
    assert code == 2 and "accepted with mobilenetv2: --method hooks" in capsys.readouterr().err
