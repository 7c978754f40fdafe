"""Torch's process-wide settings are mnprof's: what the user's code changes (a factory's default dtype, a forward's
thread count, grad mode ...) is set back before any other model is measured, with one warning line per model."""

from __future__ import annotations

import json

import pytest
import torch
from cli_run import ROOT, run

from mnprof.model.networks import MobileNetV1
from mnprof.user_code import held_warnings, torch_state_kept, user_code, warnings_held_for_run

TINY = ["--alpha", "0.25", "--resolution", "32"]


def settings() -> dict[str, object]:
    """The settings these tests change, as they are now."""
    return {
        "dtype": torch.get_default_dtype(),
        "threads": torch.get_num_threads(),
        "grad": torch.is_grad_enabled(),
        "inference": torch.is_inference_mode_enabled(),
        "device": torch.get_default_device(),
        "function modes": torch._C._len_torch_function_stack(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "matmul": torch.get_float32_matmul_precision(),
        "cudnn": torch.backends.cudnn.benchmark,
        "mkldnn": torch.backends.mkldnn.enabled,
        "anomaly": torch.is_anomaly_enabled(),
        "autocast": torch.is_autocast_enabled("cpu"),
        "hooks": len(torch.nn.modules.module._global_forward_pre_hooks),
        "denormal": torch.mul(torch.tensor([1e-39]), 1.0).item() == 0.0,
    }


@pytest.fixture(autouse=True)
def clean_torch_state(monkeypatch):
    """From the repository root (factories import relative to it), two threads (what the timed tests ask for: any
    other count would be a change), and torch's settings set back after the test, whatever the code under test left
    (without the fix, a factory's float64 would leak into every later test)."""
    monkeypatch.chdir(ROOT)
    threads, precision = torch.get_num_threads(), torch.get_float32_matmul_precision()
    torch.set_num_threads(2)
    yield
    torch.set_default_dtype(torch.float32)
    torch.set_num_threads(threads)
    torch.set_grad_enabled(True)
    torch.set_float32_matmul_precision(precision)
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.benchmark, torch.backends.mkldnn.enabled = False, True
    torch.set_anomaly_enabled(False)
    torch.set_autocast_enabled("cpu", False)
    torch.set_default_device(None)
    vars(_leave_inference_mode_on).pop("kept", None)  # its guard, freed, sets inference mode back
    while torch._C._len_torch_function_stack():  # a ``torch.device`` context left entered
        torch._C._pop_torch_function_stack()


@pytest.fixture
def mobilenetv1_sees():
    """The settings every forward pass of mnprof's own MobileNetV1 in eval mode ran under (the measured passes; its
    calibration's pass in train mode runs on one thread by design)."""
    seen: set[tuple[object, ...]] = set()

    def hook(module: torch.nn.Module, _inputs: object) -> None:
        if isinstance(module, MobileNetV1) and not module.training:
            seen.add((torch.get_default_dtype(), torch.get_num_threads(), torch.is_grad_enabled()))

    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    yield seen
    handle.remove()


def warning_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "changed torch's" in line]


# ---------------------------------------------------------------- a factory's change, before another model's memory


def memory(capsys, *models: str) -> tuple[dict[str, int], str]:
    args = [arg for model in models for arg in ("--model", model)]
    code, out, err = run(capsys, "memory", *args, *TINY, "--batch-size", "1", "--format", "json", "-q")
    assert code == 0, err
    return {row["family"]: row["measured_bytes"] for row in json.loads(out)["rows"]}, err


@pytest.mark.parametrize(
    ("factory", "change"),
    [
        ("float64_factory", "default dtype torch.float32 -> torch.float64"),
        ("grad_off_factory", "grad mode on -> off"),
    ],
)
def test_a_factorys_change_is_set_back_before_mobilenetv1s_memory_is_measured(
    capsys, mobilenetv1_sees, factory, change
):
    alone, err = memory(capsys, "mobilenetv1")
    assert not warning_lines(err)
    clean = set(mobilenetv1_sees)
    mobilenetv1_sees.clear()
    after, err = memory(capsys, f"h=tests.torch_state_models:{factory}", "mobilenetv1")
    assert after["mobilenetv1"] == alone["mobilenetv1"]  # float64 doubled them (1,963,960 -> 3,927,704 bytes)
    assert mobilenetv1_sees == clean
    assert warning_lines(err) == [
        f"mnprof: warning: model h at h-0.25-32 changed torch's {change}; set back before anything else ran"
    ]
    assert torch.get_default_dtype() is torch.float32 and torch.is_grad_enabled()


# ---------------------------------------------------------------- a forward's change while timed, among other models


@pytest.fixture
def fast_sweep(monkeypatch, tmp_path):
    """``mnprof table`` timing arguments for a quick sweep (two threads, 50 ms each), the GEMM peak stubbed."""
    from mnprof.timing import sweep
    from mnprof.timing.records import GemmPeak

    peak = GemmPeak.from_row({"device": "cpu", "threads": 2, "kernel": "mm", "gflops": 100.0, "gflops_by_kernel": {}})
    monkeypatch.setattr(sweep, "measure_gemm_peak", lambda *args, **kwargs: peak)
    return ["--threads", "2", "--budget", "0.05", "--results", str(tmp_path / "r.json"), "--format", "json", "-q"]


@pytest.mark.parametrize(
    ("factory", "change"),
    [("one_thread_forward", "threads 2 -> 1"), ("float64_forward", "default dtype torch.float32 -> torch.float64")],
)
def test_a_forward_that_changes_a_setting_while_timed_leaves_mobilenetv1_timed_under_mnprofs(
    capsys, mobilenetv1_sees, fast_sweep, factory, change
):
    code, out, err = run(capsys, "table", "--model", f"h=tests.torch_state_models:{factory}", "--model", "mobilenetv1",
                         *TINY, *fast_sweep)  # fmt: skip
    assert code == 0, err
    rows = {row["id"]: row for row in json.loads(out)["rows"]}
    assert set(rows) == {"h-0.25-32", "0.25-32"} and all(row["latency_ms"] > 0 for row in rows.values())
    assert mobilenetv1_sees == {(torch.float32, 2, False)}, "MobileNetV1 measured under the user's settings"
    assert warning_lines(err) == [
        f"mnprof: warning: model h at h-0.25-32 changed torch's {change}; set back before any other model ran, but "
        "its own timed calls ran under the change from the moment it was made"
    ]
    assert torch.get_num_threads() == 2 and torch.get_default_dtype() is torch.float32


def test_a_forward_that_changes_threads_while_its_layers_are_timed_is_named(capsys):
    code, out, err = run(capsys, "layers", "--model", "h=tests.torch_state_models:one_thread_forward", *TINY,
                         "--threads", "2", "--repeats", "3", "--warmup", "0", "--budget", "0.05", "--format", "json",
                         "-q")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["rows"]
    assert warning_lines(err) == [
        "mnprof: warning: model h at h-0.25-32 changed torch's threads 2 -> 1; set back before any other model ran, "
        "but its own timed calls ran under the change from the moment it was made"
    ]
    assert torch.get_num_threads() == 2


# ---------------------------------------------------------------- the fence, setting by setting


def _leave_inference_mode_on() -> None:
    _leave_inference_mode_on.kept = torch.inference_mode()  # type: ignore[attr-defined]
    _leave_inference_mode_on.kept.__enter__()  # type: ignore[attr-defined]


CHANGES = {
    "dtype": (lambda: torch.set_default_dtype(torch.float64), "default dtype torch.float32 -> torch.float64"),
    "threads": (lambda: torch.set_num_threads(1), "threads 2 -> 1"),
    "grad": (lambda: torch.set_grad_enabled(False), "grad mode on -> off"),
    "inference": (_leave_inference_mode_on, "inference mode off -> on"),
    "device": (lambda: torch.set_default_device("meta"), "default device cpu (unset) -> meta"),
    "device-block": (lambda: torch.device("meta").__enter__(), "torch function modes entered 0 -> 1"),
    "deterministic": (
        lambda: torch.use_deterministic_algorithms(True, warn_only=True),
        "deterministic algorithms off -> on (warn only)",
    ),
    "matmul": (lambda: torch.set_float32_matmul_precision("medium"), "float32 matmul precision highest -> medium"),
    "cudnn": (lambda: setattr(torch.backends.cudnn, "benchmark", True), "torch.backends.cudnn.benchmark off -> on"),
    "mkldnn": (lambda: setattr(torch.backends.mkldnn, "enabled", False), "torch.backends.mkldnn.enabled on -> off"),
    "anomaly": (lambda: torch.set_anomaly_enabled(True), "anomaly mode off -> on (NaN check)"),
    "autocast": (lambda: torch.set_autocast_enabled("cpu", True), "cpu autocast off -> on (torch.bfloat16)"),
    "denormal": (lambda: torch.set_flush_denormal(True), "denormal flushing off -> on"),  # FTZ/DAZ, x86 with SSE3
    "hook": (  # it would run in every later model's forward (a sleeping one made MobileNetV1 33x slower)
        lambda: torch.nn.modules.module.register_module_forward_pre_hook(lambda module, inputs: None),
        "global module hooks 0 registered -> 1 registered",
    ),
}


@pytest.mark.parametrize(("change", "said"), CHANGES.values(), ids=CHANGES.keys())
def test_the_fence_sets_each_setting_back_and_says_so_once(change, said):
    before = settings()
    with warnings_held_for_run() as held, held_warnings():
        with user_code("model f at f-1.0-224: forward failed:"):  # what sets a setting to its value changes nothing
            torch.set_num_threads(torch.get_num_threads())
            torch.set_default_dtype(torch.float32)
        with user_code("model f at f-1.0-224: factory raised"):
            change()
        after = settings()
    assert after == before
    assert held() == [f"model f at f-1.0-224 changed torch's {said}; set back before anything else ran"]


def test_a_grad_mode_turned_on_inside_no_grad_is_set_back_to_off():
    with warnings_held_for_run() as held, held_warnings(), torch.no_grad():
        with user_code("model f at f-1.0-224: forward failed:"):
            torch.set_grad_enabled(True)
        assert not torch.is_grad_enabled()
    assert held() == ["model f at f-1.0-224 changed torch's grad mode off -> on; set back before anything else ran"]


def test_the_changes_of_one_model_are_one_line_and_code_that_fails_still_has_them_set_back():
    with warnings_held_for_run() as held, held_warnings():
        with torch_state_kept("model f at f-1.0-224"):
            torch.set_num_threads(1)
        with (
            pytest.raises(Exception, match="factory raised RuntimeError: no weights"),
            user_code("model f: factory raised", who="model f at f-1.0-224"),
        ):
            torch.set_default_dtype(torch.float64)
            raise RuntimeError("no weights")
        with torch_state_kept("model f at f-1.0-224", timed=True):
            torch.set_num_threads(1)
    assert torch.get_num_threads() == 2 and torch.get_default_dtype() is torch.float32
    [line] = held()  # each change once, in the order the fences said them
    assert line.startswith("model f at f-1.0-224 changed torch's ") and line.count("threads 2 -> 1") == 1
    assert " and " in line and line.count("default dtype torch.float32 -> torch.float64") == 1
    assert line.endswith("; set back before any other model ran, but its own timed calls ran under the change from "
                         "the moment it was made")  # fmt: skip
