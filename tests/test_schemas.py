"""The published JSON Schemas (mnprof/schemas/): valid schemas, satisfied by every document mnprof writes, and the
one gate every document mnprof reads passes first."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import jsonschema
import pytest

from mnprof.check import baseline_document
from mnprof.cli import main
from mnprof.files.schemas import SCHEMAS, SCHEMAS_DIR, schema, schema_problem

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "reports"


def run(capsys, *args: str) -> str:
    assert main(list(args)) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", SCHEMAS)
def test_each_schema_is_a_valid_draft_2020_12_schema_shipped_with_the_package(name):
    assert (SCHEMAS_DIR / f"{name}.schema.json").is_file()
    jsonschema.Draft202012Validator.check_schema(schema(name))
    assert schema(name)["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "schemas/*.schema.json" in package_data["mnprof"]


@pytest.mark.parametrize("name", SCHEMAS)
def test_each_schemas_id_and_title_name_the_version_its_documents_carry(name):
    """A versioned schema's ``$id`` ends in the ``schema_version`` it requires and its title says the same, so that a
    reader who keys on either finds the version the files hold (a bump that changed one of the three drifted)."""
    document = schema(name)
    version = document["properties"].get("schema_version", {}).get("const")
    if version is None:  # the settings schema: pyproject.toml's table carries no version
        assert document["$id"] == f"urn:mnprof:schema:{name}:1"
        return
    assert document["$id"] == f"urn:mnprof:schema:{name}:{version}"
    assert f"schema version {version}" in document["title"]


@pytest.mark.parametrize(("name", "path"), [("results", "results.json"), ("baseline", "baseline.json"),
                                            ("table", "table.json")])  # fmt: skip
def test_the_committed_reports_satisfy_their_schemas(name, path):
    if not (REPORTS / path).exists():
        pytest.skip(f"reports/{path} is not committed")
    assert schema_problem(json.loads((REPORTS / path).read_text()), name) is None


def test_the_repositorys_own_settings_satisfy_the_settings_schema():
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mnprof"]
    assert schema_problem(settings, "settings") is None


def test_every_json_view_satisfies_the_table_schema(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    grid = ["--alpha", "0.5", "--resolution", "96", "--format", "json", "-q"]
    for args in (
        ["table", "--no-timing", "--model", "mobilenetv1", "--model", "mobilenetv2", "--model",
         "tiny=tests.tiny_family:tiny", *grid],
        ["table", "--no-timing", "--view", "reconcile", *grid],
        ["table", "--no-timing", "--view", "counts", "--unit", "flops", *grid],
        ["layers", "--no-timing", "--model", "mobilenetv2", "--format", "json"],
        ["paper", "--table", "6,7", "--format", "json"],
    ):  # fmt: skip
        document = json.loads(run(capsys, *args))
        assert schema_problem(document, "table") is None, args


def test_a_timed_results_file_satisfies_the_results_schema(capsys, tmp_path):
    results = tmp_path / "r.json"
    run(capsys, "table", "--alpha", "0.25", "--resolution", "32", "--budget", "0.05", "--threads", "1",
        "--results", str(results), "-q")  # fmt: skip
    document = json.loads(results.read_text())
    assert schema_problem(document, "results") is None
    document["measurements"][0]["turn_sizes"] = [0]
    assert schema_problem(document, "results") == ("$.measurements[0].turn_sizes[0] is 0; accepted: a number >= 1")


def test_a_baseline_with_latency_satisfies_the_schema_and_a_missing_control_does_not():
    entry = {"control": "1.0-224", "latency_ms": 9.5, "control_latency_ms": 10.0, "relative": 0.95,
             "relative_ci_low": 0.93, "relative_ci_high": None, "passes": 12}  # fmt: skip
    latency = {"method": "relative-to-matched-control", "host_fingerprint": "abc", "threads": 2,
               "backend": "eager", "batch_size": 1, "entries": {"net@1.0-224": entry}}  # fmt: skip
    document = baseline_document({}, latency)
    assert schema_problem(document, "baseline") is None
    del entry["control"]
    assert schema_problem(document, "baseline") == (
        "$.latency.entries['net@1.0-224'] lacks control; accepted: an object with control, latency_ms, relative"
    )
    # an older baseline's absolute medians (no method) are still read, so that check --latency can refuse them
    older = {"host_fingerprint": "abc", "threads": 2, "entries": {"net@1.0-224": {"latency_ms_median": 3.0}}}
    assert schema_problem(baseline_document({}, older), "baseline") is None


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"alphas": [0]}, "$.alphas[0] is 0; accepted: a number > 0"),
        ({"resolutions": [64.0]}, "$.resolutions[0] is 64.0; accepted: an integer"),
        ({"families": {"tiny": "not a target"}}, '$.families.tiny is "not a target"; accepted: text matching'),
        ({"models": []}, "$.models is an array; accepted: at least 1 item(s)"),
        ({"tolerance": True}, "$.tolerance is true; accepted: a number or text"),
    ],
)
def test_settings_of_the_wrong_shape_are_named_by_path(settings, problem):
    assert schema_problem(settings, "settings").startswith(problem)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda c: c["analytic"].update(macs=-5), "counts.analytic.macs is -5; accepted: a number >= 0"),
        (lambda c: c["fvcore"].update(unsupported_ops=5), "counts.fvcore.unsupported_ops is 5; accepted: an object"),
        (lambda c: c.clear(), "counts lacks pytorch; accepted: an object with pytorch, fvcore, thop"),  # no bypass
        (lambda c: c["thop"].pop("macs"), "counts.thop lacks macs"),
    ],
)
def test_a_baseline_entry_cannot_be_emptied_or_mistyped(change, problem):
    document = json.loads((REPORTS / "baseline.json").read_text())
    change(next(iter(document["entries"].values()))["counts"])
    assert problem in schema_problem(document, "baseline")
