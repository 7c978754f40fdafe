"""mnprof layers: per-layer rows add up to the whole model; timing columns are present and sane (never absolute)."""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest
import torch
from cli_run import run

from mnprof.counting.analytic import ParamConvention, analytic_count
from mnprof.counting.layers import layer_counts
from mnprof.errors import MnprofError
from mnprof.model.config import ModelConfig
from mnprof.timing import layers as timing_layers
from mnprof.timing.layers import LayerTimingSettings, Method, time_layers
from mnprof.views.layers import layer_report, render_layers
from mnprof.views.render import Format

TINY = ModelConfig(0.25, 64)
FAST = {"repeats": 3, "warmup": 1, "budget_s": 5.0}


@pytest.fixture(scope="module")
def counted_1_0_224():
    return layer_report(ModelConfig(1.0, 224), None)


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(0.25, 64),
        ModelConfig(0.75, 160),
        ModelConfig(1.0, 96, variant="full"),
        ModelConfig(1.0, 96, variant="shallow"),
        ModelConfig(0.6, 96, rounding="div8"),
        ModelConfig(0.5, 64, variant="seed", num_classes=10),
    ],
    ids=str,
)
def test_rows_add_up_to_the_whole_model(config):
    report = layer_report(config, None)
    frame, analytic = report.frame, analytic_count(config)
    assert frame["macs_analytic"].sum() == analytic.macs
    assert frame["params"].sum() == analytic.params(ParamConvention.PAPER)
    assert frame["macs_share"].sum() == pytest.approx(1)
    assert frame["macs_fvcore_unit"].sum() == report.fvcore_total  # every fvcore count sits in some layer's unit
    counted = frame[frame["kind"] != "pool"]
    assert (counted["macs_fvcore"] == counted["macs_analytic"]).all()  # conv and FC: fvcore equals the formula
    pool = frame.set_index("kind").loc["pool"]
    assert pool["macs_analytic"] == 0 and pool["macs_fvcore"] == analytic.pool.in_elements
    totals = report.totals
    assert totals["macs_analytic"] == totals["macs_model"] and totals["params"] == totals["params_model_paper"]
    assert frame["time_ms"].isna().all() and frame["gflops_per_s"].isna().all()


def test_one_layer_by_hand(counted_1_0_224):
    frame = counted_1_0_224.frame.set_index("layer")
    dw, pw = frame.loc["blocks.7.dw"], frame.loc["blocks.7.pw"]
    activations = 14 * 14 * 512
    assert (dw["in_shape"], dw["out_shape"], dw["kernel"], dw["stride"]) == ("14x14x512", "14x14x512", 3, 1)
    assert dw["macs_analytic"] == 14 * 14 * 3 * 3 * 512 == 903_168
    assert dw["params"] == 3 * 3 * 512
    assert dw["bytes_moved"] == 4 * (3 * 3 * 512 + 2 * activations) == 821_248
    assert dw["arithmetic_intensity_flops_per_byte"] == pytest.approx(2 * 903_168 / 821_248)
    assert pw["macs_analytic"] == activations * 512
    assert pw["bytes_moved"] == 4 * (512 * 512 + 2 * activations)
    # The standard 3x3 conv that the pair replaces, and the seed note's ratio beside the computed one.
    assert pw["macs_standard"] == 14 * 14 * 3 * 3 * 512 * 512 == 462_422_016
    assert pw["params_standard"] == 3 * 3 * 512 * 512
    assert pw["separable_to_standard"] == pytest.approx((903_168 + activations * 512) / 462_422_016, rel=1e-15)
    assert pw["seed_formula_ratio"] == pytest.approx(1 / 512 + 1 / 9, rel=1e-15)
    assert pd.isna(dw["macs_standard"]) and math.isnan(dw["separable_to_standard"])
    fc = frame.loc["fc"]
    assert fc["bytes_moved"] == 4 * (1024 * 1000 + 1000 + 1024 + 1000)


def test_standard_conv_ratio_equals_the_formula_in_every_block(counted_1_0_224):
    blocks = counted_1_0_224.frame.dropna(subset=["separable_to_standard"])
    assert len(blocks) == 13
    assert (blocks["separable_to_standard"] == blocks["seed_formula_ratio"]).all()


def test_depthwise_is_three_percent_of_the_macs(counted_1_0_224):
    frame = counted_1_0_224.frame
    share = frame.groupby("kind")["macs_share"].sum()
    assert round(100 * share["depthwise"], 2) == 3.06 and round(100 * share["pointwise"], 2) == 94.86
    intensity = frame.groupby("kind")["arithmetic_intensity_flops_per_byte"].median()
    assert intensity["depthwise"] < 3 < 20 < intensity["pointwise"]  # bytes per multiply: the paper's blind spot


@pytest.mark.parametrize("method", list(Method))
@pytest.mark.parametrize("backend", ["eager", "channels_last"])
def test_timing_columns_are_present_and_consistent(method, backend):
    report = layer_report(
        TINY, time_layers(TINY, LayerTimingSettings(backend=backend, method=method, **FAST)), fvcore=False
    )
    frame = report.frame
    assert (frame["time_ms"] > 0).all() and (frame["time_unit_ms"] >= frame["time_ms"]).all()
    assert frame["time_share"].sum() == pytest.approx(1)
    gflops = frame.loc[frame["macs_analytic"] > 0, "gflops_per_s"]
    assert (gflops > 0).all() and frame.loc[frame["kind"] == "pool", "gflops_per_s"].isna().all()
    times = report.times
    assert times is not None and 3 <= times.repeats <= FAST["repeats"]
    assert all(len(samples) == times.repeats for samples in times.op_ns.values())
    assert report.totals["forward_ms"] > 0


def test_steady_allocator_is_reported():
    times = time_layers(TINY, LayerTimingSettings(**FAST))
    assert times.allocator_steady in (True, False) and times.page_faults_per_pass is not None
    assert time_layers(TINY, LayerTimingSettings(allocator="default", **FAST)).allocator_steady is False


def test_threads_are_restored():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        time_layers(TINY, LayerTimingSettings(threads=1, **FAST))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


def test_profiler_attribution_is_checked_against_the_plan(monkeypatch):
    original = timing_layers._prepare
    wrong = ModelConfig(0.25, 96)  # the same layers with other shapes: attribution must notice
    monkeypatch.setattr(timing_layers, "_prepare", lambda config, settings: original(wrong, settings))
    with pytest.raises(RuntimeError, match="does not match layer stem"):
        time_layers(TINY, LayerTimingSettings(method="profiler", **FAST))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "tvm"}, "unknown backend 'tvm'; accepted: eager, channels_last"),
        ({"method": "perf"}, "unknown timing method 'perf'; accepted: hooks, profiler"),
        ({"allocator": "jemalloc"}, "unknown allocator 'jemalloc'; accepted: steady, default"),
        ({"repeats": 2}, "repeats 2 is invalid; accepted: an integer >= 3"),
        ({"threads": 0}, "threads 0 is invalid; accepted: an integer in [1, 1024]"),
        ({"threads": 100_000}, "threads 100000 is invalid; accepted: an integer in [1, 1024]"),
        ({"budget_s": 0}, "budget 0 is invalid"),
    ],
)
def test_settings_are_validated(kwargs, message):
    with pytest.raises(MnprofError, match=re.escape(message)):
        LayerTimingSettings(**kwargs)


def test_counts_only_markdown_matches_golden(golden):
    report = layer_report(TINY, None)
    golden("layers_counts.md", render_layers(report, Format.MARKDOWN))


def test_layer_counts_is_a_pure_frame():
    frame = layer_counts(TINY)
    assert len(frame) == 1 + 2 * 13 + 2 and frame["macs_fvcore"].isna().all()


# ---------------------------------------------------------------------------- the command

SMALL = ["--alpha", "0.25", "--resolution", "64", "--repeats", "3", "--warmup", "1", "--quiet"]


def test_command_json_with_timing(capsys):
    code, out, err = run(capsys, "layers", *SMALL, "--format", "json")
    assert code == 0, err
    document = json.loads(out)
    assert document["kind"] == "mnprof.layers"
    rows = pd.DataFrame(document["rows"])
    assert len(rows) == 29 and (rows["time_ms"] > 0).all()
    assert rows["macs_analytic"].sum() == analytic_count(TINY).macs
    assert isinstance(document["rows"][0]["macs_analytic"], int)


def test_command_no_timing_csv(capsys, tmp_path):
    out = tmp_path / "layers.csv"
    code, stdout, err = run(capsys, "layers", *SMALL, "--no-timing", "--out", str(out))
    assert code == 0 and stdout == "", err
    frame = pd.read_csv(out)
    assert frame["time_ms"].isna().all() and frame["macs_fvcore"].notna().all()
    assert frame["macs_analytic"].sum() == analytic_count(TINY).macs
    assert [p.name for p in tmp_path.iterdir()] == ["layers.csv"]


def test_command_table_has_a_total_row(capsys):
    code, out, err = run(capsys, "layers", *SMALL, "--no-timing", "--format", "table")
    assert code == 0, err
    assert "│ total" in out and "time: not measured" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--alpha", "0"], "alpha 0 is out of range"),
        (["--alpha", "1.0,0.5"], "--alpha '1.0,0.5' names 2 values; accepted: one number in (0, 4]"),
        (["--resolution", "16"], "resolution 16 is too small; accepted: integers in [32, 2048]"),
        (["--backend", "tvm"], "'tvm' is not one of 'eager', 'channels_last'"),
        (["--method", "perf"], "'perf' is not one of 'hooks', 'profiler'"),
        (["--allocator", "jemalloc"], "'jemalloc' is not one of 'steady', 'default'"),
        (["--threads", "0"], "--threads"),
        (["--repeats", "1"], "--repeats"),
        (["--out", "/nonexistent-dir/l.json"], "directory /nonexistent-dir does not exist"),
        (["--out", "{tmp}/file/l.json"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, tmp_path, args, message):
    (tmp_path / "file").write_text("")
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    code, out, err = run(capsys, "layers", "--no-timing", "--quiet", *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("mnprof: error: ")
    assert message in err


def test_bad_input_leaves_an_existing_output_untouched(capsys, tmp_path):
    out = tmp_path / "keep.json"
    out.write_text("precious")
    assert run(capsys, "layers", "--backend", "tvm", "--out", str(out))[0] == 2
    assert run(capsys, "layers", "--alpha", "0", "--out", str(out))[0] == 2
    assert out.read_text() == "precious" and [p.name for p in tmp_path.iterdir()] == ["keep.json"]
