"""mnprof.api: counting, recording a baseline and checking against it from Python, as the commands do; and the
examples of docs/api.md's section on it, run."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_run import ROOT, run

from mnprof import api
from mnprof.counting.analytic import analytic_count
from mnprof.model.config import ModelConfig

TINY = "net=tests.regression_models:tiny"
LOST_STRIDE = "net=tests.regression_models:tiny_lost_stride"


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # factories are imported relative to the working directory, settings read from it


def test_importing_mnprof_stays_light():
    code = "import sys, mnprof; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.split() == ["False"]


def test_count_a_user_family_exactly():
    (report,) = api.count(TINY, 1.0, 64)
    assert report.config.id == "net-1.0-64" and api.entry_of(report) == "net@1.0-64"
    # 3x3 stem 3->16 at 32x32, 3x3 depthwise 16 at 16x16, 1x1 16->32 at 16x16, linear 32->1000
    macs = 32 * 32 * 16 * 27 + 16 * 16 * 16 * 9 + 16 * 16 * 16 * 32 + 32 * 1000
    assert api.metrics(report) == {"params": 34216, "macs": macs, "activations": 29672}
    assert macs == 642304
    assert report.fvcore.total == 707840 and report.thop.total == 765216  # as docs/ci.md's regression shows


def test_count_mnprofs_own_family_matches_the_closed_form():
    (report,) = api.count(alphas="0.25", resolutions=32)  # mobilenetv1 by default
    assert report.config.id == "0.25-32" and api.entry_of(report) == "mobilenetv1@0.25-32"
    assert report.analytic.macs == analytic_count(ModelConfig(0.25, 32)).macs == 1088128
    assert api.metrics(report)["params"] == report.params_model == 470072


def test_count_defaults_to_the_published_values_of_what_is_not_given():
    reports = api.count(TINY, resolutions=64)  # a user family: MobileNetV1's alphas
    assert [api.entry_of(report) for report in reports] == [f"net@{a}-64" for a in ("1.0", "0.75", "0.5", "0.25")]
    assert [api.metrics(report)["macs"] for report in reports] == sorted(
        (api.metrics(report)["macs"] for report in reports), reverse=True
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"alphas": True}, "alpha True is not a number; accepted: numbers in (0, 4]"),
        ({"alphas": [0.5, 5]}, "alpha 5.0 is out of range; accepted: numbers in (0, 4]"),
        ({"alphas": []}, "alpha list '' is empty"),
        ({"resolutions": 64.0}, "resolution 64.0 is not an integer; accepted: integers in [32, 2048]"),
        ({"resolutions": "16"}, "resolution 16 is too small; accepted: integers in [32, 2048]"),
        ({"models": "nope"}, "unknown model 'nope'; accepted: mobilenetv1, mobilenetv2"),
        ({"models": "tests.regression_models:raising"}, "factory raised RuntimeError: weights server unreachable"),
        ({"models": [TINY, "net=tests.regression_models:tiny_bias"]}, "model names must be unique, got net, net"),
        ({"num_classes": 0}, "num_classes 0 is invalid; accepted: an integer in [1, 100,000]"),
    ],
)
def test_count_refuses_what_the_command_line_refuses(arguments, message):
    with pytest.raises(api.MnprofError, match=re.escape(message)):
        api.count(**{"models": TINY, "alphas": 1.0, "resolutions": 64, **arguments})


def test_over_budget_names_configuration_metric_limit_got_and_delta():
    reports = api.count(TINY, 1.0, [64, 32])
    assert api.over_budget(reports, {"macs": 642304, "params": 34216, "activations": 29672}) == []
    over = api.over_budget(reports, {"macs": 600_000, "params": 4e4})
    assert [str(overrun) for overrun in over] == [
        "net@1.0-64 macs: expected at most 600,000, got 642,304 (+42,304, +7.05%)"
    ]
    assert (over[0].limit, over[0].got, over[0].delta) == (600000, 642304, 42304)
    assert str(api.over_budget(reports[1:], {"params": 0}, name="small")[0]) == (
        "small@1.0-32 params: expected at most 0, got 34,216 (+34,216)"
    )


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"flops": 1}, "unknown metric 'flops'; accepted: params, macs, activations"),
        ({"macs": "1M"}, "macs='1M' is not a number"),
        ({"macs": 1.5}, "macs=1.5 is not a whole number"),
        ({"macs": float("nan")}, "macs=nan is not a whole number"),
        ({"params": -1}, "params=-1 is negative"),
        ({"params": True}, "params=True is not a number"),
        ({}, "no limit given; accepted: one or more of params=N, macs=N, activations=N"),
    ],
)
def test_bad_limits_are_refused(limits, message):
    with pytest.raises(api.MnprofError, match=re.escape(message)):
        api.over_budget([], limits)


def test_record_baseline_is_what_mnprof_baseline_writes(tmp_path, capsys):
    out = tmp_path / "api.json"
    document = api.record_baseline(TINY, [1.0, 0.5], 64, out=out)
    assert json.loads(out.read_text()) == document
    assert sorted(document["entries"]) == ["net@0.5-64", "net@1.0-64"]
    assert document["entries"]["net@1.0-64"]["counts"]["analytic"]["macs"] == 642304
    code, _, err = run(capsys, "baseline", "--model", TINY, "--alpha", "1.0,0.5", "--resolution", "64",
                       "--quiet", "--out", str(tmp_path / "cli.json"))  # fmt: skip
    assert code == 0, err
    assert json.loads((tmp_path / "cli.json").read_text())["entries"] == document["entries"]


def test_record_baseline_writes_nothing_unless_asked_and_checks_out_before_counting(tmp_path):
    before = sorted(tmp_path.iterdir())
    assert api.record_baseline(TINY, 1.0, 32)["kind"] == "mnprof.baseline"
    assert sorted(tmp_path.iterdir()) == before
    with pytest.raises(api.MnprofError, match="directory .* does not exist"):
        api.record_baseline("tests.regression_models:raising", 1.0, 32, out=tmp_path / "no" / "b.json")


def test_check_passes_unchanged_and_fails_a_regression_naming_it(tmp_path):
    path = tmp_path / "baseline.json"
    api.record_baseline(TINY, 1.0, 64, out=path)
    same = api.check(TINY, 1.0, 64, baseline=path)
    assert same.passed and not same.failed and same.compared == 1 and same.findings == ()
    grown = api.check(LOST_STRIDE, 1.0, 64, baseline=path)
    assert grown.failed and not grown.passed
    failing = {(f.counter, f.metric): (f.baseline, f.now) for f in grown.failures}
    assert failing[("analytic", "macs")] == (642304, 1146112)  # docs/ci.md's example
    assert failing[("fvcore", "macs")] == (707840, 1309952)
    assert all(f.status == "grew" for f in grown.failures)
    tolerant = api.check(LOST_STRIDE, 1.0, 64, baseline=path, tolerance="300%")
    assert tolerant.passed and len(tolerant.findings) == len(grown.findings)


def test_check_shrinkage_passes_unless_strict(tmp_path):
    path = tmp_path / "baseline.json"
    api.record_baseline(TINY, 1.0, 32, out=path)
    narrowed = "net=tests.regression_models:tiny_narrowed"
    assert api.check(narrowed, 1.0, 32, baseline=path).passed
    strict = api.check(narrowed, 1.0, 32, baseline=path, strict=True)
    assert strict.failed and {f.status for f in strict.failures} == {"shrank"}


def test_check_refuses_unusable_baselines_before_counting(tmp_path):
    with pytest.raises(api.MnprofError, match="regenerate it with: mnprof baseline --out"):
        api.check(TINY, 1.0, 64, baseline=tmp_path / "missing.json")
    path = tmp_path / "baseline.json"
    api.record_baseline(TINY, 1.0, 64, out=path)
    with pytest.raises(api.MnprofError, match="has none of the 1 configurations checked"):
        api.check(TINY, 0.5, 64, baseline=path)
    with pytest.raises(api.MnprofError, match="tolerance 'x' is not a number"):
        api.check(TINY, 1.0, 64, baseline=path, tolerance="x")


def test_settings_read_tool_mnprof_and_arguments_override_it(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[tool.mnprof]\nmodels = ["net=tests.regression_models:tiny"]\nalphas = [1.0, 0.5]\nresolutions = [64]\n'
        'baseline = "b.json"\ntolerance = "1%"\n'
    )
    read = api.settings(pyproject=pyproject)
    assert [(m.name, m.target) for m in read.models] == [("net", "tests.regression_models:tiny")]
    assert (read.alphas, read.resolutions, read.baseline, read.tolerance_pct) == ((1.0, 0.5), (64,), Path("b.json"), 1)
    changed = api.settings(alphas="0.25", resolutions=(32, 32), tolerance=0, pyproject=pyproject)
    assert (changed.alphas, changed.resolutions, changed.tolerance_pct) == ((0.25,), (32,), 0)
    with pytest.raises(api.MnprofError, match="does not exist"):
        api.settings(pyproject=tmp_path / "none.toml")


# ------------------------------------------------------------------------------------ docs/api.md


def api_section_examples() -> list[str]:
    text = (ROOT / "docs" / "api.md").read_text()
    section = text.split("## One module: mnprof.api", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.+?)\n```", section, flags=re.DOTALL)


def checked(source: str) -> str:
    """Each ``expression  # literal`` line becomes ``assert expression == literal``: the docs' results, checked."""
    lines = []
    for line in source.splitlines():
        code, _, comment = line.partition("  # ")
        try:
            expected = ast.literal_eval(comment.strip())
            ast.parse(code.strip(), mode="eval")
        except (ValueError, SyntaxError):
            lines.append(line)
            continue
        lines.append(f"assert ({code.strip()}) == {expected!r}, {code.strip()!r}")
    return "\n".join(lines)


def test_the_docs_examples_run_and_say_what_they_return(tmp_path, monkeypatch):
    examples = api_section_examples()
    assert len(examples) >= 2
    asserted = sum(checked(example).count("\nassert ") for example in examples)
    assert asserted >= 8, "the examples show their results, and the test checks them"
    monkeypatch.chdir(tmp_path)  # the examples write their baseline here
    monkeypatch.syspath_prepend(str(ROOT))  # tests.regression_models, as from the repository's root
    namespace: dict[str, object] = {}
    for example in examples:
        exec(compile(checked(example), "docs/api.md", "exec"), namespace)  # noqa: S102 - the docs' own code
    assert (tmp_path / "reports" / "baseline.json").is_file()
