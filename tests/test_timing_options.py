"""The timing options, validated before any work: TimingSettings and batch-size lists in the library, and
``mnprof table``'s timing options refused in one line, exit 2, nothing written and no results file replaced."""

from __future__ import annotations

import json

import pytest
import torch
from cli_run import TIMED, run

from mnprof.errors import MnprofError
from mnprof.runtimes import backends
from mnprof.timing.sweep import TimingSettings, parse_batch_sizes


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"backends": ("nope",)},
            "unknown backend 'nope'; accepted: eager, channels_last, fused, compile, onnxruntime, onnxruntime_int8",
        ),
        ({"batch_sizes": (0,)}, "batch sizes \\(0,\\) are invalid; accepted: integers in \\[1, 1024\\]"),
        ({"threads": 0}, "threads 0 is invalid; accepted: an integer in \\[1, 1024\\]"),
        ({"backends": ()}, "no backend given"),
    ],
)
def test_settings_reject_bad_values(kwargs, message):
    with pytest.raises(MnprofError, match=message):
        TimingSettings(**kwargs)


@pytest.mark.parametrize(
    ("text", "message"),
    [("0", "batch size 0 is invalid"), ("1,x", "batch size 'x' is not an integer"), ("", "empty")],
)
def test_batch_size_lists_are_validated(text, message):
    with pytest.raises(MnprofError, match=message):
        parse_batch_sizes(text)
    assert parse_batch_sizes("1, 8,1") == (1, 8)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu_is_an_error():
    with pytest.raises(MnprofError, match="--device cuda: no CUDA GPU is available"):
        TimingSettings(device="cuda")


def test_missing_onnxruntime_names_the_extra(monkeypatch):
    real = backends.importlib.util.find_spec
    monkeypatch.setattr(
        backends.importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a)
    )
    with pytest.raises(MnprofError, match=r"backend onnxruntime needs onnxruntime.*pip install 'mnprof\[onnx\]'"):
        TimingSettings(backends=("eager", "onnxruntime"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "tpu"], "unknown backend 'tpu'; accepted: eager, channels_last, fused, compile, onnxruntime"),
        (["--backend", "eager,"], "backend list 'eager,' is empty or has an empty item"),
        (["--batch-size", "0"], "batch size 0 is invalid; accepted: integers in [1, 1024]"),
        (["--threads", "0"], "--threads 0 is invalid; accepted: an integer in [1, 1024]"),
        (["--threads", "two"], "'two' is not a valid integer"),
        (["--target-ci", "0"], "--target-ci 0 is out of range"),
        (["--budget", "-1"], "--budget -1 is invalid"),
        (["--results", "/nonexistent-dir/r.json"], "--results /nonexistent-dir/r.json: directory /nonexistent-dir"),
        (["--from-results", "/nonexistent-dir/r.json"], "results file /nonexistent-dir/r.json does not exist"),
    ],
)
def test_bad_timing_input_is_one_line_exit_2(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *TIMED, *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("mnprof: error: ")
    assert message in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu_is_one_line_exit_2(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *TIMED, "--device", "cuda")
    assert code == 2 and err.count("\n") == 1 and "no CUDA GPU is available" in err


def test_missing_onnxruntime_is_one_line_exit_2(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    real = backends.importlib.util.find_spec
    monkeypatch.setattr(
        backends.importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a)
    )
    code, _, err = run(capsys, *TIMED, "--backend", "onnxruntime")
    assert code == 2 and err.count("\n") == 1 and "pip install 'mnprof[onnx]'" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{corrupt", "is corrupt"),
        (json.dumps({"kind": "mnprof.results", "schema_version": 99}), "has schema version 99"),
    ],
)
@pytest.mark.parametrize("resume", [[], ["--resume"]])
def test_unreadable_results_file_is_one_line_exit_2_and_kept(capsys, tmp_path, content, message, resume):
    results = tmp_path / "r.json"
    results.write_text(content)
    code, out, err = run(capsys, *TIMED, "--results", str(results), *resume)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err
    assert results.read_text() == content
