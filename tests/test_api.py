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
from cli_run import ROOT, TINY_GRID, refused, run

import mnprof.check.instructions as gate
from mnprof import api
from mnprof.check import render_check
from mnprof.counting.analytic import analytic_count
from mnprof.host import host_environment
from mnprof.model.config import ModelConfig
from mnprof.timing import instructions as callgrind
from mnprof.timing.store import read_results, results_records

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


# ------------------------------------------------------------------------------------ as the command line does

SMALL = ["--alpha", "1.0,0.5", "--resolution", "64,32"]  # four configurations of the tiny net


def table_rows(capsys, *args: str) -> list[dict]:
    code, out, err = run(capsys, "table", "--no-timing", "--format", "json", "-q", *args)
    assert code == 0, err
    return json.loads(out)["rows"]


def cli_json(capsys, *args: str) -> tuple[int, dict]:
    """``mnprof ARGS --format json``: its exit code and document."""
    code, out, err = run(capsys, *args, "-q", "--format", "json")
    assert code in (0, 1), err
    return code, json.loads(out)


def test_count_takes_variant_rounding_and_shard_as_the_table_does(capsys):
    done = []
    reports = api.count(alphas=0.5, resolutions=[64, 32], variant="shallow", rounding="div8", shard="2/2",
                        on_done=done.append)  # fmt: skip
    rows = table_rows(capsys, "--alpha", "0.5", "--resolution", "64,32", "--variant", "shallow", "--rounding",
                      "div8", "--shard", "2/2")  # fmt: skip
    keys = ("id", "params", "macs_analytic", "macs_fvcore", "macs_thop", "activations")
    assert [{key: report.row()[key] for key in keys} for report in reports] == [
        {key: row[key] for key in keys} for row in rows
    ]
    (report,) = reports  # ids sorted and dealt: 0.5-32 to shard 1, 0.5-64 to shard 2
    config = ModelConfig(0.5, 64, variant="shallow", rounding="div8")
    assert report.config == config and done == [config]
    assert report.analytic.macs == analytic_count(config).macs == rows[0]["macs_analytic"]
    assert report.analytic.macs < analytic_count(ModelConfig(0.5, 64, rounding="div8")).macs  # five blocks fewer


def test_count_training_is_the_tables_training_columns(capsys):
    (report,) = api.count(alphas=0.25, resolutions=32, training=True)
    (row,) = table_rows(capsys, *TINY_GRID, "--pass", "training")
    keys = [key for key in row if "training" in key or key in ("pass", "macs_backward")]
    assert {key: report.row()[key] for key in keys} == {key: row[key] for key in keys}
    assert (row["macs_training"], row["macs_backward"]) == (3209088, 2120960)
    assert report.training.macs == report.analytic.macs + report.training.backward_macs == 3209088
    assert report.torch_training_reconciliation.unexplained == 0
    assert api.count(alphas=0.25, resolutions=32)[0].training is None  # the forward pass only by default


def test_count_configs_and_shard_configs_are_the_tables_counting(capsys):
    chosen = api.configs(TINY, [1.0, 0.5], [64, 32])
    assert [config.id for config in chosen] == ["net-1.0-64", "net-1.0-32", "net-0.5-64", "net-0.5-32"]
    part = api.shard_configs(chosen, "1/3")  # ids sorted: net-0.5-32, net-0.5-64, net-1.0-32, net-1.0-64
    assert [config.id for config in part] == ["net-1.0-64", "net-0.5-32"]
    assert api.configs(TINY, [1.0, 0.5], [64, 32], shard="1/3") == part
    reports = api.count_configs(part, every_counter=True)
    rows = table_rows(capsys, "--model", TINY, *SMALL, "--shard", "1/3", "--view", "counts")
    assert [(r.config.id, r.analytic.macs, r.torch.total) for r in reports] == [
        (row["id"], row["macs_analytic"], row["macs_torch"]) for row in rows
    ]
    assert reports[0].analytic.macs == 642304


def test_record_baseline_with_a_shard_is_the_commands_part(tmp_path, capsys):
    document = api.record_baseline(TINY, [1.0, 0.5], [64, 32], shard="2/2", training=True)
    out = tmp_path / "part.json"
    code, _, err = run(capsys, "baseline", "--model", TINY, *SMALL, "--shard", "2/2", "--pass", "training",
                       "-q", "--out", str(out))  # fmt: skip
    assert code == 0, err
    written = json.loads(out.read_text())
    assert document["shard"] == written["shard"] == {"index": 2, "count": 2, "configurations": 4}
    assert document["entries"] == written["entries"]
    assert sorted(document["entries"]) == ["net@0.5-64", "net@1.0-64"]  # keys sorted, every second from the 2nd
    assert "training" in document["entries"]["net@1.0-64"]["counts"]


def test_check_with_a_shard_is_mnprof_check_shard(tmp_path, capsys):
    path = tmp_path / "baseline.json"
    api.record_baseline(TINY, [1.0, 0.5], [64, 32], out=path)
    heard: list[str] = []
    result = api.check(LOST_STRIDE, [1.0, 0.5], [64, 32], baseline=path, shard="1/2", on_done=heard.append)
    code, printed = cli_json(capsys, "check", "--model", LOST_STRIDE, *SMALL, "--baseline", str(path),
                             "--shard", "1/2")  # fmt: skip
    assert code == 1 and json.loads(render_check(result, "json", path)) == printed
    assert heard == ["net@1.0-32", "net@0.5-32"] and result.compared == 2
    assert {f.entry for f in result.failures} == {"net@1.0-32", "net@0.5-32"}
    grew = next(f for f in result.failures if (f.entry, f.counter, f.metric) == ("net@1.0-32", "analytic", "macs"))
    assert grew.now > grew.baseline > 0


def test_check_training_as_the_pass_option_chooses(tmp_path, capsys):
    forward, trained = tmp_path / "forward.json", tmp_path / "training.json"
    api.record_baseline(TINY, 1.0, 32, out=forward)
    api.record_baseline(TINY, 1.0, 32, out=trained, training=True)
    with pytest.raises(api.MnprofError) as raised:
        api.check(TINY, 1.0, 32, baseline=forward, training=True)
    line = refused(capsys, "check", "--model", TINY, "--alpha", "1.0", "--resolution", "32", "-q", "--baseline",
                   str(forward), "--pass", "training")  # fmt: skip
    assert line == f"mnprof: error: {raised.value}\n" and "has no training counts" in line
    grown = api.check(LOST_STRIDE, 1.0, 32, baseline=trained)  # the baseline's training step is guarded
    _, printed = cli_json(capsys, "check", "--model", LOST_STRIDE, "--alpha", "1.0", "--resolution", "32",
                          "--baseline", str(trained))  # fmt: skip
    assert json.loads(render_check(grown, "json", trained)) == printed
    assert "training" in {f.counter for f in grown.failures}
    forward_only = api.check(TINY, 1.0, 32, baseline=trained, training=False)  # --pass forward: not counted now
    _, printed = cli_json(capsys, "check", "--model", TINY, "--alpha", "1.0", "--resolution", "32", "--baseline",
                          str(trained), "--pass", "forward")  # fmt: skip
    assert json.loads(render_check(forward_only, "json", trained)) == printed and forward_only.passed
    assert {(f.status, f.counter) for f in forward_only.findings} == {("removed", "training")}


def fake_latency(monkeypatch, relative: dict[str, float]) -> list[int]:
    """The latency gate's timing replaced by fixed relative latencies (``relative``: entry -> ratio to its control)
    on this host; returns the threads each call was asked for."""
    asked: list[int] = []

    def measure_latency(_settings, threads, _macs=None):
        asked.append(threads)
        entries = {
            key: {"control": "control@mobilenetv1-0.25-32", "latency_ms": ratio, "control_latency_ms": 1.0,
                  "relative": ratio, "relative_ci_low": ratio * 0.99, "relative_ci_high": ratio * 1.01, "passes": 9}
            for key, ratio in relative.items()
        }  # fmt: skip
        return {"method": "relative-to-matched-control", "host_fingerprint": host_environment()["host_fingerprint"],
                "threads": threads, "backend": "eager", "batch_size": 1, "entries": entries}  # fmt: skip

    monkeypatch.setattr(api, "measure_latency", measure_latency)
    return asked


def test_the_latency_gate_records_and_compares_as_the_command_does(tmp_path, capsys, monkeypatch):
    asked = fake_latency(monkeypatch, {"net@1.0-64": 0.5, "net@1.0-32": 0.4})
    path, cli = tmp_path / "api.json", tmp_path / "cli.json"
    document = api.record_baseline(TINY, 1.0, [64, 32], latency=True, threads=1, out=path)
    grid = ["--model", TINY, "--alpha", "1.0", "--resolution", "64,32"]
    assert run(capsys, "baseline", *grid, "--latency", "--threads", "1", "-q", "--out", str(cli))[0] == 0
    assert asked == [1, 1] and document["latency"] == json.loads(cli.read_text())["latency"]
    fake_latency(monkeypatch, {"net@1.0-64": 0.6, "net@1.0-32": 0.41})  # 20% and 2.5% slower than the control
    result = api.check(TINY, 1.0, [64, 32], baseline=path, latency=True)
    _, printed = cli_json(capsys, "check", *grid, "--baseline", str(path), "--latency")
    assert json.loads(render_check(result, "json", path)) == printed
    assert [(f.status, f.entry, f.metric) for f in result.failures] == [("slower", "net@1.0-64", "latency_relative")]
    assert result.latency_tolerance_pct == 10.0  # the default, as --latency's
    assert api.check(TINY, 1.0, [64, 32], baseline=path, latency_tolerance="25%").passed


def test_the_instruction_gate_records_and_compares_as_the_command_does(tmp_path, capsys, monkeypatch):
    growth = {"now": 1.0}

    def count(configs, on_event=None, **how):
        counted = round(5_000_000 * growth["now"])
        counts = tuple(callgrind.InstructionCount(c.id, (counted,) * how["passes"]) for c in configs)
        return callgrind.InstructionRun(counts, "3.19.0", callgrind.torch.__version__, 1.0,
                                        torch_git=str(callgrind.torch.version.git_version), **how)  # fmt: skip

    monkeypatch.setattr(callgrind, "check_available", lambda device="cpu": "3.19.0")  # Valgrind, as if installed
    monkeypatch.setattr(callgrind, "count_instructions", count)
    path, cli = tmp_path / "api.json", tmp_path / "cli.json"
    heard: list[str] = []
    document = api.record_baseline(TINY, 1.0, 32, instructions=gate, on_instructions=heard.append, out=path)
    assert run(capsys, "baseline", "--model", TINY, "--alpha", "1.0", "--resolution", "32", "--instructions", "-q",
               "--out", str(cli))[0] == 0  # fmt: skip
    assert document["instructions"] == json.loads(cli.read_text())["instructions"]
    assert document["instructions"]["entries"]["net@1.0-32"]["instructions"] == 5_000_000 and heard == ["starting"]
    growth["now"] = 1.02
    result = api.check(TINY, 1.0, 32, baseline=path, instructions=gate, instructions_tolerance="1%")
    _, printed = cli_json(capsys, "check", "--model", TINY, "--alpha", "1.0", "--resolution", "32", "--baseline",
                          str(path), "--instructions-tolerance", "1%")  # fmt: skip
    assert json.loads(render_check(result, "json", path)) == printed
    (grew,) = result.failures
    assert (grew.counter, grew.metric, grew.baseline, grew.now) == ("callgrind", "instructions", 5_000_000, 5_100_000)
    assert api.check(TINY, 1.0, 32, baseline=path, instructions=gate, instructions_tolerance="3%").passed
    assert api.check(TINY, 1.0, 32, baseline=path).passed  # counts only: instructions neither counted nor compared


def test_sweep_times_the_requested_configurations_into_records(tmp_path):
    results = tmp_path / "results.json"
    heard: list[tuple] = []
    records = api.sweep(alphas=0.25, resolutions=32, results=results, batch_sizes=[1, 2], threads=1, budget_s=0.2,
                        on_progress=lambda *event: heard.append(event))  # fmt: skip
    keys = [(r.key.config.id, r.key.backend.value, r.key.batch_size, r.key.threads, r.key.device.value)
            for r in records]  # fmt: skip
    assert keys == [("0.25-32", "eager", 1, 1, "cpu"), ("0.25-32", "eager", 2, 1, "cpu")]
    for record in records:
        assert record.error is None and record.latency is not None and record.quality is not None
        assert 0 < record.latency.min <= record.latency.p5 <= record.latency.median
        assert record.quality.samples >= 1
    assert results_records([read_results(results)]) == records  # kept in the results file as mnprof table keeps them
    assert heard and all(len(event) == 4 for event in heard)


@pytest.mark.parametrize(
    ("function", "arguments", "command"),
    [
        ("count", {"shard": "0/3"}, ["table", "--no-timing", "--shard", "0/3"]),
        ("count", {"shard": "2/2"}, ["table", "--no-timing", "--shard", "2/2"]),
        ("sweep", {"budget_s": -5}, ["table", "--budget=-5"]),
        ("sweep", {"threads": 0}, ["table", "--threads", "0"]),
        ("sweep", {"backends": "nope"}, ["table", "--backend", "nope"]),
        ("sweep", {"batch_sizes": 0}, ["table", "--batch-size", "0"]),
        ("record_baseline", {"shard": "1/2", "latency": True}, ["baseline", "--shard", "1/2", "--latency", "--out",
                                                                  "b.json"]),
        ("check", {"shard": "1/2", "latency": True}, ["check", "--shard", "1/2", "--latency"]),
        ("check", {"force": True}, ["check", "--force"]),
        ("check", {"latency_tolerance": "x"}, ["check", "--latency-tolerance", "x"]),
        ("check", {"instructions": gate, "instructions_tolerance": "-1%"},
         ["check", "--instructions-tolerance=-1%"]),
    ],
)  # fmt: skip
def test_bad_values_are_refused_with_the_command_lines_line(capsys, tmp_path, monkeypatch, function, arguments,
                                                            command):  # fmt: skip
    monkeypatch.chdir(tmp_path)  # nothing is written here: each is refused before any work
    where = {"results": "r.json"} if function == "sweep" else {}
    with pytest.raises(api.MnprofError) as raised:
        getattr(api, function)(alphas=0.25, resolutions=32, **where, **arguments)
    line = refused(capsys, command[0], *TINY_GRID, *command[1:], "-q")
    assert line == f"mnprof: error: {raised.value}\n"
    assert list(tmp_path.iterdir()) == []


def test_the_instruction_gate_is_the_module_itself():
    with pytest.raises(api.MnprofError, match="instructions=True is not the instruction gate; accepted: the module"):
        api.check(alphas=0.25, resolutions=32, instructions=True)


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
