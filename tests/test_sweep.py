"""Sweeps (mnprof.timing.sweep, ``mnprof table`` timed): rows with statistics, provenance and samples, a runtime
that fails or computes something else, results kept, interruption and resume.

Tiny configurations and budgets throughout; no test asserts an absolute time.
"""

from __future__ import annotations

import json
import statistics
import time

import numpy as np
import pytest
import torch
from cli_run import TIMED, run
from factories import FAST, TINY

from mnprof.counting.analytic import analytic_count
from mnprof.host import host_environment
from mnprof.model.config import grid
from mnprof.runtimes import backends
from mnprof.runtimes.backends import Backend
from mnprof.timing import sweep as latency
from mnprof.timing.store import ResultsStore, read_results
from mnprof.timing.sweep import TimingSettings, run_sweep


def sweep(path, configs, backends_=(Backend.EAGER,), resume=False, **kwargs):
    settings = TimingSettings(backends=backends_, threads=1, rule=FAST)
    store = ResultsStore.open(path, host_environment(), resume=resume)
    return [record.to_row() for record in run_sweep(configs, settings, store, **kwargs)]


def test_sweep_rows_carry_statistics_provenance_and_samples(tmp_path, fake_peak):
    path = tmp_path / "r.json"
    before, started = torch.get_num_threads(), time.time()
    rows = sweep(path, [TINY], (Backend.EAGER, Backend.FUSED))
    assert torch.get_num_threads() == before
    assert [(r["id"], r["backend"]) for r in rows] == [("0.25-32", "eager"), ("0.25-32", "fused")]
    for r in rows:
        assert r["error"] is None and r["threads"] == 1 and r["batch_size"] == 1 and r["device"] == "cpu"
        assert r["latency_ms_min"] <= r["latency_ms_median"] <= r["latency_ms_p90"] <= r["latency_ms_max"]
        if r["latency_ms_ci_low"] is not None:  # the headline's CI, each turn a cluster of calls
            assert r["turns"] >= 6 and r["latency_ms_ci_low"] <= r["latency_ms_p5"] <= r["latency_ms_ci_high"]
        else:  # too few turns, or calls, within the budget to bound the low end (a busy host)
            assert r["latency_ms_ci_high"] is None and r["noisy"]
        assert r["samples"] == len(r["latency_ms_samples"]) >= r["turns"] >= 1
        assert len(r["turn_host_factors"]) == r["turns"]
        assert r["turn_passes"] == sorted(set(r["turn_passes"])) and len(r["turn_passes"]) == r["turns"]
        assert r["rel_ci_halfwidth_pct"] is None  # two tasks timed together: nothing to be relative to
        # the headline recomputed from the raw samples: their 5th percentile (numpy's linear method)
        assert r["latency_ms_p5"] == pytest.approx(float(np.percentile(r["latency_ms_samples"], 5)), rel=1e-9)
        # the typical figure: each turn's median over its pass's host factor, the median of those
        turns, first = [], 0
        for size, factor in zip(r["turn_sizes"], r["turn_host_factors"], strict=True):
            turns.append(statistics.median(r["latency_ms_samples"][first : first + size]) / factor)
            first += size
        assert r["latency_ms_adjusted"] == pytest.approx(statistics.median(turns), rel=1e-5)
        assert r["throughput_ips"] == pytest.approx(1000 / r["latency_ms_p5"])  # the rates follow the headline
        assert r["gflops_achieved"] == pytest.approx(2 * r["macs_analytic"] / (r["latency_ms_p5"] / 1e3) / 1e9)
        assert r["peak_fraction"] == pytest.approx(r["gflops_achieved"] / 100.0)
        assert r["output_max_abs_error"] <= r["output_tolerance"]
        starts = r["turn_started_unix"]  # when each turn began: the host's drift is read from these
        assert len(starts) == len(r["turn_sizes"]) and starts == sorted(starts)
        assert started - 1 <= starts[0] and starts[-1] <= time.time()
    document = read_results(path)
    assert document["environment"]["host_fingerprint"] == rows[0]["host"]
    stored = json.loads(path.read_text())["measurements"]  # in the order they finished
    assert sorted(stored, key=lambda r: r["backend"]) == sorted(rows, key=lambda r: r["backend"])


def test_a_backend_that_computes_something_else_cannot_post_a_time(tmp_path, fake_peak, monkeypatch):
    real = backends.prepare

    def perturbed(backend, model, inputs, *, threads):
        runner = real(backend, model, inputs, threads=threads)
        if backend is not Backend.FUSED:
            return runner
        return backends.Runner(backend, runner.call, lambda: runner.output() * 1.01)

    monkeypatch.setattr(backends, "prepare", perturbed)
    eager, fused = sweep(tmp_path / "r.json", [TINY], (Backend.EAGER, Backend.FUSED))
    assert eager["error"] is None and eager["latency_ms_median"] > 0
    assert fused["latency_ms_median"] is None and "differs from eager PyTorch" in fused["error"]
    assert fused["output_max_abs_error"] > fused["output_tolerance"]


def test_a_failing_backend_is_recorded_on_its_row(tmp_path, fake_peak, monkeypatch):
    def broken(backend, model, inputs, *, threads):
        raise RuntimeError("no kernel for this")

    monkeypatch.setattr(backends, "prepare", broken)
    (row,) = sweep(tmp_path / "r.json", [TINY])
    assert row["error"] == "eager failed: RuntimeError: no kernel for this" and row["latency_ms_median"] is None


def test_interrupted_sweep_keeps_finished_rows_and_resume_measures_only_the_rest(tmp_path, fake_peak, monkeypatch):
    path = tmp_path / "r.json"
    configs = grid([0.25], [32, 40, 48])
    real_add = ResultsStore.add

    def add_then_interrupt(self, row):
        real_add(self, row)
        if len(self.done()) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(ResultsStore, "add", add_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        sweep(path, configs)
    kept = read_results(path)["measurements"]
    assert len(kept) == 2
    monkeypatch.setattr(ResultsStore, "add", real_add)

    measured = []
    real_time_tasks = latency.time_tasks

    def spy(tasks, *args, **kwargs):
        measured.extend(task.key.config.id for task in tasks)
        return real_time_tasks(tasks, *args, **kwargs)

    monkeypatch.setattr(latency, "time_tasks", spy)
    rows = sweep(path, configs, resume=True)
    assert measured == [c.id for c in configs if c.id not in {r["id"] for r in kept}]
    assert [r["id"] for r in rows] == [c.id for c in configs]
    by_id = {r["id"]: r for r in rows}
    for old in kept:  # untouched, samples and all
        assert by_id[old["id"]] == old
    measured.clear()
    sweep(path, configs, resume=True)
    assert measured == []  # nothing left to do


def test_table_times_and_keeps_results(capsys, tmp_path, fake_peak):
    results = tmp_path / "r.json"
    code, out, err = run(capsys, *TIMED, "--backend", "eager,fused", "--format", "json", "--results", str(results))
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert [(r["id"], r["backend"]) for r in rows] == [("0.25-32", "eager"), ("0.25-32", "fused")]
    for r in rows:
        for key in ("backend", "batch_size", "threads", "latency_ms_median", "latency_ms_iqr", "throughput_ips"):
            assert r[key] is not None
        assert "latency_ms_samples" not in r and r["macs_analytic"] == analytic_count(TINY).macs
    assert rows[0]["speedup_vs_eager"] == 1.0
    stored = read_results(results)["measurements"]
    assert sorted(r["latency_ms_median"] for r in stored) == sorted(r["latency_ms_median"] for r in rows)

    # Reported again from the file, without measuring.
    code, out, err = run(capsys, *TIMED[:5], "--from-results", str(results), "--format", "json")
    assert code == 0, err
    assert [r["latency_ms_median"] for r in json.loads(out)["rows"]] == [r["latency_ms_median"] for r in rows]
    code, out, _ = run(capsys, *TIMED[:5], "--from-results", str(results), "--format", "markdown")
    assert "| latency ms | rel | median ms (IQR) |" in out and "x eager" in out


def test_no_timing_measures_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *TIMED, "--no-timing", "--format", "json")
    assert code == 0, err
    assert "latency_ms_median" not in json.loads(out)["rows"][0]
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_keeps_what_was_measured_and_resume_finishes(capsys, tmp_path, fake_peak, monkeypatch):
    results = tmp_path / "r.json"
    args = [
        "table",
        "--alpha",
        "0.25",
        "--resolution",
        "32,40",
        *TIMED[5:],
        "--results",
        str(results),
        "--format",
        "json",
    ]
    real_add = ResultsStore.add

    def add_then_interrupt(self, row):
        real_add(self, row)
        raise KeyboardInterrupt

    monkeypatch.setattr(ResultsStore, "add", add_then_interrupt)
    code, out, err = run(capsys, *args)
    assert code == 130 and out == ""
    assert "1 measurements kept in" in err and "--resume" in err and "Traceback" not in err
    (kept,) = read_results(results)["measurements"]
    monkeypatch.setattr(ResultsStore, "add", real_add)
    code, out, err = run(capsys, *args, "--resume")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert [r["id"] for r in rows] == ["0.25-32", "0.25-40"]
    assert next(r for r in rows if r["id"] == kept["id"])["latency_ms_median"] == kept["latency_ms_median"]


def test_ctrl_c_during_a_sweep_says_what_was_kept_in_one_line(tmp_path, fake_peak, monkeypatch, capsys):
    results = tmp_path / "r.json"
    real_add = ResultsStore.add

    def add_then_interrupt(self, row):
        real_add(self, row)
        raise KeyboardInterrupt

    monkeypatch.setattr(ResultsStore, "add", add_then_interrupt)
    args = ("table", "-q", "--alpha", "0.25", "--resolution", "32,40", "--budget", "0.1", "--threads", "1")
    code, out, err = run(capsys, *args, "--results", str(results))
    assert code == 130 and out == ""
    assert err.splitlines() == [f"mnprof: error: interrupted: 1 measurements kept in {results}; add --resume to "
                                "finish the rest"]  # fmt: skip
