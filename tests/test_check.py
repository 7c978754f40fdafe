from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_run import ROOT, run

from mnprof.check import (
    BASELINE_KIND,
    CheckSettings,
    ModelSpec,
    baseline_document,
    compare,
    compare_latency,
    load_settings,
    measure,
)
from mnprof.cli import main
from mnprof.errors import MnprofError

SMALL = ["--alpha", "1.0,0.5", "--resolution", "64,32", "--quiet"]
TINY = "net=tests.regression_models:tiny"


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # factories are imported relative to the working directory


@pytest.fixture
def tiny_baseline(tmp_path, capsys) -> Path:
    path = tmp_path / "baseline.json"
    code, _, err = run(capsys, "baseline", "--model", TINY, *SMALL, "--out", str(path))
    assert code == 0, err
    return path


def check(capsys, baseline: Path, factory: str, *extra: str) -> tuple[int, str, str]:
    return run(
        capsys,
        "check",
        "--model",
        f"net=tests.regression_models:{factory}",
        *SMALL,
        "--baseline",
        str(baseline),
        *extra,
    )


@pytest.mark.parametrize(
    ("factory", "counter", "metric"),
    [
        ("tiny_widened", "fvcore", "macs"),
        ("tiny_widened", "pytorch", "params"),
        ("tiny_extra_block", "fvcore", "macs[conv]"),
        ("tiny_extra_block", "thop", "params"),
        ("tiny_lost_stride", "fvcore", "macs[conv]"),
        ("tiny_lost_stride", "thop", "macs"),
        ("tiny_bias", "pytorch", "params"),
        ("tiny_classifier", "fvcore", "macs[linear]"),
        ("tiny_classifier", "pytorch", "params"),
    ],
)
def test_injected_regressions_are_caught_and_named(capsys, tiny_baseline, factory, counter, metric):
    code, out, _ = check(capsys, tiny_baseline, factory)
    assert code == 1
    failing = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert any(f"net@1.0-64 {counter} {metric}:" in line for line in failing), out
    assert "mnprof check FAILED" in out


def test_regression_line_names_baseline_now_delta_and_percent(capsys, tiny_baseline):
    code, out, _ = check(capsys, tiny_baseline, "tiny_bias", "--format", "json")
    assert code == 1
    document = json.loads(out)
    assert document["passed"] is False
    finding = next(f for f in document["findings"] if f["entry"] == "net@1.0-64" and f["counter"] == "pytorch")
    # the bias adds one parameter per output channel of the depthwise (16) and pointwise (32) convs
    assert (finding["metric"], finding["status"], finding["fails"]) == ("params", "grew", True)
    assert finding["now"] - finding["baseline"] == finding["delta"] == 16 + 32
    assert finding["percent"] == pytest.approx(48 / finding["baseline"] * 100)


@pytest.mark.slow
def test_unchanged_model_passes_twenty_runs_in_a_row(capsys, tiny_baseline):
    for _ in range(20):
        code, out, _ = check(capsys, tiny_baseline, "tiny")
        assert code == 0, out
        assert out.strip() == (
            "mnprof check passed: 4 configurations compared, tolerance 0%; 0 grew, 0 shrank, 0 added, 0 removed, "
            "0 newly uncounted"
        )


def test_shrinkage_passes_with_a_notice_and_fails_when_strict(capsys, tiny_baseline):
    code, out, _ = check(capsys, tiny_baseline, "tiny_narrowed")
    assert code == 0
    assert "shrank" in out and f"mnprof baseline --out {tiny_baseline}" in out
    assert check(capsys, tiny_baseline, "tiny_narrowed", "--strict")[0] == 1


def test_tolerance_allows_small_growth(capsys, tiny_baseline):
    code, out, _ = check(capsys, tiny_baseline, "tiny_bias", "--tolerance", "5%")
    assert code == 0, out  # 48 extra params on 34,216 is 0.14%
    assert check(capsys, tiny_baseline, "tiny_bias", "--tolerance", "0.1")[0] == 1


def test_added_and_removed_configurations_are_reported(capsys, tiny_baseline):
    code, out, _ = run(
        capsys,
        "check",
        "--model",
        TINY,
        "--alpha",
        "1.0,0.75",
        "--resolution",
        "64,32",
        "--quiet",
        "--baseline",
        str(tiny_baseline),
    )
    assert code == 0
    assert "net@0.5-64: configuration removed" in out and "net@0.75-64: configuration added" in out
    assert "2 added, 2 removed" in out
    assert (
        run(
            capsys,
            "check",
            "--model",
            TINY,
            "--alpha",
            "1.0,0.75",
            "--resolution",
            "64,32",
            "--quiet",
            "--baseline",
            str(tiny_baseline),
            "--strict",
        )[0]
        == 1
    )


def test_github_and_markdown_formats(capsys, tiny_baseline):
    code, out, _ = check(capsys, tiny_baseline, "tiny_widened", "--format", "github")
    assert code == 1
    errors = [line for line in out.splitlines() if line.startswith("::error title=")]
    assert errors and all("::" in line.split("title=", 1)[1] for line in errors)
    assert any("net@1.0-64 fvcore macs: " in line for line in errors)
    code, out, _ = check(capsys, tiny_baseline, "tiny_widened", "--format", "markdown")
    assert out.startswith("### :x: mnprof check FAILED")
    assert "| FAIL | `net@1.0-64` | fvcore | `macs` |" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist; regenerate it with: mnprof baseline --out"),
        ("{not json", "is corrupt (invalid JSON at line 1)"),
        ('{"kind": "something.else", "schema_version": 1}', "is not an mnprof baseline"),
        (json.dumps({"kind": BASELINE_KIND, "schema_version": 99, "entries": {}}), "schema version 99"),
        (
            json.dumps({"kind": BASELINE_KIND, "schema_version": 1, "entries": []}),
            "$.entries is an array; accepted: an object",
        ),
    ],
)
def test_unusable_baselines_exit_2_with_one_line(capsys, tmp_path, content, message):
    path = tmp_path / "baseline.json"
    if content is not None:
        path.write_text(content)
    code, out, err = run(capsys, "check", "--model", TINY, *SMALL, "--baseline", str(path))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err and str(path) in err


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tests.no_such_module:tiny", "cannot import tests.no_such_module: ModuleNotFoundError"),
        ("tests.regression_models:missing", "has no callable 'missing'"),
        ("tests.regression_models:NOT_CALLABLE", "has no callable 'NOT_CALLABLE'"),
        ("tests.regression_models:raising", "factory raised RuntimeError: weights server unreachable"),
        ("tests.regression_models:not_a_module", "returned dict, not a torch.nn.Module"),
        (
            "no-colon",
            "unknown model 'no-colon'; accepted: mobilenetv1, mobilenetv2, mobilenetv3-large, mobilenetv3-small, a",
        ),
        ("pkg.module:", "is not a model spec"),
    ],
)
def test_bad_models_exit_2_naming_the_spec(capsys, tmp_path, spec, message):
    code, _, err = run(capsys, "baseline", "--model", spec, *SMALL, "--out", str(tmp_path / "b.json"))
    assert code == 2
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "b.json").exists()


def test_bad_tolerance_exit_2(capsys, tiny_baseline):
    code, _, err = check(capsys, tiny_baseline, "tiny", "--tolerance", "-1")
    assert code == 2 and "tolerance '-1' is out of range" in err


def test_pyproject_settings_and_override(tmp_path, capsys):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        "[tool.mnprof]\n"
        f'models = ["{TINY}"]\nalphas = [1.0]\nresolutions = [64]\n'
        f'baseline = "{tmp_path / "b.json"}"\ntolerance = "5%"\n'
    )
    settings = load_settings(pyproject)
    assert settings.models == (ModelSpec("net", "tests.regression_models:tiny"),)
    assert settings.tolerance_pct == 5.0 and settings.resolutions == (64,)
    assert run(capsys, "baseline", "--config", str(pyproject), "--quiet")[0] == 0
    assert json.loads((tmp_path / "b.json").read_text())["entries"].keys() == {"net@1.0-64"}
    # the tolerance from pyproject lets the bias through; --tolerance on the command line overrides it
    bias = "net=tests.regression_models:tiny_bias"
    assert run(capsys, "check", "--config", str(pyproject), "--model", bias, "--quiet")[0] == 0
    assert run(capsys, "check", "--config", str(pyproject), "--model", bias, "--tolerance", "0", "--quiet")[0] == 1


def test_pyproject_unknown_key_is_rejected(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text("[tool.mnprof]\nthreshold = 3\n")
    with pytest.raises(Exception, match="unknown key 'threshold'; accepted: only models, families, alphas"):
        load_settings(pyproject)


def test_builtin_entries_carry_analytic_counts_and_fvcore_operators():
    entries = measure(CheckSettings(alphas=(1.0,), resolutions=(224,)))
    counts = entries["mobilenetv1@1.0-224"]["counts"]
    # activations: conv and FC outputs of one image, 401,408 (stem) + 4,641,280 (13 blocks) + 1,000 (FC);
    # peak: block 1's pointwise conv holds its 32x112x112 input and 64x112x112 output, 1,204,224 floats
    assert counts["analytic"] == {
        "macs": 568_740_352,
        "params": 4_231_976,
        "activations": 5_043_688,
        "peak_activation_bytes": 4 * 1_204_224,
    }
    assert counts["fvcore"]["macs"] == 578_875_904
    assert counts["fvcore"]["macs_by_operator"]["conv"] == 567_716_352
    document = baseline_document(entries)
    assert document["provenance"]["torch"] and document["schema_version"] == 1


def test_newly_uncounted_operator_fails():
    before = {"m@1.0-64": {"counts": {"fvcore": {"macs": 10, "unsupported_ops": {}}}}}
    after = {"m@1.0-64": {"counts": {"fvcore": {"macs": 10, "unsupported_ops": {"aten::einsum": 2}}}}}
    result = compare(before, after)
    assert result.failed and result.findings[0].status == "uncounted"


@pytest.mark.slow
def test_committed_baseline_matches_this_code():
    """reports/baseline.json is generated by `mnprof baseline` and must match what this code counts."""
    document = json.loads((ROOT / "reports" / "baseline.json").read_text())
    result = compare(document["entries"], measure(CheckSettings()))
    assert not result.findings, [f"{f.entry} {f.counter} {f.metric} {f.status}" for f in result.findings]


def test_latency_is_not_recorded_or_checked_by_default(tiny_baseline):
    assert "latency" not in json.loads(tiny_baseline.read_text())


def test_latency_tolerance_needs_a_latency_baseline(capsys, tiny_baseline):
    code, _, err = check(capsys, tiny_baseline, "tiny", "--latency-tolerance", "25%")
    assert code == 2 and "has no latency; record one here with: mnprof baseline --latency" in err


@pytest.mark.slow
def test_latency_from_another_host_is_refused(capsys, tmp_path):
    path = tmp_path / "baseline.json"
    args = ["--model", TINY, "--alpha", "0.5", "--resolution", "32", "--quiet"]
    assert run(capsys, "baseline", *args, "--latency", "--threads", "1", "--out", str(path))[0] == 0
    document = json.loads(path.read_text())
    latency = document["latency"]
    assert latency["method"] == "relative-to-matched-control"
    entry = latency["entries"]["net@0.5-32"]
    # the tiny net (about 0.2 MMACs at 32 pixels) gets the smallest MobileNetV1 at 32 pixels as its control
    assert entry["control"] == "control@mobilenetv1-0.25-32"
    assert entry["relative"] > 0 and entry["latency_ms"] > 0 and entry["passes"] >= 1
    if entry["relative_ci_low"] is not None:
        assert entry["relative_ci_low"] <= entry["relative"] <= entry["relative_ci_high"]
    assert run(capsys, "check", *args, "--baseline", str(path), "--latency-tolerance", "10000%")[0] == 0
    document["latency"]["host_fingerprint"] = "0123456789abcdef"
    path.write_text(json.dumps(document))
    code, _, err = run(capsys, "check", *args, "--baseline", str(path), "--latency-tolerance", "25%")
    assert code == 2 and "measured on another host (fingerprint 0123456789abcdef" in err


def latency_section(relative: float, low: float | None, high: float | None, control: str = "c") -> dict:
    entry = {"latency_ms": 5.0, "relative": relative, "relative_ci_low": low, "relative_ci_high": high,
             "control": control}  # fmt: skip
    return {"method": "relative-to-matched-control", "host_fingerprint": "h", "entries": {"m@1.0-64": entry}}


def test_slower_relative_latency_fails_only_beyond_tolerance_and_beyond_both_runs_spread():
    baseline = latency_section(0.50, 0.49, 0.51)
    slower = latency_section(0.60, 0.58, 0.62)  # +20%; standard errors about 0.005 and 0.010: z about 9
    findings, compared = compare_latency(baseline, slower, 10.0, Path("b.json"))
    assert [f.status for f in findings] == ["slower"]
    assert compared["m@1.0-64"]["change_pct"] == pytest.approx(20.0) and compared["m@1.0-64"]["z"] > 8
    assert compare_latency(baseline, slower, 25.0, Path("b.json"))[0] == []  # within the tolerance
    spread = latency_section(0.60, 0.40, 0.80)  # +20%, but this run's interval is +-0.2: z below 1.96
    assert compare_latency(baseline, spread, 10.0, Path("b.json"))[0] == []
    other_control = latency_section(0.60, 0.58, 0.62, control="d")  # another control: nothing to compare
    assert compare_latency(baseline, other_control, 10.0, Path("b.json")) == ([], {})
    assert compare({}, {}, extra=compare_latency(baseline, slower, 10.0, Path("b.json"))[0]).failed


def test_a_baseline_with_the_old_absolute_latency_is_refused_with_the_command_that_records_it():
    old = {"host_fingerprint": "h", "entries": {"m@1.0-64": {"latency_ms_median": 10.0}}}
    with pytest.raises(MnprofError, match="recorded by an older mnprof .* mnprof baseline --latency --out b.json"):
        compare_latency(old, latency_section(0.5, 0.49, 0.51), 10.0, Path("b.json"))


def test_the_control_is_mnprofs_mobilenetv1_of_the_closest_macs_at_the_entrys_resolution():
    from mnprof.check.latency import control_for
    from mnprof.counting.analytic import analytic_count
    from mnprof.model.config import Family, ModelConfig

    v2 = analytic_count(ModelConfig(1.0, 224, family=Family.MOBILENETV2)).macs  # 300 MMACs
    assert control_for(224, v2).id == "0.75-224"  # 325 MMACs: closer (in ratio) than 1.0's 569 or 0.5's 150
    assert control_for(160, 10**12).id == "1.0-160" and control_for(160, 1).id == "0.25-160"
    assert control_for(128, None).id == "1.0-128"


def test_a_factory_may_take_the_resolution(tmp_path, capsys):
    path = tmp_path / "b.json"
    spec = "t=tests.regression_models:tiny_at"
    assert main(["baseline", "-q", "--model", spec, "--alpha", "1.0", "--resolution", "32,64", "--out", str(path)]) == 0
    entries = json.loads(path.read_text())["entries"]
    small, large = (
        entries["t@1.0-32"]["counts"]["pytorch"]["params"],
        entries["t@1.0-64"]["counts"]["pytorch"]["params"],
    )
    assert small < large  # built once per resolution: the 64-pixel network is wider
    capsys.readouterr()
    assert (
        main(["check", "-q", "--model", spec, "--alpha", "1.0", "--resolution", "32,64", "--baseline", str(path)]) == 0
    )


def test_activations_and_peak_memory_are_guarded_and_an_older_baseline_only_gets_notices():
    entry = {"counts": {"analytic": {"macs": 10, "params": 5, "activations": 100, "peak_activation_bytes": 400}}}
    grown = {"counts": {"analytic": {"macs": 10, "params": 5, "activations": 100, "peak_activation_bytes": 480}}}
    result = compare({"m@1.0-64": entry}, {"m@1.0-64": grown}, tolerance_pct=10)
    assert result.failed and [(f.metric, f.status) for f in result.failures] == [("peak_activation_bytes", "grew")]
    older = {"counts": {"analytic": {"macs": 10, "params": 5}}}  # recorded before these metrics existed
    result = compare({"m@1.0-64": older}, {"m@1.0-64": entry})
    assert not result.failed and {f.status for f in result.findings} == {"added"}
    assert compare({"m@1.0-64": older}, {"m@1.0-64": entry}, strict=True).failed
