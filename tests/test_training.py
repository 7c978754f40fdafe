"""A training step's cost (``--pass training``): the analytic rule pinned to exact integers, FlopCounterMode's forward
and backward reconciled with it operator by operator, and the command line's table, baseline and check."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from mnprof.counting.analytic import analytic_count
from mnprof.counting.count import count_many
from mnprof.counting.traced import plan_count
from mnprof.counting.training import (
    count_torch_training,
    reconcile_training,
    saved_activation_elements,
    saved_for_backward,
    training_count,
)
from mnprof.model.arch import CONV_KINDS, LayerKind
from mnprof.model.config import Family, ModelConfig, UserFamily, family_grid
from mnprof.model.networks import build_model
from tests import training_family
from tests.cli_run import refused, run

SMALL = "small=tests.training_family:small"
TRAINABLE = "trainable=tests.training_family:trainable"
ATTENTION = "attn=tests.attention_family:attention"


def _training(config: ModelConfig):
    model = build_model(config)
    training = training_count(plan_count(config, model), model)
    torch_count = count_torch_training(model, torch.zeros(1, 3, config.resolution, config.resolution))
    return training, torch_count, reconcile_training(training, torch_count)


def test_mobilenetv1_at_full_width_pinned_to_exact_integers():
    training, torch_count, reconciliation = _training(ModelConfig(1.0, 224))
    assert training.forward.macs == 568_740_352
    stem = 112 * 112 * 3 * 3 * 3 * 32  # the first layer: its input is the image, which needs no gradient
    assert training.backward_macs == 2 * 568_740_352 - stem == 1_126_642_688
    assert training.macs == 1_695_383_040
    # FlopCounterMode charges each depthwise layer's weight gradient once per channel (groups times)
    depthwise = [layer for layer in training.layers if layer.layer.spec.kind.value == "depthwise"]
    excess = sum((layer.layer.spec.groups - 1) * layer.layer.macs for layer in depthwise)
    assert torch_count.total == training.macs + excess == 5_955_400_704
    assert reconciliation.unexplained == 0


def test_one_depthwise_layer_as_flop_counter_mode_counts_its_backward_by_hand():
    """The convention predicted in the reconciliation, checked on a layer small enough to count by hand."""
    layer = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
    image = torch.zeros(1, 8, 10, 10, requires_grad=True)
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as mode:
        layer(image).sum().backward()
    counts = {str(op): flops // 2 for op, flops in mode.get_flop_counts()["Global"].items()}
    forward = 10 * 10 * 3 * 3 * 8  # MACs: one 3x3 product per output element
    assert counts["aten.convolution"] == forward
    assert counts["aten.convolution_backward"] == forward + 8 * forward  # input gradient, weight gradient x groups


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(0.5, 128),
        ModelConfig(0.35, 96, family=Family.MOBILENETV2),
        ModelConfig(1.4, 224, family=Family.MOBILENETV2),
        ModelConfig(0.75, 224, family=Family.MOBILENETV3_SMALL),
        ModelConfig(1.0, 224, family=Family.MOBILENETV3_LARGE),
    ],
    ids=lambda config: config.id,
)
def test_flop_counter_mode_training_step_fully_explained(config):
    training, torch_count, reconciliation = _training(config)
    forward = training.forward
    first = next(layer for layer in forward.layers if layer.macs)
    assert training.backward_macs == 2 * forward.macs - first.macs
    assert reconciliation.unexplained == 0
    assert set(torch_count.by_operator) == {"aten.convolution", "aten.addmm", "aten.convolution_backward", "aten.mm"}
    assert torch_count.by_operator["aten.mm"] == 2 * forward.fc_macs  # each linear's input and weight gradients


def test_saved_activations_of_mobilenetv1_pinned_and_explained_tensor_by_tensor():
    """What autograd keeps for the backward of MobileNetV1 0.25-128: the image, and for each of its 27 conv layers
    the conv's output (BatchNorm's input) and BatchNorm's output (ReLU's result, in place: the next layer's input),
    and the pooled vector the classifier reads. Weights are the model's, not counted."""
    config = ModelConfig(0.25, 128)
    forward = analytic_count(config)
    convs = [layer for layer in forward.layers if layer.spec.kind in CONV_KINDS]
    assert len(convs) == 27
    expected = 3 * 128 * 128 + sum(2 * layer.out_elements for layer in convs) + 256
    assert saved_activation_elements(forward) == expected == 872_704
    measured, tensors = saved_for_backward(build_model(config), torch.zeros(1, 3, 128, 128))
    assert (measured, tensors) == (4 * expected, 1 + 2 * 27 + 1 + 1)  # + BatchNorm's empty reserve (0 bytes)


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(1.0, 224, family=Family.MOBILENETV2),  # ReLU6 in place: autograd keeps a copy of its input
        ModelConfig(0.75, 224, family=Family.MOBILENETV3_SMALL),  # hard-swish, squeeze-and-excite gates
        ModelConfig(1.0, 224, family=Family.MOBILENETV3_LARGE),
    ],
    ids=lambda config: config.id,
)
def test_saved_activations_model_equals_what_autograd_keeps(config):
    measured, _ = saved_for_backward(build_model(config), torch.zeros(1, 3, config.resolution, config.resolution))
    assert 4 * saved_activation_elements(analytic_count(config)) == measured


def test_saved_activations_of_a_user_family_are_measured_only():
    report = count_many([_user_config("small", "tests.training_family:small")], training=True)[0]
    row = report.row()
    assert row["saved_activation_bytes"] is None  # its traced layers do not say what autograd keeps
    assert row["saved_activation_bytes_measured"] > 0


@pytest.mark.slow
def test_every_v1_and_v2_configuration_equals_the_rule_and_flop_counter_mode():
    """FlopCounterMode's training step on the meta device (shapes only: its formulas need no values), and what
    autograd keeps from a CPU forward, for every published configuration."""
    configs = [*family_grid(Family.MOBILENETV1), *family_grid(Family.MOBILENETV2)]
    assert len(configs) == 16 + 22
    for config in configs:
        forward = analytic_count(config)
        training = training_count(forward)
        first = next(layer for layer in forward.layers if layer.macs)
        assert training.macs == 3 * forward.macs - first.macs, config.id
        model, image = build_model(config), torch.zeros(1, 3, config.resolution, config.resolution)
        assert 4 * saved_activation_elements(forward) == saved_for_backward(model, image)[0], config.id
        on_meta = count_torch_training(model.to("meta"), image.to("meta"))
        assert reconcile_training(training, on_meta).unexplained == 0, config.id


def test_user_family_frozen_weights_and_an_image_scaled_before_the_first_layer():
    reports = count_many([_user_config("small", "tests.training_family:small")], training=True)
    frozen = reports[0]
    forward = 110_592 + 36_864 + 131_072 + 320  # stem, depthwise, pointwise (frozen), linear
    assert frozen.analytic.macs == forward
    # stem: weights only (its input, the scaled image, needs no gradient); depthwise both; pointwise: its input's
    # gradient only (frozen); linear both
    assert frozen.training.backward_macs == 110_592 + 2 * 36_864 + 131_072 + 2 * 320 == 316_032
    assert frozen.torch_training_reconciliation.unexplained == 0
    trainable = count_many([_user_config("trainable", "tests.training_family:trainable")], training=True)[0]
    assert trainable.training.backward_macs == 316_032 + 131_072
    assert trainable.torch_training.total == forward + 110_592 + (36_864 + 16 * 36_864) + 2 * 131_072 + 640


def _user_config(name: str, target: str) -> ModelConfig:
    return ModelConfig(1.0, 32, 10, family=UserFamily(name, target))


def test_training_rule_needs_the_model_for_a_user_family():
    config = _user_config("small", "tests.training_family:small")
    with pytest.raises(ValueError, match="needs its model"):
        training_count(plan_count(config))


def test_table_pass_training_json_carries_the_training_columns(capsys):
    code, out, _ = run(capsys, "table", "--no-timing", "--pass", "training", "--alpha", "0.25", "--resolution", "128",
                       "--format", "json", "--quiet")  # fmt: skip
    assert code == 0
    row = json.loads(out)["rows"][0]
    counted = analytic_count(ModelConfig(0.25, 128))
    assert row["macs_training"] == 3 * counted.macs - counted.layers[0].macs
    assert row["macs_training_torch_unexplained"] == 0
    assert row["macs_training_torch"] == row["macs_training"] + row["macs_training_torch_groups_excess"] > 0


def test_table_reconcile_view_lists_the_training_step_operators(capsys):
    code, out, _ = run(capsys, "table", "--view", "reconcile", "--pass", "training", "--alpha", "0.25",
                       "--resolution", "128", "--format", "json", "--quiet")  # fmt: skip
    assert code == 0
    rows = [row for row in json.loads(out)["rows"] if row["counter"] == "torch training"]
    by_operator = {row["operator"]: row for row in rows}
    assert set(by_operator) == {"aten.convolution", "aten.addmm", "aten.convolution_backward", "aten.mm"}
    assert all(row["macs_unexplained"] == 0 for row in rows)
    assert by_operator["aten.convolution_backward"]["macs_counted"] > 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--pass", "backward"], "'backward' is not one of 'forward', 'training'"),
        (["--pass", "training"], "accepted: --pass training with --no-timing"),
        (["--pass", "training", "--backend", "onnxruntime_int8"], "accepted: --pass training with --no-timing"),
        (["--pass", "training", "--view", "paper"], "accepted: --view grid, counts or reconcile"),
        (["--pass", "training", "--no-timing", "--instructions"], "accepted: --instructions with --pass forward"),
        (["--pass", "training", "--no-timing", "--model", ATTENTION], "multiplies tensors"),
    ],
)
def test_table_pass_training_bad_input_is_one_line(capsys, args, says):
    assert says in refused(capsys, "table", "--alpha", "0.25", "--resolution", "32", "--quiet", *args)


def test_check_guards_the_training_step_a_forward_check_cannot_see(capsys, tmp_path, monkeypatch):
    """Unfreezing a layer adds backward MACs and leaves the forward unchanged: only the training gate fails."""
    monkeypatch.chdir(tmp_path)
    grid = ["--model", SMALL, "--alpha", "1.0", "--resolution", "32", "--classes", "10", "--quiet"]
    monkeypatch.setattr(training_family, "FROZEN", True)
    assert run(capsys, "baseline", *grid, "--pass", "training", "--out", "trained.json")[0] == 0
    assert run(capsys, "baseline", *grid, "--out", "forward.json")[0] == 0
    assert run(capsys, "check", *grid, "--baseline", "trained.json")[0] == 0
    monkeypatch.setattr(training_family, "FROZEN", False)
    assert run(capsys, "check", *grid, "--baseline", "forward.json")[0] == 0  # the forward did not change
    code, out, _ = run(capsys, "check", *grid, "--baseline", "trained.json", "--format", "json")
    assert code == 1  # the baseline recorded a training step: check counts it unasked, and it grew
    grew = {(f["counter"], f["metric"]) for f in json.loads(out)["findings"] if f["status"] == "grew"}
    assert grew == {("training", "macs"), ("training", "backward_macs"), ("training", "torch_macs")}
    assert "has no training counts" in refused(capsys, "check", *grid, "--baseline", "forward.json", "--pass",
                                               "training")  # fmt: skip


def test_conv_kinds_cover_every_counted_conv_of_the_plans():
    """The FlopCounterMode rule sums over CONV_KINDS: a conv kind it missed would leave its backward unexplained."""
    for family in Family:
        for layer in training_count(analytic_count(family_grid(family)[0])).layers:
            assert layer.layer.spec.kind in (*CONV_KINDS, LayerKind.FC)


def test_layers_pass_training_gives_each_layer_its_gradients(capsys):
    code, out, _ = run(capsys, "layers", "--no-timing", "--pass", "training", "--alpha", "0.25", "--resolution", "128",
                       "--format", "json", "--quiet")  # fmt: skip
    assert code == 0
    rows = {row["layer"]: row for row in json.loads(out)["rows"]}
    forward = analytic_count(ModelConfig(0.25, 128))
    assert rows["stem"]["macs_input_grad"] == 0 and rows["stem"]["macs_weight_grad"] == rows["stem"]["macs_analytic"]
    assert rows["fc"]["macs_training"] == 3 * rows["fc"]["macs_analytic"]
    assert sum(row["macs_weight_grad"] for row in rows.values()) == forward.macs
    assert sum(row["macs_training"] for row in rows.values()) == training_count(forward).macs
    assert "accepted: --pass training with --no-timing" in refused(capsys, "layers", "--pass", "training")


@pytest.mark.parametrize(
    "config", [ModelConfig(0.5, 128), ModelConfig(0.5, 160, family=Family.MOBILENETV2)], ids=lambda config: config.id
)
def test_what_autograd_keeps_as_the_allocator_sees_it(config):
    """The memory machinery's witness (PyTorch's allocator, through the profiler): after a forward with autograd on,
    the pass still holds its output and what autograd keeps, except the input batch, allocated before it."""
    from mnprof.memory.measure import still_allocated_after

    model, image = build_model(config).eval(), torch.zeros(1, 3, config.resolution, config.resolution)
    model(image)  # first-call allocations are not the pass's
    with torch.enable_grad():
        held, output = still_allocated_after(lambda: model(image))
    kept = held - output.numel() * output.element_size() + image.numel() * image.element_size()
    assert kept == saved_for_backward(model, image)[0] == 4 * saved_activation_elements(analytic_count(config))


def test_plot_draws_accuracy_against_the_training_steps_macs(capsys, tmp_path):
    from mnprof.views.grid import grid_frame
    from mnprof.views.plots import build_figures

    configs = [ModelConfig(1.0, 224), ModelConfig(0.5, 160), ModelConfig(0.25, 128)]
    figures = {figure.key: figure for figure in build_figures(grid_frame(count_many(configs, training=True)), None)}
    drawn = figures["accuracy-training-macs"].figure
    plotted = {int(x) for trace in drawn.data if trace.meta == "points" for x in trace.x}  # every published source
    assert plotted == {training_count(analytic_count(config)).macs for config in configs}
    assert "accuracy-training-macs" not in {f.key for f in build_figures(grid_frame(count_many(configs)), None)}
    says = refused(capsys, "plot", "--figure", "accuracy-training-macs", "--out", str(tmp_path / "x.svg"))
    assert "accepted: with --pass training" in says


def test_the_api_records_and_checks_a_training_step(tmp_path, monkeypatch):
    from mnprof import api

    grid = {"models": SMALL, "alphas": 1.0, "resolutions": 32, "num_classes": 10}
    monkeypatch.setattr(training_family, "FROZEN", True)
    document = api.record_baseline(**grid, out=tmp_path / "trained.json", training=True)
    assert document["entries"]["small@1.0-32"]["counts"]["training"]["backward_macs"] == 316_032
    assert api.check(**grid, baseline=tmp_path / "trained.json").passed
    monkeypatch.setattr(training_family, "FROZEN", False)
    result = api.check(**grid, baseline=tmp_path / "trained.json")
    assert {(f.counter, f.metric) for f in result.failures} == {
        ("training", "macs"),
        ("training", "backward_macs"),
        ("training", "torch_macs"),
    }
