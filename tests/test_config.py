from __future__ import annotations

import pytest

from mnprof.errors import MnprofError
from mnprof.model.config import ModelConfig, Rounding, Variant, default_grid, grid, parse_alphas, parse_resolutions


def test_default_grid_is_the_papers_sixteen_configurations_in_order():
    ids = [config.id for config in default_grid()]
    assert len(ids) == 16 and len(set(ids)) == 16
    assert ids[:5] == ["1.0-224", "1.0-192", "1.0-160", "1.0-128", "0.75-224"]
    assert ids[-1] == "0.25-128"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (ModelConfig(1.0, 224), "1.0-224"),
        (ModelConfig(0.5, 160), "0.5-160"),
        (ModelConfig(2, 96), "2.0-96"),
        (ModelConfig(1.0, 224, variant=Variant.FULL), "1.0-224-full"),
        (ModelConfig(0.6, 224, rounding="div8"), "0.6-224-div8"),
        (ModelConfig(1.0, 224, num_classes=1001, variant="seed"), "1.0-224-seed-c1001"),
    ],
)
def test_ids_are_readable_and_only_name_non_defaults(config, expected):
    assert config.id == expected


def test_config_is_immutable_hashable_and_normalised():
    config = ModelConfig(1, 224, variant="shallow", rounding="floor")
    assert config.alpha == 1.0 and isinstance(config.alpha, float)
    assert config.variant is Variant.SHALLOW and config.rounding is Rounding.FLOOR
    assert config == ModelConfig(1.0, 224, variant=Variant.SHALLOW)
    assert len({config, ModelConfig(1.0, 224, variant=Variant.SHALLOW)}) == 1
    with pytest.raises(AttributeError):
        config.alpha = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 0, "resolution": 224}, r"alpha 0 is out of range; accepted: a number in \(0, 4\]"),
        ({"alpha": -0.5, "resolution": 224}, "out of range"),
        ({"alpha": 4.01, "resolution": 224}, "out of range"),
        ({"alpha": float("nan"), "resolution": 224}, "not a number"),
        ({"alpha": "1", "resolution": 224}, "not a number"),
        ({"alpha": 1.0, "resolution": 31}, "resolution 31 is too small; accepted: an integer in \\[32, 2048\\]"),
        ({"alpha": 1.0, "resolution": 224.0}, "not an integer"),
        ({"alpha": 1.0, "resolution": 224, "num_classes": 0}, "num_classes"),
        ({"alpha": 1.0, "resolution": 224, "variant": "wide"}, "unknown variant 'wide'; accepted: standard, full"),
        ({"alpha": 1.0, "resolution": 224, "rounding": "ceil"}, "unknown rounding 'ceil'; accepted: floor, div8"),
    ],
)
def test_bad_values_are_rejected_with_what_is_accepted(kwargs, message):
    with pytest.raises(MnprofError, match=message):
        ModelConfig(**kwargs)


def test_extremes_of_the_accepted_range_build():
    assert ModelConfig(4.0, 32).id == "4.0-32"
    assert ModelConfig(0.01, 32).alpha == 0.01


def test_parse_lists():
    assert parse_alphas("1.0, 0.6") == (1.0, 0.6)
    assert parse_alphas("1,1.0") == (1.0,)  # duplicates collapse, order kept
    assert parse_resolutions("224,96") == (224, 96)


@pytest.mark.parametrize(
    ("parser", "text", "message"),
    [
        (parse_alphas, "", "empty"),
        (parse_alphas, "1.0,,0.5", "empty item"),
        (parse_alphas, "abc", "alpha 'abc' is not a number"),
        (parse_alphas, "0", "alpha 0 is out of range"),
        (parse_alphas, "inf", "out of range"),
        (parse_resolutions, "224,x", "resolution 'x' is not an integer"),
        (parse_resolutions, "16", "resolution 16 is too small; accepted: integers in \\[32, 2048\\]"),
        (parse_resolutions, "224.5", "not an integer"),
    ],
)
def test_parse_errors_name_the_value(parser, text, message):
    with pytest.raises(MnprofError, match=message):
        parser(text)


def test_empty_grid_is_an_error():
    with pytest.raises(MnprofError, match="grid is empty"):
        grid([], [224])
