"""Timings in ``mnprof table``'s grid view (mnprof.views.grid): noisy and failed cells, the notes, the GPU named,
and relative latency within one run."""

from __future__ import annotations

import pytest
from factories import TINY, timing_record

from mnprof.model.config import ModelConfig
from mnprof.timing.records import TimingRecord


def test_grid_view_marks_noisy_and_failed_timings():
    from mnprof.counting.count import count
    from mnprof.views.grid import View, grid_frame, render
    from mnprof.views.render import Format

    def record(backend: str, **row) -> TimingRecord:
        base = timing_record(TINY, backend, threads=1, host="h", cpu_model="CPU").to_row()
        return TimingRecord.from_row({**base, **row})

    timings = [
        record("eager", latency_ms_p5=2.0, latency_ms_median=2.1, latency_ms_iqr=0.5, noisy=True,
               throughput_ips=500.0, gflops_achieved=1.0, peak_fraction=0.01, gemm_peak_gflops=100.0, error=None),
        record("fused", latency_ms_p5=1.0, latency_ms_median=1.1, latency_ms_iqr=0.1, noisy=False,
               throughput_ips=1000.0, gflops_achieved=2.0, peak_fraction=0.02, gemm_peak_gflops=100.0, error=None),
        record("onnxruntime", latency_ms_p5=None, latency_ms_median=None, latency_ms_iqr=None,
               throughput_ips=None, error="output differs from eager PyTorch"),
    ]  # fmt: skip
    frame = grid_frame([count(TINY)], timings)
    assert list(frame["speedup_vs_eager"].round(3)[:2]) == [1.0, 2.0]
    text = render(frame, View.GRID, Format.MARKDOWN)
    # one configuration per runtime: no relative latency (it would be that configuration over itself)
    assert "| eager | 1 | 2.00! | - | 2.10 (0.50) |" in text and "| fused | 1 | 1.00 | - | 1.10 (0.10) |" in text
    assert "| onnxruntime | 1 | error |" in text
    assert "error: 0.25-32 onnxruntime batch 1: output differs from eager PyTorch" in text
    assert "timed on CPU (h), 1 threads, device cpu" in text and "TF32" not in text


def test_a_grid_where_no_row_has_a_time_renders_in_every_format():
    """Every timed row an error (an int8 run that did not agree, a model that failed): the notes must not
    assume a measured row."""
    from mnprof.counting.count import count
    from mnprof.views.grid import View, grid_frame, render
    from mnprof.views.render import Format

    base = timing_record(TINY, "torch_int8", threads=1, host="h", cpu_model="CPU").to_row()
    failed = TimingRecord.from_row({**base, "latency_ms_p5": None, "error": "output does not agree"})
    frame = grid_frame([count(TINY)], [failed])
    for fmt in Format:
        assert render(frame, View.GRID, fmt, width=200) is not None
    assert "error: 0.25-32 torch_int8 batch 1: output does not agree" in render(frame, View.GRID, Format.MARKDOWN)


def test_grid_view_names_the_gpu_and_its_math_for_gpu_timings():
    from mnprof.counting.count import count
    from mnprof.views.grid import View, grid_frame, render
    from mnprof.views.render import Format

    base = timing_record(TINY, "eager", 64, threads=1, device="cuda", host="h", cpu_model="CPU", gpu="Test GPU")
    row = {**base.to_row(), "latency_ms_p5": 2.0, "latency_ms_median": 2.0, "latency_ms_iqr": 0.5, "noisy": False,
           "throughput_ips": 32000.0, "gflops_achieved": 1.0, "peak_fraction": 0.01, "gemm_peak_gflops": 100.0,
           "error": None}  # fmt: skip
    text = render(grid_frame([count(TINY)], [TimingRecord.from_row(row)]), View.GRID, Format.MARKDOWN)
    assert "timed on Test GPU (h), 1 threads, device cuda" in text
    assert "cuDNN convolutions use TF32" in text


def test_relative_latency_divides_within_one_run_by_its_geometric_mean_or_the_reference():
    import dataclasses

    from mnprof.counting.count import count
    from mnprof.views.grid import grid_frame

    def record(config: str, ms: float, run: str) -> TimingRecord:
        base = timing_record(config, samples_ms=(ms,))
        return dataclasses.replace(base, provenance=dataclasses.replace(base.provenance, run_id=run))

    small, large = ModelConfig(0.25, 32), ModelConfig(0.5, 64)
    runs = [record("0.25-32", 1.0, "a"), record("0.5-64", 4.0, "a"), record("0.25-32", 2.0, "b"),
            record("0.5-64", 8.0, "b")]  # fmt: skip
    frame = grid_frame([count(small), count(large)], runs)
    # run a: geometric mean 2 ms; run b (the host twice as slow): 4 ms. The ratios agree; pooled they would not.
    rows = sorted(zip(frame["run_id"], frame["id"], frame["latency_relative"], strict=True))
    assert [row[:2] for row in rows] == [("a", "0.25-32"), ("a", "0.5-64"), ("b", "0.25-32"), ("b", "0.5-64")]
    assert [row[2] for row in rows] == pytest.approx([0.5, 2.0, 0.5, 2.0])
    assert set(frame["reference_id"]) == {"geometric mean"}
    chosen = grid_frame([count(small), count(large)], runs, reference="0.5-64")
    assert sorted(chosen["latency_relative"]) == pytest.approx([0.25, 0.25, 1.0, 1.0])


def test_one_configuration_alone_has_no_relative_latency():
    from mnprof.counting.count import count
    from mnprof.views.grid import grid_frame

    frame = grid_frame([count(TINY)], [timing_record(TINY, samples_ms=(1.0,))])
    assert frame["latency_relative"].isna().all() and frame["reference_id"].isna().all()
    assert grid_frame([count(TINY)], [timing_record(TINY)], reference="0.25-32")["latency_relative"].tolist() == [1.0]
