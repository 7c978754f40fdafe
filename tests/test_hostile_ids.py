"""Ids are unique: two configurations never share a table row, a results row or a baseline entry.

An id used to keep six significant digits of alpha, so ``--alpha 0.5,0.4999999`` built two different models
under the one id ``0.5-64``: one baseline entry stood for both, and ``check`` passed a +220% regression.
"""

from __future__ import annotations

import json

import pytest
from cli_run import ROOT, run
from factories import timing_record

from mnprof.errors import MnprofError
from mnprof.model.config import ModelConfig, UserFamily, format_alpha
from mnprof.timing.records import TimingRecord

NEAR = "0.5,0.4999999"


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # factories are imported relative to the working directory


@pytest.mark.parametrize(
    ("a", "b"),
    [(0.5, 0.4999999), (0.5, 0.5000000000000001), (1 / 3, 0.333333), (1.0, 1.0000001), (1e-5, 1.00001e-5)],
)
def test_different_alphas_have_different_ids_and_keys(a, b):
    family = UserFamily("F", "m:f")
    for kwargs in ({}, {"family": family}, {"num_classes": 10}):
        assert ModelConfig(a, 64, **kwargs).id != ModelConfig(b, 64, **kwargs).id
    assert format_alpha(a) != format_alpha(b)
    assert float(format_alpha(a)) == a  # the id reads back as the alpha it was made of


@pytest.mark.parametrize(("alpha", "text"), [(1.0, "1.0"), (0.75, "0.75"), (0.5, "0.5"), (0.25, "0.25"), (1.4, "1.4"),
                                             (0.35, "0.35"), (4, "4.0"), (1e-5, "1e-05")])  # fmt: skip
def test_the_papers_alphas_keep_their_familiar_ids(alpha, text):
    assert format_alpha(alpha) == text
    assert ModelConfig(alpha, 224).id == f"{text}-224"


def test_two_near_alphas_are_two_table_rows(capsys):
    code, out, err = run(capsys, "table", "--no-timing", "--model", "net=tests.regression_models:tiny",
                         "--alpha", NEAR, "--resolution", "64", "--format", "json")  # fmt: skip
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert sorted(row["id"] for row in rows) == ["net-0.4999999-64", "net-0.5-64"]
    assert len({row["params_model"] for row in rows}) == 2  # two models, two counts


def test_check_fails_a_regression_of_one_of_two_near_alphas(capsys, tmp_path):
    baseline = tmp_path / "baseline.json"
    code, _, err = run(capsys, "baseline", "--model", "net=tests.regression_models:tiny", "--alpha", NEAR,
                       "--resolution", "64", "--quiet", "--out", str(baseline))  # fmt: skip
    assert code == 0, err
    assert sorted(json.loads(baseline.read_text())["entries"]) == ["net@0.4999999-64", "net@0.5-64"]
    code, out, err = run(capsys, "check", "--model", "net=tests.regression_models:tiny_widened_at_half",
                         "--alpha", NEAR, "--resolution", "64", "--baseline", str(baseline))  # fmt: skip
    assert code == 1, out + err
    assert "net@0.5-64 fvcore macs" in out
    assert "net@0.4999999-64" not in out  # the unchanged one compared with its own entry


def test_a_baseline_whose_key_does_not_say_its_alpha_is_refused(capsys, tmp_path):
    baseline = tmp_path / "baseline.json"
    code, _, err = run(capsys, "baseline", "--model", "net=tests.regression_models:tiny", "--alpha", "0.4999999",
                       "--resolution", "64", "--quiet", "--out", str(baseline))  # fmt: skip
    assert code == 0, err
    document = json.loads(baseline.read_text())
    document["entries"] = {"net@0.5-64": document["entries"]["net@0.4999999-64"]}  # as an older mnprof wrote it
    baseline.write_text(json.dumps(document))
    before = baseline.read_bytes()
    code, out, err = run(capsys, "check", "--model", "net=tests.regression_models:tiny", "--alpha", NEAR,
                         "--resolution", "64", "--baseline", str(baseline))  # fmt: skip
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and "'net@0.5-64' holds alpha 0.4999999" in err and "net@0.4999999-64" in err
    assert baseline.read_bytes() == before


def test_a_results_row_whose_id_is_another_configurations_is_refused():
    row = timing_record(ModelConfig(0.4999999, 64)).to_row()
    assert row["id"] == "0.4999999-64"
    row["id"] = "0.5-64"  # what an id of six digits made of it
    with pytest.raises(MnprofError, match="is not that of its alpha"):
        TimingRecord.from_row(row)


def test_a_baseline_counted_with_other_classes_is_refused_not_compared(capsys, tmp_path):
    baseline = tmp_path / "baseline.json"
    code, _, err = run(capsys, "baseline", "--model", "net=tests.regression_models:tiny", "--alpha", "1.0",
                       "--resolution", "64", "--quiet", "--out", str(baseline))  # fmt: skip
    assert code == 0, err
    before = baseline.read_bytes()
    # A classifier that grew (a hidden layer), checked at 10 classes: against the 1000-class counts it only shrank.
    code, out, err = run(capsys, "check", "--model", "net=tests.regression_models:tiny_classifier", "--alpha", "1.0",
                         "--resolution", "64", "--classes", "10", "--baseline", str(baseline))  # fmt: skip
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "net@1.0-64 was counted with 1000 classes, this check counts 10" in err
    assert baseline.read_bytes() == before


def test_resuming_timings_of_a_model_whose_code_changed_is_refused(capsys, tmp_path):
    results = tmp_path / "r.json"
    timed = ["--alpha", "0.25", "--resolution", "32", "--budget", "0.05", "--threads", "1", "--results", str(results),
             "-q"]  # fmt: skip
    code, _, err = run(capsys, "table", "--model", "net=tests.regression_models:tiny", *timed)
    assert code == 0, err
    before = results.read_bytes()
    # The same name, another model: its kept time would stand beside the new model's counts.
    code, out, err = run(capsys, "table", "--model", "net=tests.regression_models:tiny_widened", *timed, "--resume")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "holds timings of net-0.25-32 measured on a model of" in err
    assert results.read_bytes() == before
    code, _, err = run(capsys, "table", "--model", "net=tests.regression_models:tiny", *timed, "--resume")
    assert code == 0, err  # the same model resumes as before


def test_timings_of_another_model_of_the_same_name_are_refused_by_table_and_plot(capsys, tmp_path):
    results = tmp_path / "r.json"
    timed = ["--alpha", "0.25", "--resolution", "32", "--budget", "0.05", "--threads", "1", "-q"]
    code, _, err = run(capsys, "table", "--model", "net=tests.regression_models:tiny", *timed, "--results",
                       str(results))  # fmt: skip
    assert code == 0, err
    other = ["--model", "net=tests.regression_models:tiny_widened", "--alpha", "0.25", "--resolution", "32"]
    code, out, err = run(capsys, "table", *other, "--from-results", str(results))
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert f"{results} holds timings of net-0.25-32 measured on a model of" in err
    page = tmp_path / "p.html"
    code, out, err = run(capsys, "plot", *other, "--results", str(results), "--out", str(page), "-q")
    assert (code, out) == (2, "") and "holds timings of net-0.25-32 measured on a model of" in err
    assert not page.exists()
    code, _, err = run(capsys, "table", "--model", "net=tests.regression_models:tiny", "--alpha", "0.25",
                       "--resolution", "32", "--from-results", str(results), "-q")  # fmt: skip
    assert code == 0, err  # its own model's timings are shown as ever
