"""User families and the family registry: `--model` in every command, and the traced count as the layer plan's
independent witness."""

from __future__ import annotations

import csv
import io
import json

import pytest
from cli_run import ROOT, run

from mnprof.counting.analytic import ParamConvention, analytic_count
from mnprof.counting.count import count
from mnprof.counting.traced import traced_count
from mnprof.errors import MnprofError
from mnprof.model import families
from mnprof.model.arch import Activation, LayerKind
from mnprof.model.config import Family, ModelConfig, UserFamily, family_grid
from mnprof.model.networks import build_model
from mnprof.timing.layers import LayerTimingSettings, time_layers

TINY = "tiny=tests.tiny_family:tiny"
ONE = ["--alpha", "1.0", "--resolution", "224"]


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # factories are imported relative to the working directory


def structure(count) -> dict:
    """Everything the reconciliation predicts from, and the per-layer MACs in order."""
    kinds = [layer.spec.kind for layer in count.layers]
    return {
        "macs": count.macs,
        "params": count.params(ParamConvention.PYTORCH),
        "params_paper": count.params(ParamConvention.PAPER),
        "activations": count.activations,
        "batch_norm_elements": count.batch_norm_elements,
        "pool": (count.pool_in_elements, count.pool_out_elements),
        "adds": kinds.count(LayerKind.ADD),
        "relu6": sum(
            1 for layer in count.layers if layer.spec.batch_norm and layer.spec.activation is Activation.RELU6
        ),
        "activations_by_kind": {
            activation: sum(1 for layer in count.layers if layer.spec.activation is activation)
            for activation in (Activation.HARDSWISH, Activation.HARDSIGMOID)
        },  # MobileNetV3's (fvcore lists their calls)
        "layer_macs": [layer.macs for layer in count.layers if layer.macs],
        "kinds": [kind for kind in kinds if kind is not LayerKind.ADD],
    }


WITNESSED = [
    *family_grid(Family.MOBILENETV1),
    *family_grid(Family.MOBILENETV2),
    *family_grid(Family.MOBILENETV3_LARGE),
    *family_grid(Family.MOBILENETV3_SMALL),
    *(ModelConfig(1.0, 224, variant=v) for v in ("full", "shallow", "seed")),
    ModelConfig(0.5, 160, rounding="div8"),
    ModelConfig(0.75, 128, num_classes=10),
]


@pytest.mark.parametrize("config", WITNESSED, ids=str)
def test_the_traced_count_equals_the_layer_plan_exactly(config):
    # Two independent derivations: the plan is shape arithmetic from the paper's tables; the trace reads the built
    # modules' shapes on the meta device. Every quantity the reconciliation predicts from must agree.
    assert structure(traced_count(build_model(config), config)) == structure(analytic_count(config))


def test_a_user_family_is_counted_exactly_and_every_counter_is_explained():
    config = ModelConfig(1.0, 224, family=families.resolve(TINY))
    report = count(config)
    # by hand, one 224x224 image: stem 3x3 s2 3->16 at 112; expand 1x1 16->64, dw 3x3 64, project 1x1 64->16, all at
    # 112; dw 3x3 s2 16 at 56; pw 1x1 16->32 at 56; FC 32->1000
    layers = [
        112 * 112 * 9 * 3 * 16,
        112 * 112 * 16 * 64,
        112 * 112 * 9 * 64,
        112 * 112 * 64 * 16,
        56 * 56 * 9 * 16,
        56 * 56 * 16 * 32,
        32 * 1000,
    ]
    assert [layer.macs for layer in report.analytic.layers if layer.macs] == layers
    assert report.analytic.macs == sum(layers) == 40_423_680
    assert report.analytic.params(ParamConvention.PAPER) == 432 + 1024 + 576 + 1024 + 144 + 512 + 33_000
    assert report.params_model == report.analytic.params() == 37_128  # + gamma and beta of 16+64+64+16+16+32 channels
    assert (
        report.analytic.activations
        == 16 * 112 * 112 + 64 * 112 * 112 * 2 + 16 * 112 * 112 + 16 * 56 * 56 + 32 * 56 * 56 + 1000
    )
    assert report.shapes.macs == report.analytic.macs
    for reconciliation in report.reconciliations:
        assert reconciliation.unexplained == 0, reconciliation.explain()
        assert reconciliation.in_analytic_counted == report.analytic.macs
    skipped = {a.operator: a.rule for a in report.fvcore_reconciliation.attributions if a.rule.startswith("skipped")}
    assert skipped["aten::add"].endswith("1 calls, as the plan predicts")  # the residual add, traced
    assert skipped["aten::hardtanh_"].endswith("5 calls, as the plan predicts")  # ReLU6 after 5 of 6 BatchNorms
    row = report.row()
    assert (row["analytic_source"], row["params_tfslim"], row["peak_activation_bytes"]) == ("traced", None, None)


def test_families_resolve_by_name_spec_pyproject_and_entry_point(tmp_path, monkeypatch):
    assert families.resolve("mobilenetv2") is Family.MOBILENETV2
    spec = families.resolve(TINY)
    assert (str(spec), spec.target) == ("tiny", "tests.tiny_family:tiny")
    assert str(families.resolve("tests.tiny_family:tiny")) == "tests.tiny_family:tiny"  # the name defaults to it
    declared = families.declared_families({"families": {"small": "tests.tiny_family:tiny_at"}})
    assert families.resolve("small", declared).target == "tests.tiny_family:tiny_at"
    # an installed package registers a family in the mnprof.models entry-point group
    dist = tmp_path / "mnprof_plugin_example-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mnprof-plugin-example\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[mnprof.models]\nplugged = tests.tiny_family:tiny\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert families.resolve("plugged", {}).target == "tests.tiny_family:tiny"
    with pytest.raises(
        MnprofError,
        match="unknown model 'nope'; accepted: mobilenetv1, mobilenetv2, mobilenetv3-large, mobilenetv3-small, a",
    ):
        families.resolve("nope", {})


def test_a_user_configuration_is_its_own_family():
    family = UserFamily("tiny", "tests.tiny_family:tiny")
    config = ModelConfig(0.5, 96, family=family)
    assert (config.id, config.builtin, config.columns()["family"]) == ("tiny-0.5-96", False, "tiny")
    assert [c.id for c in family_grid(family)][:2] == ["tiny-1.0-224", "tiny-1.0-192"]  # MobileNetV1's grid
    with pytest.raises(MnprofError, match="model tiny builds its own channels"):
        ModelConfig(1.0, 224, variant="full", family=family)
    with pytest.raises(MnprofError, match="model name 'mobilenetv1' is invalid"):
        UserFamily("mobilenetv1", "tests.tiny_family:tiny")
    with pytest.raises(MnprofError, match="only its name is known here"):
        build_model(ModelConfig(1.0, 224, family=UserFamily("tiny")))


def test_table_counts_a_user_family_beside_mobilenetv1(capsys):
    code, out, err = run(capsys, "table", "-q", "--no-timing", "--model", TINY, "--model", "mobilenetv1",
                         "--alpha", "1.0,0.5", "--resolution", "224,96", "--format", "json")  # fmt: skip
    assert code == 0, err
    rows = {row["id"]: row for row in json.loads(out)["rows"]}
    assert set(rows) == {f"{p}{a}-{r}" for p in ("tiny-", "") for a in ("1.0", "0.5") for r in (224, 96)}
    assert rows["tiny-1.0-224"]["macs_analytic"] == 40_423_680
    assert rows["tiny-1.0-224"]["analytic_source"] == "traced" and rows["1.0-224"]["analytic_source"] == "plan"
    assert all(row["macs_fvcore_unexplained"] == row["macs_thop_unexplained"] == 0 for row in rows.values())
    assert rows["tiny-0.5-96"]["published_top1_tfslim"] is None


@pytest.mark.slow
def test_every_command_takes_a_user_family(capsys, tmp_path):
    results, page = tmp_path / "results.json", tmp_path / "figures.html"
    timed = ["--budget", "0.05", "--threads", "1", "--results", str(results), "--format", "json", "-q"]
    code, out, err = run(capsys, "table", "--model", TINY, "--alpha", "0.5", "--resolution", "96,64", *timed)
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert {row["id"] for row in rows} == {"tiny-0.5-96", "tiny-0.5-64"} and all(row["latency_ms"] > 0 for row in rows)

    code, out, err = run(capsys, "layers", "--model", TINY, "--alpha", "0.5", "--resolution", "96", "--repeats", "3",
                         "--warmup", "0", "--budget", "0.05", "--format", "json", "-q")  # fmt: skip
    assert code == 0, err
    layers = json.loads(out)["rows"]
    assert [row["layer"] for row in layers][:5] == ["stem.0", "residual.expand.0", "residual.dw.0",
                                                    "residual.project.0", "add.0"]  # fmt: skip
    assert (
        sum(row["macs_analytic"] for row in layers)
        == next(r for r in rows if r["id"] == "tiny-0.5-96")["macs_analytic"]
    )
    assert all(row["time_ms"] > 0 for row in layers if row["kind"] != "add")

    code, _, err = run(capsys, "plot", "--results", str(results), "--out", str(page), "-q")
    assert code == 2 and "model tiny: only its name is known here" in err and not page.exists()
    code, _, err = run(capsys, "plot", "--results", str(results), "--model", TINY, "--out", str(page), "-q")
    assert code == 0, err
    assert "Measured latency vs Mult-Adds" in page.read_text() and "Pareto" not in page.read_text()

    code, _, err = run(capsys, "paper", "--model", TINY)
    assert code == 2 and err.count("\n") == 1 and "mnprof has no published numbers for tiny" in err

    code, _, err = run(capsys, "report", "--no-timing", "-q", "--out", str(tmp_path / "reports"), "--model", TINY)
    assert code == 0, err
    written = sorted(path.name for path in (tmp_path / "reports").iterdir())
    assert "layers-tiny-1.0-224-counts.md" in written and "table.json" in written
    entries = json.loads((tmp_path / "reports" / "baseline.json").read_text())["entries"]
    assert len(entries) == 16 and entries["tiny@1.0-224"]["counts"]["analytic"]["macs"] == 40_423_680

    baseline = tmp_path / "baseline.json"
    small = ["--alpha", "0.5", "--resolution", "64", "-q"]
    assert run(capsys, "baseline", "--model", TINY, *small, "--out", str(baseline))[0] == 0
    code, out, err = run(capsys, "check", "--model", TINY, *small, "--baseline", str(baseline))
    assert code == 0, err


def test_a_family_declared_in_pyproject_works_by_name(capsys, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.mnprof.families]\nsmall = "tests.tiny_family:tiny_at"\n')
    code, out, err = run(capsys, "table", "-q", "--no-timing", "--model", "small", "--alpha", "1.0",
                         "--resolution", "64,32", "--format", "json")  # fmt: skip
    assert code == 0, err
    rows = json.loads(out)["rows"]
    # tiny_at takes the resolution: its classifier's input grows with it, so the two are different models
    assert [row["id"] for row in rows] == ["small-1.0-64", "small-1.0-32"]
    assert rows[0]["params"] - rows[1]["params"] == 1000  # one more classifier input of 1000 weights
    code, _, err = run(capsys, "baseline", "--model", "small", "--alpha", "1.0", "--resolution", "64", "-q",
                       "--out", str(tmp_path / "b.json"))  # fmt: skip
    assert code == 0, err
    assert list(json.loads((tmp_path / "b.json").read_text())["entries"]) == ["small@1.0-64"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["table", "--no-timing", "--model", "nope"], "unknown model 'nope'; accepted: mobilenetv1, mobilenetv2"),
        (["table", "--no-timing", "--model", "tests.no_such_module:f"], "cannot import tests.no_such_module"),
        (["layers", "--no-timing", "--model", "tests.regression_models:raising"], "factory raised RuntimeError"),
        (["table", "--no-timing", "--model", "tests.regression_models:not_a_module"], "returned dict, not a torch"),
        (["table", "--no-timing", "--model", "tests.tiny_family:only_224", "--resolution", "128"],
         "model tests.tiny_family:only_224 at tests.tiny_family:only_224-1.0-128: forward failed: RuntimeError"),
        (["table", "--no-timing", "--model", "tests.tiny_family:no_conv"], "no nn.Conv2d or nn.Linear module ran"),
        (["table", "--no-timing", "--model", TINY, "--variant", "full"], "model tiny builds its own channels"),
        (["table", "--no-timing", "--model", TINY, "--model", "tiny=tests.tiny_family:tiny_at"],
         "--model names tiny twice"),
        (["layers", "--model", TINY, "--method", "profiler"], "accepted with tiny: --method hooks"),
        (["report", "--no-timing", "--model", "a b=tests.tiny_family:tiny"], "model name 'a b' is invalid"),
        (["table", "--no-timing", "--model", "=tests.tiny_family:tiny"], "has an empty name before '='"),
    ],
)  # fmt: skip
def test_bad_families_are_one_line_exit_2_and_nothing_is_written(capsys, tmp_path, args, message):
    out = tmp_path / ("reports" if args[0] == "report" else "out.json")
    code, stdout, err = run(capsys, *args, "--out", str(out))
    assert code == 2 and stdout == "" and err.count("\n") == 1 and message in err and "Traceback" not in err, err
    assert not out.exists()


def test_the_readmes_user_family_example_is_what_the_command_prints(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    command = "mnprof table --no-timing --model tiny=tests.tiny_family:tiny --alpha 1.0,0.5 --resolution 224,128"
    code, out, _ = run(capsys, *command.split()[1:])
    assert code == 0
    assert f"$ {command}\n{out}```" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_a_shared_module_is_one_layer_per_call_and_its_weights_count_once(capsys):
    config = ModelConfig(1.0, 64, family=families.resolve("tests.tiny_family:shared"))
    report = count(config)
    names = [layer.spec.name for layer in report.analytic.layers]
    assert names == ["stem.0", "dw.0", "dw.0#2", "pool", "fc"]
    assert report.analytic.params() == report.params_model  # the shared unit's weights and BatchNorm once
    assert report.analytic.macs == 32 * 32 * 27 * 16 + 2 * 32 * 32 * 9 * 16 + 16 * 1000
    assert all(reconciliation.unexplained == 0 for reconciliation in report.reconciliations)
    code, out, err = run(capsys, "layers", "--model", "tests.tiny_family:shared", "--alpha", "1.0", "--resolution",
                         "64", "--repeats", "5", "--warmup", "0", "--format", "json", "-q")  # fmt: skip
    assert code == 0, err
    rows = {row["layer"]: row for row in json.loads(out)["rows"]}
    assert rows["dw.0"]["macs_fvcore"] is None and rows["stem.0"]["macs_fvcore"] == rows["stem.0"]["macs_analytic"]
    assert rows["dw.0"]["time_ms"] > 0 and rows["dw.0#2"]["time_ms"] > 0  # each call timed into its own layer
    times = time_layers(config, LayerTimingSettings(repeats=4, warmup=0, budget_s=10.0, threads=1))
    assert len(times.op_ns["dw.0"]) == len(times.op_ns["dw.0#2"]) == len(times.op_ns["stem.0"]) == 4


def test_an_invalid_user_code_time_limit_is_one_line(capsys, tmp_path, monkeypatch):
    """(The limit itself is the mnprof process's: tests/test_boundary.py.)"""
    monkeypatch.setenv("MNPROF_USER_CODE_TIMEOUT", "never")
    code, _, err = run(capsys, "table", "--no-timing", "--model", TINY, "--out", str(tmp_path / "table.json"))
    assert code == 2 and "TIMEOUT='never' is invalid; accepted: a number of seconds in (0, 86400]" in err


def test_a_declared_name_with_a_colon_is_refused_it_would_read_as_a_factory():
    with pytest.raises(MnprofError, match="name 'a:b' has a ':'; accepted: letters, digits and _ . -"):
        families.declared_families({"families": {"a:b": "tests.tiny_family:tiny"}})


@pytest.mark.parametrize(
    ("factory", "extra", "message"),
    [
        ("raises_base", ["--no-timing"], "factory raised Boom: custom BaseException"),
        ("train_raises", ["--no-timing"], "factory raised RuntimeError: train() overridden to raise"),
        ("batch_of_one", ["--budget", "0.05"], "calibration failed: RuntimeError: refuses a batch of more than one"),
    ],
)
def test_what_a_users_model_raises_anywhere_is_one_line(capsys, tmp_path, factory, extra, message):
    results = tmp_path / "r.json"
    args = ["--model", f"tests.tiny_family:{factory}", "--alpha", "0.25", "--resolution", "32", "--threads", "1"]
    code, stdout, err = run(capsys, "table", *args, "--results", str(results), "-q", *extra)
    assert code == 2 and stdout == "" and err.count("\n") == 1 and message in err, err


def test_a_model_without_affine_batchnorm_is_timed(capsys, tmp_path):
    args = ["--model", "tests.tiny_family:bn_no_affine", "--alpha", "0.25", "--resolution", "32", "--threads", "1"]
    code, out, err = run(capsys, "table", *args, "--budget", "0.05", "--results", str(tmp_path / "r.json"),
                         "--format", "json", "-q")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["rows"][0]["latency_ms"] > 0


def test_v2_is_not_a_user_familys_name_it_would_collide_with_mobilenetv2_ids():
    with pytest.raises(MnprofError, match="model name 'v2' is invalid"):
        UserFamily("v2", "tests.tiny_family:tiny")


@pytest.mark.parametrize("name", ["", " tiny"])
def test_a_declared_name_that_is_empty_or_padded_is_refused(name):
    with pytest.raises(MnprofError, match="accepted: a name without spaces"):
        families.declared_families({"families": {name: "tests.tiny_family:tiny"}})


def test_layers_show_a_kernel_and_shapes_that_are_not_square(capsys):
    code, out, err = run(capsys, "layers", "--model", "ns=tests.tiny_family:nonsquare", "--alpha", "1.0",
                         "--resolution", "64", "--no-timing", "--format", "markdown")  # fmt: skip
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith("| 0 "))
    assert "| 64x64x3 | 32x64x8 | 1x7 s2x1 |" in row
    pool = next(line for line in out.splitlines() if line.startswith("| 2 "))
    assert "| 32x64x8 | 1x1x8 | 32x64 s1 |" in pool  # a global pool's window is its whole input


def test_the_standard_conv_a_separable_pair_replaces_keeps_its_shape(capsys):
    code, out, err = run(capsys, "layers", "--model", "ns=tests.tiny_family:nonsquare_separable", "--alpha", "1.0",
                         "--resolution", "64", "--no-timing", "--format", "csv")  # fmt: skip
    assert code == 0, err
    rows = {row["layer"]: row for row in csv.DictReader(io.StringIO(out))}
    pointwise = rows["2"]
    # a 3x1 standard conv from 8 to 16 channels over the 32x64 output: Ho Wo Fh Fw N M
    assert int(pointwise["macs_standard"]) == 32 * 64 * 3 * 1 * 8 * 16
    assert int(pointwise["params_standard"]) == 3 * 1 * 8 * 16
    assert float(pointwise["seed_formula_ratio"]) == pytest.approx(1 / 16 + 1 / 3)
    assert float(pointwise["separable_to_standard"]) == pytest.approx(1 / 16 + 1 / 3)


def test_a_forward_that_reads_values_is_traced_on_the_cpu_instead(capsys):
    """The meta device has no values: a model whose forward branches on one is traced on a CPU copy."""
    code, out, err = run(capsys, "table", "--no-timing", "--model", "v=tests.tiny_family:valued", "--alpha", "1.0",
                         "--resolution", "32", "--format", "json")  # fmt: skip
    assert code == 0, err
    (row,) = json.loads(out)["rows"]
    assert row["analytic_source"] == "traced"
    assert row["macs_analytic"] == 32 * 32 * 3 * 3 * 3 * 8 + 8 * 1000 == row["macs_fvcore"]
