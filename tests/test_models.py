from __future__ import annotations

import pytest
import torch
from torch import nn

from mnprof.counting.analytic import ParamConvention, analytic_count
from mnprof.model.arch import layer_plan
from mnprof.model.config import ModelConfig
from mnprof.model.networks import build_model

CONFIGS = [
    ModelConfig(1.0, 224),
    ModelConfig(0.25, 128),
    ModelConfig(0.6, 97, rounding="div8"),
    ModelConfig(1.0, 64, variant="full"),
    ModelConfig(0.5, 96, variant="shallow"),
    ModelConfig(0.5, 96, variant="seed", num_classes=10),
]


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_every_conv_has_the_planned_shape(config):
    model = build_model(config)
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        module.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:])))
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d)
    ]
    with torch.no_grad():
        out = model(torch.zeros(2, 3, config.resolution, config.resolution))
    for hook in hooks:
        hook.remove()
    assert out.shape == (2, config.num_classes)
    planned = {f"{spec.name}.conv": spec.out_shape for spec in layer_plan(config) if spec.kind.value != "pool"}
    planned.pop("fc.conv")
    assert shapes == planned


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_parameter_count_matches_the_analytic_pytorch_convention(config):
    model = build_model(config)
    assert sum(p.numel() for p in model.parameters()) == analytic_count(config).params(ParamConvention.PYTORCH)


def test_last_depthwise_conv_has_stride_one_and_keeps_7x7():
    model = build_model(ModelConfig(1.0, 224))
    assert model.blocks[-1].dw.conv.stride == (1, 1)
    assert model.blocks[-2].dw.conv.stride == (2, 2)
    plan = layer_plan(ModelConfig(1.0, 224))
    assert [spec.out_size for spec in plan if spec.name.startswith("blocks.13")] == [7, 7]


def test_convs_carry_no_bias_except_in_the_seed_variant():
    standard = build_model(ModelConfig(1.0, 224))
    seed = build_model(ModelConfig(1.0, 224, variant="seed"))
    assert all(m.bias is None for m in standard.modules() if isinstance(m, nn.Conv2d))
    seed_convs = [m for name, m in seed.named_modules() if isinstance(m, nn.Conv2d) and name != "stem.conv"]
    assert len(seed_convs) == 26 and all(m.bias is not None for m in seed_convs)


def test_model_is_built_in_eval_mode():
    assert not build_model(ModelConfig(0.25, 128)).training
