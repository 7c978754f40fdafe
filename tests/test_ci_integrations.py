"""mnprof where CI lives: defaults that work in a fresh project, JUnit XML from check, and the benchmark-tracking
formats of table (github-action-benchmark, Bencher), each read by its real client or against its documented shape."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import jsonschema
import pytest
from cli_run import ROOT, run
from junitparser import Failure, JUnitXml, Skipped

TINY = "net=tests.regression_models:tiny"
SMALL = ["--alpha", "1.0,0.5", "--resolution", "64,32", "--quiet"]


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mnprof: error: "), err
    assert "Traceback" not in err
    return lines[0]


# ------------------------------------------------------------------ defaults that work in a fresh project


@pytest.fixture
def fresh_project(tmp_path, monkeypatch) -> Path:
    """A user's project as it starts: a pyproject.toml with [tool.mnprof] naming its family, and no reports/."""
    monkeypatch.syspath_prepend(str(ROOT))  # the family lives in this repository's tests package
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "fresh"\n\n[tool.mnprof]\nmodels = ["net=tests.regression_models:tiny"]\n'
        "alphas = [1.0]\nresolutions = [32]\n",
        encoding="utf-8",
    )
    return tmp_path


def test_baseline_in_a_fresh_project_creates_its_default_directory(capsys, fresh_project):
    assert not (fresh_project / "reports").exists()
    code, _, err = run(capsys, "baseline", "--quiet")
    assert code == 0, err
    written = fresh_project / "reports" / "baseline.json"
    assert stat.S_ISREG(os.lstat(written).st_mode)
    assert os.listdir(fresh_project / "reports") == ["baseline.json"]  # no temporary file left beside it
    assert sorted(json.loads(written.read_text(encoding="utf-8"))["entries"]) == ["net@1.0-32"]
    code, out, err = run(capsys, "check", "--quiet")
    assert code == 0, err
    assert out.startswith("mnprof check passed: 1 configurations compared")


@pytest.mark.parametrize(
    ("settings", "args", "missing"),
    [
        ("", ["--out", "elsewhere/baseline.json"], "elsewhere"),  # named on the command line
        ('baseline = "ci/flops.json"\n', [], "ci"),  # named in [tool.mnprof]
    ],
)
def test_a_named_path_in_a_missing_directory_is_one_line_and_nothing_is_created(
    capsys, fresh_project, settings, args, missing
):
    with (fresh_project / "pyproject.toml").open("a", encoding="utf-8") as handle:
        handle.write(settings)
    code, out, err = run(capsys, "baseline", "--quiet", *args)
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert f"directory {missing} does not exist" in line and "accepted:" in line
    assert sorted(os.listdir(fresh_project)) == ["pyproject.toml"]


def test_the_default_directory_taken_by_a_file_is_one_line(capsys, fresh_project):
    (fresh_project / "reports").write_text("not a directory", encoding="utf-8")
    code, _, err = run(capsys, "baseline", "--quiet")
    assert code == 2
    assert "reports is not a directory" in one_error_line(err)
    assert (fresh_project / "reports").read_text(encoding="utf-8") == "not a directory"


# ------------------------------------------------------------------ JUnit XML, read by junitparser


@pytest.fixture
def tiny_baseline(tmp_path, capsys, monkeypatch) -> Path:
    monkeypatch.chdir(ROOT)
    path = tmp_path / "baseline.json"
    code, _, err = run(capsys, "baseline", "--model", TINY, *SMALL, "--out", str(path))
    assert code == 0, err
    return path


def _metrics_in(baseline: Path) -> int:
    """Test cases a check of every entry of ``baseline`` has: one per counter and metric, and per operator."""
    total = 0
    for entry in json.loads(baseline.read_text(encoding="utf-8"))["entries"].values():
        for values in entry["counts"].values():
            for metric, value in values.items():
                if metric != "unsupported_ops":
                    total += len(value) if isinstance(value, dict) else 1
    return total


def _junit(capsys, baseline: Path, factory: str, *extra: str, grid: list[str] = SMALL) -> tuple[int, JUnitXml, str]:
    code, out, err = run(
        capsys, "check", "--model", f"net=tests.regression_models:{factory}", *grid, "--baseline", str(baseline),
        "--format", "junit", *extra,
    )  # fmt: skip
    assert code in (0, 1), err
    return code, JUnitXml.fromstring(out), out


def _cases(xml: JUnitXml) -> list:
    return [case for suite in xml for case in suite]


def test_junit_of_an_unchanged_model_passes_every_metric_of_every_configuration(capsys, tiny_baseline):
    code, xml, _ = _junit(capsys, tiny_baseline, "tiny")
    assert code == 0
    cases = _cases(xml)
    assert len(cases) == _metrics_in(tiny_baseline) and xml.tests == len(cases)
    assert xml.failures == 0 and all(case.is_passed for case in cases)
    assert {case.classname for case in cases} == {"net@1.0-64", "net@1.0-32", "net@0.5-64", "net@0.5-32"}
    assert {"pytorch params", "fvcore macs", "fvcore macs[conv]", "analytic macs"} <= {case.name for case in cases}
    assert [suite.name for suite in xml] == ["mnprof check: net"]


def test_junit_names_each_regression_with_expected_got_and_delta(capsys, tiny_baseline):
    code, xml, _ = _junit(capsys, tiny_baseline, "tiny_bias")
    assert code == 1
    failed = [case for case in _cases(xml) if not case.is_passed]
    # the bias adds 16 + 32 params in each configuration (1.0) and 8 + 16 (0.5): pytorch, thop and analytic params
    assert xml.failures == len(failed) == 4 * 3 and xml.tests == _metrics_in(tiny_baseline)
    case = next(c for c in failed if (c.classname, c.name) == ("net@1.0-64", "pytorch params"))
    (failure,) = case.result
    assert isinstance(failure, Failure) and failure.type == "grew"
    baseline = json.loads(tiny_baseline.read_text(encoding="utf-8"))["entries"]["net@1.0-64"]
    before = baseline["counts"]["pytorch"]["params"]
    assert f"expected {before:,}, got {before + 48:,}" in failure.message
    assert "net@1.0-64 pytorch params" in failure.message and "delta +48" in failure.message


def test_junit_reports_a_configuration_not_in_the_baseline_as_skipped_and_strict_as_failed(capsys, tiny_baseline):
    more = ["--alpha", "1.0,0.5,0.75", *SMALL[2:]]
    _, xml, _ = _junit(capsys, tiny_baseline, "tiny", grid=more)
    skipped = [case for case in _cases(xml) if case.is_skipped]
    assert sorted((case.classname, case.name) for case in skipped) == [
        ("net@0.75-32", "configuration"),
        ("net@0.75-64", "configuration"),
    ]
    assert isinstance(skipped[0].result[0], Skipped) and xml.failures == 0
    code, xml, _ = _junit(capsys, tiny_baseline, "tiny", "--strict", grid=more)
    assert code == 1 and xml.failures == 2  # net@0.75-64 and net@0.75-32


# ------------------------------------------------------------------ benchmark-tracking formats, against their docs

# github-action-benchmark, "customSmallerIsBetter": a JSON array of objects with name, unit and value, and
# optionally range and extra (its README's "Examples" for custom benchmarks).
BENCHMARK_ACTION_SCHEMA = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "required": ["name", "unit", "value"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "unit": {"type": "string", "minLength": 1},
            "value": {"type": "number"},
            "range": {"type": "string"},
            "extra": {"type": "string"},
        },
    },
}

# Bencher Metric Format: the JSON Schema of its reference page (https://bencher.dev/bmf.json), with what the page
# says in words: benchmark names at most 1024 characters, measure slugs at most 64.
BMF_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema",
    "type": "object",
    "minProperties": 1,
    "propertyNames": {"minLength": 1, "maxLength": 1024},
    "patternProperties": {
        ".+": {
            "type": "object",
            "propertyNames": {"minLength": 1, "maxLength": 64},
            "patternProperties": {
                ".+": {
                    "type": "object",
                    "properties": {
                        "value": {"type": "number"},
                        "lower_value": {"type": "number"},
                        "upper_value": {"type": "number"},
                    },
                    "required": ["value"],
                    "additionalProperties": False,
                }
            },
        }
    },
}

GRID = ["--model", "tiny=tests.tiny_family:tiny", "--alpha", "1.0,0.5", "--resolution", "64", "--quiet"]


@pytest.fixture
def counted(capsys, monkeypatch) -> dict[str, dict]:
    """The table's own JSON rows: what the benchmark formats must carry, by configuration id."""
    monkeypatch.chdir(ROOT)
    code, out, err = run(capsys, "table", "--no-timing", *GRID, "--format", "json")
    assert code == 0, err
    return {row["id"]: row for row in json.loads(out)["rows"]}


def test_benchmark_action_format_has_the_documented_shape_and_the_exact_counts(capsys, tmp_path, counted):
    out = tmp_path / "bench.json"
    code, _, err = run(capsys, "table", "--no-timing", *GRID, "--format", "benchmark-action", "--out", str(out))
    assert code == 0, err
    document = json.loads(out.read_text(encoding="utf-8"))
    jsonschema.validate(document, BENCHMARK_ACTION_SCHEMA)
    values = {entry["name"]: (entry["value"], entry["unit"]) for entry in document}
    assert len(values) == len(document) == 2 * len(counted)  # params and MACs of each configuration, once
    for config, row in counted.items():
        assert values[f"{config} params"] == (row["params"], "params")
        assert values[f"{config} macs"] == (row["macs_analytic"], "MACs")


def test_bencher_format_has_the_documented_shape_and_the_exact_counts(capsys, tmp_path, counted):
    code, out, err = run(capsys, "table", "--no-timing", *GRID, "--format", "bencher", "--unit", "flops")
    assert code == 0, err
    document = json.loads(out)
    jsonschema.Draft7Validator(BMF_SCHEMA).validate(document)
    assert document == {
        config: {"params": {"value": row["params"]}, "flops": {"value": 2 * row["macs_analytic"]}}
        for config, row in counted.items()
    }


@pytest.mark.slow
def test_timed_benchmark_formats_carry_latency_in_each_services_unit(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    results, bencher = tmp_path / "results.json", tmp_path / "bmf.json"
    timed = ["--model", "tiny=tests.tiny_family:tiny", "--alpha", "1.0", "--resolution", "32", "--quiet"]
    code, _, err = run(capsys, "table", *timed, "--budget", "2", "--threads", "1", "--results", str(results),
                       "--format", "bencher", "--out", str(bencher))  # fmt: skip
    assert code == 0, err
    document = json.loads(bencher.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(BMF_SCHEMA).validate(document)
    row = json.loads(results.read_text(encoding="utf-8"))["measurements"][0]
    latency = document["tiny-1.0-32 (eager, batch 1, 1 threads)"]["latency"]  # Bencher's latency is in ns
    assert latency["value"] == pytest.approx(row["latency_ms_p5"] * 1e6)
    if row.get("latency_ms_ci_low") is not None:
        assert latency["lower_value"] <= latency["value"] <= latency["upper_value"]
    code, out, err = run(capsys, "table", *timed, "--from-results", str(results), "--format", "benchmark-action")
    assert code == 0, err
    action = json.loads(out)
    jsonschema.validate(action, BENCHMARK_ACTION_SCHEMA)
    (timing,) = [entry for entry in action if entry["unit"] == "ms"]
    assert timing["name"] == "tiny-1.0-32 latency (eager, batch 1, 1 threads)"
    assert timing["value"] == pytest.approx(row["latency_ms_p5"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "bencher", "--view", "reconcile"], "--format bencher reports the grid's counts"),
        (["--format", "benchmark-action", "--view", "paper"], "accepted with it: --view grid or counts"),
        (["--format", "bmf"], "'bmf' is not one of"),
    ],
)
def test_bad_benchmark_format_use_is_one_line_and_nothing_is_written(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "out.json"
    code, stdout, err = run(capsys, "table", "--no-timing", "--quiet", *args, "--out", str(out))
    assert code == 2 and stdout == ""
    assert message in one_error_line(err)
    assert not out.exists()
