"""The process boundary (mnprof.supervisor, mnprof.worker): a model that ends the process it runs in, by any means,
or outruns its time limit, is one line naming its configuration and what happened, exit 2, stdout clean, and the
measurements kept before it stay kept. Each test runs the real ``mnprof`` command in its own process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_run import ROOT

from mnprof import supervisor

GRID = ["--alpha", "1.0,0.5", "--resolution", "32"]  # the crashing factories misbehave at 0.5, after 1.0 worked


def _mnprof(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m mnprof ARGS`` from the repository, as a user runs it."""
    environment = {**os.environ, **(env or {})}
    command = [sys.executable, "-m", "mnprof", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=environment)


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("mnprof: error: "), done.stderr[-3000:]
    assert "Traceback" not in done.stderr and done.stdout == ""
    return done.stderr


CRASHES = {
    "segfault": "died of SIGSEGV (segmentation fault)",
    "kill": "died of SIGKILL (killed), as the kernel's out-of-memory killer ends a process",
    "abort": "died of SIGABRT (aborted)",
    "exit0": "exited with code 0 before finishing",
    "exec_": "exited with code 0 before finishing",
}


@pytest.mark.parametrize(
    "how", [how if how in ("segfault", "kill") else pytest.param(how, marks=pytest.mark.slow) for how in CRASHES]
)
def test_a_factory_that_ends_its_process_is_one_line_naming_its_configuration(how):
    done = _mnprof("table", "--no-timing", "-q", *GRID, "--model", f"F=tests.crashing_models:{how}", "--format", "json")
    assert _one_line(done) == f"mnprof: error: model F at F-0.5-32: factory: the process running it {CRASHES[how]}" + (
        " (the code called os._exit or exec, or ended the process)\n" if "exited" in CRASHES[how] else "\n"
    )


@pytest.mark.parametrize("factory", ["hard_exiting", "executing"])
def test_a_factory_that_exits_0_or_execs_does_not_pass_the_gate(tmp_path, factory):
    path = tmp_path / "b.json"
    tiny = ["--alpha", "0.25", "--resolution", "32"]
    made = _mnprof("baseline", "-q", *tiny, "--model", "t=tests.regression_models:tiny", "--out", str(path))
    assert made.returncode == 0, made.stderr
    done = _mnprof("check", "-q", *tiny, "--model", f"t=tests.regression_models:{factory}", "--baseline", str(path))
    assert "model t at t-0.25-32: factory: the process running it exited with code 0" in _one_line(done)


@pytest.mark.slow
def test_a_model_that_crashes_on_its_41st_timed_call_keeps_what_was_measured(tmp_path):
    results = tmp_path / "r.json"
    timed = ["-q", "--model", "F=tests.crashing_models:segfault_forward", "--resolution", "32", "--threads", "1",
             "--budget", "1", "--results", str(results)]  # fmt: skip
    first = _mnprof("table", *timed, "--alpha", "1.0")
    assert first.returncode == 0, first.stderr
    kept = results.read_bytes()
    done = _mnprof(
        "table", *timed, "--alpha", "1.0,0.5", "--resume", "--format", "json", env={"CRASH_AFTER_CALLS": "41"}
    )
    assert _one_line(done) == (
        "mnprof: error: model F at F-0.5-32: timed: the process running it died of SIGSEGV (segmentation fault); "
        f"1 measurements kept in {results}; add --resume to finish the rest\n"
    )
    assert results.read_bytes() == kept and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # no lock left
    finished = _mnprof("table", *timed, "--alpha", "1.0,0.5", "--resume", "--format", "json",
                       env={"CRASH_AFTER_CALLS": str(10**9)})  # fmt: skip
    assert finished.returncode == 0, finished.stderr
    assert len(json.loads(results.read_text())["measurements"]) == 2
    assert len(json.loads(finished.stdout)["rows"]) == 2


@pytest.mark.slow
def test_user_code_past_its_time_limit_is_ended_with_one_line_and_nothing_half_written(tmp_path):
    """Whatever the code does to evade a limit inside the process (sleep in C, swallow exceptions, stop the timer,
    take SIGALRM over), the mnprof process ends the worker's whole process group. Run side by side."""
    environment = {**os.environ, "MNPROF_USER_CODE_TIMEOUT": "0.5"}
    factories = ["tests.crashing_models:sleep_in_c", "tests.tiny_family:sleeping", "tests.tiny_family:swallowing",
                 "tests.tiny_family:stopping_the_timer", "tests.tiny_family:taking_sigalrm_over"]  # fmt: skip
    runs = {}
    for factory in factories:
        out = tmp_path / factory.replace(":", "-") / "layers.md"
        out.parent.mkdir()
        out.write_text("keep")
        command = [sys.executable, "-m", "mnprof", "layers", "--no-timing", "--alpha", "0.5", "--resolution", "32",
                   "--out", str(out), "--model", f"F={factory}"]  # fmt: skip
        started = time.monotonic()
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stderr=subprocess.PIPE, text=True)
        runs[factory] = out, process, started
    for out, process, started in runs.values():
        try:
            _, err = process.communicate(timeout=120)  # a hang guard only
        finally:
            process.kill()
        assert process.returncode == 2, err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith("mnprof: error: model F at F-0.5-32: factory did not finish within 0.5 s; accepted:"), err
        assert out.read_text() == "keep" and list(out.parent.iterdir()) == [out]  # no temporary file left
        assert time.monotonic() - started < 60


def test_what_user_code_writes_to_stdout_by_any_means_goes_to_stderr(tmp_path):
    args = ["--alpha", "0.25", "--resolution", "32", "--format", "json", "-q"]
    done = _mnprof("table", "--no-timing", *args, "--model", "t=tests.tiny_family:prints_fd")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] and "noise from the factory" in done.stderr
    done = _mnprof("table", "--no-timing", "--alpha", "0.25,0.5", "--resolution", "32,64", "--format", "json",
                   "--model", "t=tests.regression_models:printing_from_a_thread")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["rows"]) == 4  # nothing but the JSON on stdout
    assert "chatter from a thread" in done.stderr and "raw chatter from a thread" in done.stderr
    done = _mnprof("table", "--no-timing", "--alpha", "0.25,0.5", "--resolution", "32,64", "--format", "json",
                   "--model", "t=tests.crashing_models:writing_stdout_buffer")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["rows"]) == 4 and "bytes from a thread" in done.stderr


@pytest.mark.slow
def test_what_a_timed_model_writes_to_file_descriptor_1_goes_to_stderr(tmp_path):
    done = _mnprof("table", "--alpha", "0.25", "--resolution", "32", "--format", "json", "-q", "--threads", "1",
                   "--budget", "0.05", "--results", str(tmp_path / "r.json"),
                   "--model", "t=tests.tiny_family:prints_fd")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"][0]["latency_ms"] > 0 and "noise from the model" in done.stderr


def test_exit_handlers_and_threads_of_user_code_leave_the_output_and_exit_code_alone(tmp_path):
    done = _mnprof("table", "--no-timing", "-q", "--alpha", "0.25", "--resolution", "32", "--model",
                   "t=tests.regression_models:leaving_noise", "--format", "json")  # fmt: skip
    assert done.returncode == 0, done
    assert json.loads(done.stdout)["rows"][0]["family"] == "t"
    assert "mnprof: warning: thread 'worker' raised RuntimeError: a thread failed" in done.stderr
    assert "Traceback" not in done.stderr and "goodbye" not in done.stdout + done.stderr  # no exit handler ran
    path = tmp_path / "b.json"
    spec = ["--alpha", "1.0", "--resolution", "32"]
    assert (
        _mnprof("baseline", "-q", *spec, "--model", "net=tests.regression_models:tiny", "--out", str(path)).returncode
        == 0
    )
    done = _mnprof("check", "-q", *spec, "--model", "net=tests.regression_models:widened_exiting_at_exit",
                   "--baseline", str(path))  # fmt: skip
    assert done.returncode == 1, done  # the regression, whatever the factory's exit handler does


def test_a_forked_child_that_returns_ends_instead_of_running_on_as_a_second_mnprof():
    done = _mnprof("table", "--no-timing", "-q", "--alpha", "0.25", "--resolution", "32", "--model",
                   "t=tests.regression_models:forking", "--format", "json")  # fmt: skip
    assert done.returncode == 0, done
    assert json.loads(done.stdout)["rows"][0]["family"] == "t"  # one document: the child printed none
    assert done.stderr == ""


def test_a_factory_that_closes_stderr_still_gets_its_one_line():
    done = _mnprof("table", "--no-timing", "-q", "--alpha", "0.25", "--resolution", "32", "--model",
                   "tests.regression_models:closing_stderr")  # fmt: skip
    assert "RuntimeError: failed after closing stderr" in _one_line(done)


def test_in_process_runs_the_models_in_the_mnprof_process_itself(tmp_path):
    record = tmp_path / "pid"
    args = ["table", "--no-timing", "-q", "--alpha", "0.25", "--resolution", "32", "--model",
            "t=tests.crashing_models:recording_pid"]  # fmt: skip
    for first, same in (([], False), (["--in-process"], True)):
        command = [sys.executable, "-m", "mnprof", *first, *args]
        environment = {**os.environ, "MNPROF_TEST_PID_FILE": str(record)}
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        assert b"t-0.25-32" in out
        assert (int(record.read_text()) == process.pid) is same


def test_mnprof_help_and_a_mistyped_command_import_no_torch(tmp_path):
    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('torch was imported')\n")  # in either process
    done = _mnprof("--help", env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode == 0 and "Usage: mnprof" in done.stdout and "--in-process" in done.stdout, done.stderr
    done = _mnprof("tabel", env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode == 2 and "No such command 'tabel'" in done.stderr and "torch" not in done.stderr


def test_a_worker_that_cannot_start_is_one_line(tmp_path, monkeypatch, capfd):
    fake = tmp_path / "mnprof"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('broken on purpose')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # the worker's Python finds this mnprof first
    assert supervisor.supervise(["--version"]) == 2
    err = capfd.readouterr().err
    assert (
        err.count("\n") == 1 and "mnprof's worker process cannot import mnprof (ImportError: broken on purpose)" in err
    )
    monkeypatch.delenv("PYTHONPATH")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    assert supervisor.supervise(["--version"]) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "mnprof cannot start its worker process" in err and "No such file" in err


def test_an_interrupt_reaches_the_worker_and_is_one_line(tmp_path):
    command = [sys.executable, "-m", "mnprof", "table", "--no-timing", "-q", "--alpha", "0.25", "--resolution", "32",
               "--model", "F=tests.tiny_family:sleeping"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(8)  # the worker is in the factory's sleep by now
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert err.count("\n") == 1 and err.startswith("mnprof: error: interrupted (SIGTERM)") and out == ""


def test_death_is_described_in_words():
    assert supervisor.death(-signal.SIGSEGV) == "died of SIGSEGV (segmentation fault)"
    assert supervisor.death(-signal.SIGKILL).startswith("died of SIGKILL (killed), as the kernel's out-of-memory")
    assert supervisor.death(3).startswith("exited with code 3 before finishing")


def test_frames_split_anywhere_are_read_whole():
    from mnprof.worker import HEADER, decode_frames

    stream = b"".join(HEADER.pack(kind, len(payload)) + payload for kind, payload in [(b"O", b"abc"), (b"E", b"")])
    for cut in range(len(stream) + 1):
        buffer = bytearray(stream[:cut])
        frames = decode_frames(buffer)
        buffer += stream[cut:]
        frames += decode_frames(buffer)
        assert frames == [(b"O", b"abc"), (b"E", b"")] and not buffer
    assert Path(supervisor.__file__).read_text().count("import torch") == 0


def test_a_worker_killed_outside_user_code_is_one_line_without_blaming_user_code(tmp_path):
    command = [sys.executable, "-m", "mnprof", "table", "-q", "--alpha", "1.0,0.75,0.5,0.25", "--resolution",
               "224,192,160,128", "--budget", "60", "--results", str(tmp_path / "r.json")]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    deadline = time.monotonic() + 120
    while not (tmp_path / ".r.json.lock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the worker holds the results lock: it is timing built-in models now
    os.kill(int(children.read_text().split()[0]), signal.SIGKILL)  # as the OOM killer would
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2 and out == "", err
    assert err.count("\n") == 1 and err.startswith(
        "mnprof: error: mnprof's worker process died of SIGKILL (killed), as the kernel's out-of-memory killer"
    ), err
    assert "the code called" not in err and not (tmp_path / ".r.json.lock").exists()


def test_an_exit_outside_user_code_is_not_blamed_on_it():
    state = supervisor._Worker(process=None)  # type: ignore[arg-type] - only what the worker said matters here
    assert supervisor._describe(state, 1) == "mnprof's worker process exited with code 1 before finishing"
    state.take(b"B", json.dumps({"doing": "model F at F-0.5-32: factory", "late": "", "limit_s": 5}).encode())
    assert supervisor._describe(state, 0).startswith(
        "model F at F-0.5-32: factory: the process running it exited with code 0 before finishing (the code called"
    )
