from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_run import run

from mnprof.timing.store import RESULTS_KIND, RESULTS_SCHEMA_VERSION


def results_document(
    configs: list[tuple[float, int]], *, host: str = "h1", error: str | None = None, cpu: str = "Test CPU"
) -> dict:
    rows = []
    for alpha, resolution in configs:
        config_id = f"{alpha:g}{'.0' if float(alpha).is_integer() else ''}-{resolution}"
        latency = None if error else alpha * alpha * resolution * resolution / 1500.0
        rows.append({
            "id": config_id, "alpha": alpha, "resolution": resolution, "num_classes": 1000, "variant": "standard",
            "rounding": "floor", "backend": "eager", "batch_size": 1, "threads": 2, "device": "cpu", "host": host,
            "latency_ms_p5": latency, "latency_ms_adjusted": latency, "latency_ms_median": latency,
            "latency_ms_iqr": None if error else 0.1,
            "throughput_ips": None if error else 1000 / latency, "error": error,
        })  # fmt: skip
    environment = {"cpu_model": cpu, "host_fingerprint": host, "date": "2026-11-27T00:00:00+00:00"}
    return {"schema_version": RESULTS_SCHEMA_VERSION, "kind": RESULTS_KIND, "environment": environment,
            "gemm_peaks": [], "measurements": rows}  # fmt: skip


def write(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document))
    return path


GRID4 = [(1.0, 224), (1.0, 128), (0.5, 160), (0.25, 128)]


def test_html_page_with_every_figure(capsys, tmp_path):
    results = write(tmp_path / "r.json", results_document(GRID4))
    out = tmp_path / "pareto.html"
    code, _, err = run(capsys, "plot", "--results", str(results), "--out", str(out), "--quiet")
    assert code == 0, err
    page = out.read_text()
    for key in ("accuracy-macs", "accuracy-params", "latency-macs", "pareto"):
        assert f'id="figure-{key}"' in page
    assert "Test CPU" in page and "r.json: measured 2026-11-27" in page
    assert "<script src=" not in page and '<script charset="utf-8" src=' not in page  # plotly.js embedded


@pytest.mark.slow
def test_two_hosts_are_overlaid_and_told_apart(capsys, tmp_path):
    first = write(tmp_path / "a.json", results_document(GRID4, host="aaaaaa1", cpu="CPU A"))
    second = write(tmp_path / "b.json", results_document(GRID4, host="bbbbbb2", cpu="CPU B"))
    out = tmp_path / "compare.html"
    assert run(capsys, "plot", "--results", str(first), "--results", str(second), "--out", str(out), "-q")[0] == 0
    page = out.read_text()
    assert "CPU A (aaaaaa): eager, batch 1, 2 threads" in page and "CPU B (bbbbbb): eager, batch 1, 2 threads" in page


@pytest.mark.slow
def test_gpu_results_are_told_apart_by_their_gpu(capsys, tmp_path):
    cpu = write(tmp_path / "cpu.json", results_document(GRID4, host="aaaaaa1", cpu="CPU A"))
    document = results_document(GRID4, host="bbbbbb2", cpu="CPU B")
    document["environment"]["gpu"] = "GPU B"
    for row in document["measurements"]:
        row["device"] = "cuda"
    gpu = write(tmp_path / "gpu.json", document)
    out = tmp_path / "compare.html"
    assert run(capsys, "plot", "--results", str(cpu), "--results", str(gpu), "--out", str(out), "-q")[0] == 0
    page = out.read_text()
    assert "CPU A (aaaaaa): eager, batch 1, 2 threads" in page and "GPU B (bbbbbb): eager, batch 1, GPU" in page
    assert "gpu.json: measured 2026-11-27T00:00:00+00:00 on CPU B and GPU B" in page


@pytest.mark.slow
def test_static_png(capsys, tmp_path):
    pytest.importorskip("kaleido")
    results = write(tmp_path / "r.json", results_document(GRID4))
    out = tmp_path / "pareto.png"
    code, _, err = run(capsys, "plot", "--results", str(results), "--out", str(out), "--quiet")
    if code == 2 and "static png export failed" in err:
        pytest.skip(f"no browser for kaleido here: {err.strip()}")
    assert code == 0, err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "{tmp}/figure.pdf"], "cannot write .pdf; accepted: .html, .png, .svg"),
        (["--out", "{tmp}/missing-dir/p.html"], "does not exist"),
        (["--results", "{tmp}/corrupt.json"], "is corrupt"),
        (["--results", "{tmp}/future.json"], "schema version 99"),
        (
            ["--results", "{tmp}/errors.json"],
            "holds no measured latency, needed for latency-macs, latency-activations, latency-memory, pareto",
        ),
        (["--results", "{tmp}/errors.json", "--figure", "pareto"], "holds no measured latency, needed for pareto"),
        (["--out", "{tmp}/p.png", "--figure", "pareto", "--figure", "latency-macs"], "holds one figure"),
        (["--figure", "histogram"], "'histogram' is not one of"),
    ],
)
def test_bad_input_exit_2_and_existing_output_untouched(capsys, tmp_path, args, message):
    (tmp_path / "corrupt.json").write_text("{oops")
    write(tmp_path / "future.json", dict(results_document(GRID4), schema_version=99))
    write(tmp_path / "errors.json", results_document(GRID4, error="onnxruntime failed"))
    good = write(tmp_path / "good.json", results_document(GRID4))
    existing = tmp_path / "pareto.html"
    existing.write_text("keep me")
    argv = [arg.format(tmp=tmp_path) for arg in args]
    if "--results" not in argv:
        argv += ["--results", str(good)]
    if "--out" not in argv:
        argv += ["--out", str(existing)]
    code, out, err = run(capsys, "plot", *argv, "--quiet")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err, err
    assert existing.read_text() == "keep me"


def test_accuracy_figures_need_no_latency(capsys, tmp_path):
    results = write(tmp_path / "errors.json", results_document(GRID4, error="failed"))
    out = tmp_path / "acc.html"
    code, _, err = run(
        capsys,
        "plot",
        "--results",
        str(results),
        "--out",
        str(out),
        "--figure",
        "accuracy-macs",
        "--figure",
        "accuracy-params",
        "-q",
    )
    assert code == 0, err
    assert 'id="figure-accuracy-macs"' in out.read_text() and 'id="figure-pareto"' not in out.read_text()


def test_configuration_without_published_accuracy_still_appears_in_the_latency_figure(capsys, tmp_path):
    from mnprof.counting.count import count_many
    from mnprof.views.plot_inputs import plot_inputs
    from mnprof.views.plots import build_figures

    results = write(tmp_path / "r.json", results_document([*GRID4, (0.6, 96)]))
    inputs = plot_inputs([results], count_many)
    figures = {figure.key: figure.figure for figure in build_figures(inputs.grid, inputs.latency)}
    latency_ids = [text for trace in figures["latency-macs"].data if trace.meta == "points" for text in trace.hovertext]
    assert any("config: 0.6-96" in text for text in latency_ids)
    pareto_ids = [text for trace in figures["pareto"].data if trace.meta == "points" for text in trace.hovertext]
    assert not any("config: 0.6-96" in text for text in pareto_ids)  # no published accuracy: not on accuracy axes
