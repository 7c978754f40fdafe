"""The shape counter (meta device) and torch's FlopCounterMode: exact against the layer plans, for every
built-in family and configuration, and the shape counter works on a model mnprof did not build."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mnprof.counting.analytic import ParamConvention, analytic_count
from mnprof.counting.count import count
from mnprof.counting.shapes import count_config_shapes, count_shapes
from mnprof.counting.torch_counter import count_torch
from mnprof.model.arch import CONV_KINDS, LayerKind
from mnprof.model.config import ModelConfig, default_grid, family_grid
from mnprof.model.networks import build_model, module_paths

CONFIGS = [
    *default_grid(),
    *family_grid("mobilenetv2"),
    *family_grid("mobilenetv3-large"),
    *family_grid("mobilenetv3-small"),
    ModelConfig(1.0, 224, variant="full"),
    ModelConfig(1.0, 224, variant="shallow"),
    ModelConfig(1.0, 224, variant="seed"),
    ModelConfig(0.6, 96, rounding="div8", num_classes=10),
]


def test_shape_counter_equals_every_plan_layer_by_layer():
    for config, shapes in zip(CONFIGS, count_config_shapes(CONFIGS), strict=True):
        analytic = analytic_count(config)
        assert shapes.macs == analytic.macs, config
        assert shapes.params == analytic.params(ParamConvention.PAPER) and shapes.params_all == analytic.params()
        planned = {
            module_paths(layer.spec)[0]: layer.macs
            for layer in analytic.layers
            if layer.spec.kind in (*CONV_KINDS, LayerKind.FC)
        }
        assert shapes.by_module() == planned, config


def test_shape_counter_counts_a_model_it_did_not_build_and_leaves_it_alone():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 8, (1, 3), padding=(0, 1), groups=2), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 5))  # fmt: skip
    counted = count_shapes(model, 32)
    # by hand: 16x16 outputs of a 3x3x3 kernel to 8 channels; 16x16 of 1x3 over 4 input channels per group to 8
    assert counted.macs == 16 * 16 * 27 * 8 + 16 * 16 * 3 * 4 * 8 + 8 * 5
    assert counted.params == (27 * 8 + 8) + (3 * 4 * 8 + 8) + (8 * 5 + 5)
    assert next(model.parameters()).device.type == "cpu"  # the user's model is not moved
    assert isinstance(model[1].forward.__self__, nn.BatchNorm2d)  # nor changed


TORCH_CONFIGS = [
    ModelConfig(1.0, 224),
    ModelConfig(0.25, 128),
    ModelConfig(1.4, 224, family="mobilenetv2"),
    ModelConfig(0.35, 96, family="mobilenetv2"),
    ModelConfig(0.75, 224, family="mobilenetv3-small"),
]


@pytest.mark.parametrize("config", TORCH_CONFIGS, ids=str)
def test_torch_counter_is_two_flops_per_analytic_mac(config):
    counted = count_torch(build_model(config), torch.zeros(1, 3, config.resolution, config.resolution))
    analytic = analytic_count(config)
    assert counted.flops == 2 * analytic.macs and counted.total == analytic.macs
    assert set(counted.flops_by_operator) == {"aten.convolution", "aten.addmm"}
    report = count(config)
    assert report.torch_reconciliation.unexplained == 0 and report.shapes.macs == analytic.macs


@pytest.mark.parametrize("config", TORCH_CONFIGS, ids=str)
def test_activations_are_counted_exactly_and_fvcore_agrees(config):
    analytic = analytic_count(config)
    by_hand = sum(c * h * w for c, h, w in (layer.spec.out_shape for layer in analytic.layers
                                             if layer.spec.kind in (*CONV_KINDS, LayerKind.FC)))  # fmt: skip
    assert analytic.activations == by_hand
    assert count(config).fvcore_activations.total == analytic.activations


def test_peak_working_set_follows_the_stated_model_of_execution():
    v1 = analytic_count(ModelConfig(1.0, 224))
    assert v1.activations == 5_043_688
    assert v1.peak_working_set() == 32 * 112 * 112 + 64 * 112 * 112  # blocks.1.pw: its input and output
    assert v1.peak_working_set(8) == 8 * v1.peak_working_set()
    v2 = analytic_count(ModelConfig(1.0, 224, family="mobilenetv2"))
    assert v2.peak_working_set() == 96 * 112 * 112 + 96 * 56 * 56  # blocks.2.dw (no residual in block 2)
    # a residual block keeps its input alive: at 0.35-96 the widest moment is inside a residual block
    small = analytic_count(ModelConfig(1.0, 32, family="mobilenetv2"))
    block3 = {layer.spec.name: layer for layer in small.layers if layer.spec.name.startswith("blocks.3.")}
    kept = block3["blocks.3.expand"].in_elements
    inside = block3["blocks.3.dw"].in_elements + block3["blocks.3.dw"].out_elements + kept
    assert small.peak_working_set() >= inside


def test_the_layer_table_sums_to_the_activations(capsys):
    from mnprof.views.layers import layer_report

    for config in (ModelConfig(1.0, 224), ModelConfig(0.35, 96, family="mobilenetv2")):
        frame = layer_report(config, None, fvcore=False).frame
        assert int(frame["activations"].sum()) == analytic_count(config).activations
