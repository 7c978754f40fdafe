"""Hostile and broken inputs, one test per class at least: each is one line on stderr, exit 2, no traceback,
and no existing file changed (issue 15's battery, kept)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from cli_run import TINY_GRID as TINY
from cli_run import refused
from factories import results_file, timing_record

from mnprof.cli import main
from mnprof.errors import MnprofError
from mnprof.model.config import ModelConfig
from mnprof.timing import sweep
from mnprof.timing.records import Backend, Device, TimingKey

# ---------------------------------------------------------------- 1. output targets


def test_a_fifo_or_a_symlink_is_never_replaced(capsys, tmp_path):
    fifo = tmp_path / "out.md"
    os.mkfifo(fifo)
    assert "not a regular file" in refused(capsys, "table", "-q", "--no-timing", *TINY, "--out", str(fifo))
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    target = tmp_path / "real.md"
    target.write_text("keep")
    link = tmp_path / "link.md"
    link.symlink_to(target)
    assert "symbolic link" in refused(capsys, "paper", "--out", str(link))
    assert link.is_symlink() and target.read_text() == "keep"


@pytest.mark.parametrize("option", ["--out", "--results"])
def test_a_path_ending_in_a_separator_is_not_written_as_a_file(capsys, tmp_path, monkeypatch, option):
    monkeypatch.chdir(tmp_path)
    err = refused(capsys, "table", "-q", *TINY, "--budget", "0.1", option, "newdir/")
    assert f"{option} newdir/ ends in '/', a directory; accepted: a file path" in err
    assert list(tmp_path.iterdir()) == []


def test_report_validates_everything_before_writing_anything(capsys, tmp_path):
    out = tmp_path / "reports"
    assert "unknown backend 'nope'" in refused(capsys, "report", "-q", "--out", str(out), "--backend", "eager,nope")
    assert not out.exists()


def test_a_write_the_os_refuses_is_one_line_and_keeps_the_old_file(capsys, tmp_path, monkeypatch):
    import errno

    out = tmp_path / "p.json"
    out.write_text("keep")

    def too_large(_descriptor):  # what ``ulimit -f`` does to a write (Python ignores SIGXFSZ)
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))

    monkeypatch.setattr(os, "fsync", too_large)
    err = refused(capsys, "paper", "--format", "json", "--out", str(out))
    assert f"cannot write {out}: File too large" in err
    assert out.read_text() == "keep" and list(tmp_path.iterdir()) == [out]


# ---------------------------------------------------------------- 2. sizes


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["table", "--no-timing", "--resolution", "100000"], "resolution 100000 is too large"),
        (["table", "--batch-size", "100000"], "batch size 100000 is invalid"),
        (["table", "--threads", "100000"], "--threads 100000 is invalid"),
        (["layers", "--resolution", "4096", "--no-timing"], "resolution 4096 is too large"),
    ],
)
def test_sizes_are_bounded(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    assert message in refused(capsys, *args)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget", "1e308"], "--budget 1e+308 is invalid; accepted: seconds in (0, 3600]"),
        (["--budget", "inf"], "--budget inf is invalid"),
        (["--target-ci", "1e-9"], "--target-ci 1e-09 is out of range; accepted: a percentage in [0.1, 100)"),
    ],
)
def test_timing_cannot_be_asked_to_run_forever(capsys, tmp_path, args, message):
    results = tmp_path / "r.json"
    assert message in refused(capsys, "table", "-q", *TINY, "--results", str(results), *args)
    assert not results.exists()


def test_what_cannot_fit_is_refused_before_allocating(monkeypatch):
    monkeypatch.setattr(sweep, "available_memory", lambda: 2**30)
    key = TimingKey(ModelConfig(1.0, 2048), Backend.EAGER, 64, 1, Device.CPU)
    assert sweep.memory_estimate(key) > 2**30
    with pytest.raises(MnprofError, match=r"1.0-2048 eager batch 64 needs at least .* GiB .* 1.0 GiB are available"):
        sweep.check_memory([key])
    sweep.check_memory([TimingKey(ModelConfig(0.25, 32), Backend.EAGER, 1, 1, Device.CPU)])  # fits


GiB = 2**30


def fake_host(tmp_path: Path, cgroup: str, files: dict[str, object], available_gib: int = 16) -> dict[str, Path]:
    """A /proc/meminfo, /proc/self/cgroup and /sys/fs/cgroup of files, for available_memory()."""
    (tmp_path / "meminfo").write_text(f"MemTotal: 33554432 kB\nMemAvailable: {available_gib * 2**20} kB\n")
    (tmp_path / "cgroup").write_text(cgroup)
    for name, text in files.items():
        path = tmp_path / "fs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{text}\n")
    (tmp_path / "fs").mkdir(exist_ok=True)
    return {"meminfo": tmp_path / "meminfo", "cgroup": tmp_path / "cgroup", "cgroup_root": tmp_path / "fs"}


V1_NO_LIMIT = 9223372036854771712


@pytest.mark.parametrize(
    ("cgroup", "files", "expected"),
    [
        # v2: the limit less the usage, less the file cache the kernel can take back
        (
            "0::/app.slice/run.scope\n",
            {
                "app.slice/run.scope/memory.max": 4 * GiB,
                "app.slice/run.scope/memory.current": 3 * GiB,
                "app.slice/run.scope/memory.stat": f"anon {GiB}\ninactive_file {GiB // 2}",
            },
            3 * GiB // 2,
        ),
        # v2: no limit of its own ('max'), its parent's
        (
            "0::/app.slice/run.scope\n",
            {
                "app.slice/run.scope/memory.max": "max",
                "app.slice/run.scope/memory.current": GiB,
                "app.slice/memory.max": 2 * GiB,
                "app.slice/memory.current": 3 * GiB // 2,
            },
            GiB // 2,
        ),
        # v2 in a cgroup namespace: a path the mount does not show is read at its top
        ("0::/../../elsewhere\n", {"memory.max": 8 * GiB, "memory.current": 7 * GiB}, GiB),
        # v2 without any limit: MemAvailable
        ("0::/\n", {"memory.max": "max", "memory.current": 5 * GiB}, 16 * GiB),
        # v1 (a hybrid host: the memory controller on v1, the v2 line empty)
        (
            "4:memory:/docker/abc\n1:cpu,cpuacct:/docker/abc\n0::/\n",
            {
                "memory/docker/abc/memory.limit_in_bytes": GiB,
                "memory/docker/abc/memory.usage_in_bytes": GiB // 2,
                "memory/docker/abc/memory.stat": f"inactive_file 0\ntotal_inactive_file {GiB // 4}",
                "memory.max": "max",
            },
            3 * GiB // 4,
        ),
        # v1's "no limit" is an absurdly large number
        (
            "4:memory:/docker/abc\n",
            {"memory/docker/abc/memory.limit_in_bytes": V1_NO_LIMIT, "memory/docker/abc/memory.usage_in_bytes": GiB},
            16 * GiB,
        ),
        # a usage over the limit leaves nothing; unreadable files leave the level out
        ("0::/a\n", {"a/memory.max": GiB, "a/memory.current": 2 * GiB}, 0),
        ("0::/a\n", {"a/memory.max": "lots", "a/memory.current": GiB}, 16 * GiB),
        ("", {}, 16 * GiB),  # no cgroups (or not Linux): MemAvailable
    ],
)
def test_available_memory_is_the_smaller_of_mem_available_and_the_cgroup_room(tmp_path, cgroup, files, expected):
    from mnprof.host import available_memory

    assert available_memory(**fake_host(tmp_path, cgroup, files)) == expected


def test_a_container_limit_refuses_what_the_host_could_hold(tmp_path, monkeypatch):
    import functools

    from mnprof import host

    paths = fake_host(tmp_path, "0::/\n", {"memory.max": 2 * GiB, "memory.current": GiB}, available_gib=64)
    monkeypatch.setattr(sweep, "available_memory", functools.partial(host.available_memory, **paths))
    key = TimingKey(ModelConfig(1.0, 2048), Backend.EAGER, 64, 1, Device.CPU)
    with pytest.raises(MnprofError, match=r"1.0-2048 eager batch 64 needs at least .* and 1.0 GiB are available"):
        sweep.check_memory([key])


# ---------------------------------------------------------------- 3. files that parse but are wrong


def baseline(tmp_path: Path, *models: str, **changes) -> Path:
    """A baseline of ``models`` (default mnprof's MobileNetV1) on the tiny grid, edited by ``changes``."""
    path = tmp_path / "baseline.json"
    assert main(["baseline", "-q", *TINY, *(arg for m in models for arg in ("--model", m)), "--out", str(path)]) == 0
    document = json.loads(path.read_text())
    document.update(changes)
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["entries"]["mobilenetv1@0.25-32"]["counts"]["analytic"].update(macs=float("nan")), "NaN"),
        (
            lambda d: d["entries"]["mobilenetv1@0.25-32"]["counts"]["analytic"].update(macs=-5),
            "analytic.macs is -5; accepted: a number >= 0",
        ),
        (
            lambda d: d["entries"]["mobilenetv1@0.25-32"]["counts"]["thop"].update(params="12"),
            'thop.params is "12"; accepted: an integer',
        ),
        (  # an emptied count compared as "not in the baseline": every metric "added", and the gate passed
            lambda d: d["entries"]["mobilenetv1@0.25-32"]["counts"]["analytic"].update(macs={}),
            "analytic.macs is an object; accepted: an integer",
        ),
        (
            lambda d: d["entries"]["mobilenetv1@0.25-32"]["counts"]["fvcore"].update(macs_by_operator={}),
            "fvcore.macs_by_operator is an object; accepted: an object with at least 1 key(s)",
        ),
        (lambda d: d.update(schema_version=True), "schema version True"),
        (lambda d: d["entries"].update(x=[]), '$.entries has the key "x"; accepted: keys matching ^[^@]+@[^@]+$'),
    ],
)
def test_a_wrong_baseline_never_passes_the_gate(capsys, tmp_path, edit, message):
    path = baseline(tmp_path)
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))
    before = path.read_text()
    capsys.readouterr()
    assert message in refused(capsys, "check", "-q", *TINY, "--baseline", str(path))
    assert path.read_text() == before


@pytest.mark.parametrize("change", ["empty", "another model", "another grid"])
def test_a_baseline_that_holds_nothing_checked_is_refused_not_passed(capsys, tmp_path, change):
    path = baseline(tmp_path, **({"entries": {}} if change == "empty" else {}))
    capsys.readouterr()
    args = {"empty": TINY, "another model": [*TINY, "--model", "t=tests.regression_models:tiny"],
            "another grid": ["--alpha", "0.5", "--resolution", "32"]}[change]  # fmt: skip
    err = refused(capsys, "check", "-q", *args, "--baseline", str(path))
    assert "so nothing would be compared" in err
    assert ("it holds none" if change == "empty" else "it holds 1: mobilenetv1@0.25-32") in err


def test_a_key_given_twice_in_a_baseline_is_refused(capsys, tmp_path):
    path = baseline(tmp_path)
    text = path.read_text().replace('"kind":', '"kind": "mnprof.baseline", "kind":', 1)  # JSON keeps the last
    path.write_text(text)
    capsys.readouterr()
    err = refused(capsys, "check", "-q", *TINY, "--baseline", str(path))
    assert "the key 'kind' is given twice in one object" in err


def test_help_shows_no_empty_range(capsys):
    assert main(["table", "--help"]) == 0
    assert "None]" not in capsys.readouterr().out  # click's "[x<=None]" for an option without bounds


def test_deeply_nested_json_is_one_line(capsys, tmp_path):
    path = tmp_path / "baseline.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert "nested too deeply" in refused(capsys, "check", "-q", *TINY, "--baseline", str(path))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("latency_ms_median", "fast", 'latency_ms_median is "fast"; accepted: a number or null'),
        ("latency_ms_adjusted", -1.0, "latency_ms_adjusted is -1.0"),
        ("latency_ms_p5", -2.0, "latency_ms_p5 is -2.0"),
        ("latency_ms_p5", None, "a timed measurement lacks latency_ms_p5 (the headline)"),
        ("samples", -3, "samples is -3"),
        ("turn_sizes", [], "latency_ms_samples holds 2 calls but turn_sizes is empty"),
    ],
)
def test_a_wrong_results_file_is_refused(capsys, tmp_path, field, value, message):
    path = results_file(tmp_path / "r.json", [dict(timing_record().to_row(), **{field: value})])
    assert message in refused(capsys, "table", "-q", "--from-results", str(path))


def test_a_number_that_overflows_to_infinity_is_refused(capsys, tmp_path):
    path = results_file(tmp_path / "r.json", [dict(timing_record().to_row(), latency_ms_samples=["INF", 1.1])])
    path.write_text(path.read_text().replace('"INF"', "1e400"))  # json.loads reads 1e400 as inf
    assert "1e400 is too large" in refused(capsys, "table", "-q", "--from-results", str(path))


# ---------------------------------------------------------------- 4. user code


def test_a_factory_that_exits_does_not_pass_the_gate(capsys, tmp_path):
    path = baseline(tmp_path, "t=tests.regression_models:tiny")
    capsys.readouterr()
    err = refused(capsys, "check", "-q", *TINY, "--model", "t=tests.regression_models:exiting", "--baseline", str(path))
    assert "factory raised SystemExit" in err


@pytest.mark.parametrize(
    "command", [["table", "--no-timing"], ["memory", "--batch-size", "1"], ["layers", "--no-timing"]]
)
@pytest.mark.parametrize(
    ("factory", "message"), [("unhashable", "TypeError: unhashable type"), ("exiting_walk", "SystemExit")]
)
def test_a_model_whose_own_methods_fail_outside_its_forward_is_one_line(capsys, command, factory, message):
    err = refused(capsys, *command, "-q", *TINY, "--model", f"t=tests.regression_models:{factory}")
    assert message in err


def test_a_system_exit_that_escapes_every_fence_is_still_an_error(capsys, monkeypatch):
    import mnprof.cli.options

    def exits(*args: object, **kwargs: object) -> None:  # stands for user code some path forgot to fence
        raise SystemExit(0)

    monkeypatch.setattr(mnprof.cli.options, "tool_table", exits)
    assert "the user's code raised SystemExit: 0" in refused(capsys, "paper", "--table", "1")


def test_a_factory_that_changes_directory_does_not_move_relative_outputs(capsys, tmp_path, monkeypatch):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(home)
    monkeypatch.setenv("MNPROF_TEST_WANDER_TO", str(elsewhere))
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent))
    spec = "t=tests.regression_models:wandering"
    assert main(["baseline", "-q", "--model", spec, "--alpha", "1.0", "--resolution", "32", "--out", "b.json"]) == 0
    assert (home / "b.json").is_file() and not list(elsewhere.iterdir()) and Path.cwd() == home


def test_a_chatty_factory_stays_out_of_the_json(capsys, tmp_path):
    path = tmp_path / "b.json"
    spec = "t=tests.regression_models:printing"
    assert main(["baseline", "-q", "--model", spec, "--alpha", "1.0", "--resolution", "32", "--out", str(path)]) == 0
    capsys.readouterr()
    code = main(["check", "-q", "--model", spec, "--alpha", "1.0", "--resolution", "32", "--baseline", str(path),
                 "--format", "json"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0 and json.loads(captured.out)["passed"] is True
    assert "loading weights" in captured.err


@pytest.fixture
def warnings_on_stderr(monkeypatch):
    """Warnings printed to stderr as Python prints them (pytest's own capture would keep them for its summary)."""

    def show(message, category, filename, lineno, file=None, line=None):
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    monkeypatch.setattr(warnings, "showwarning", show)


@pytest.mark.usefixtures("warnings_on_stderr")
@pytest.mark.parametrize("factory", ["warning_not_a_module", "warning_forward_raises", "returning_a_coroutine"])
def test_the_warnings_of_failing_user_code_do_not_come_before_its_error(capsys, factory):
    err = refused(capsys, "layers", "--no-timing", *TINY, "--model", f"tests.regression_models:{factory}")
    assert "Warning" not in err and ("not a torch.nn.Module" in err or "head expects 7x7 features" in err)


@pytest.mark.usefixtures("warnings_on_stderr")
def test_the_warnings_of_user_code_that_works_follow_its_output_once_each(capsys):
    code = main(["layers", "--no-timing", *TINY, "--model", "tests.regression_models:warning_tiny"])
    captured = capsys.readouterr()
    assert code == 0 and "Warning" not in captured.out
    assert captured.err.count("UserWarning") == 1
    assert "mnprof: warning: tests/regression_models.py:" in captured.err and "weights are stale" in captured.err


# ---------------------------------------------------------------- 5. configuration of the wrong shape


@pytest.mark.parametrize("text", ["[tool]\nmnprof = 5\n", "tool = 3\n"])
def test_pyproject_of_the_wrong_shape_is_one_line(capsys, tmp_path, text):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(text)
    err = refused(capsys, "check", "-q", "--config", str(pyproject))
    assert "[tool.mnprof] is not a table" in err


@pytest.mark.parametrize(
    "args",
    [["paper", "--table", "1"], ["table", "--no-timing", "-q", *TINY], ["check", "-q", *TINY],
     ["layers", "--no-timing", "-q", *TINY], ["plot", "--help"]],
)  # fmt: skip
def test_every_command_refuses_a_wrong_setting_alike(capsys, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.mnprof]\nmodels = ['mobilenetv1']\n[tool.mnprof.extra]\nx = 1\n")
    if "--help" in args:  # help is there whatever the settings say
        assert main(args) == 0
        return
    assert "pyproject.toml [tool.mnprof]: unknown key 'extra'" in refused(capsys, *args)


@pytest.mark.parametrize(
    ("setting", "message"),
    [("alphas = [0.5, nan]", "alphas[1] is not a finite number"), ("tolerance = inf", "tolerance is not a finite"),
     ('models = ["a\\u0007b"]', 'models[0] is "a\\u0007b"; accepted: text with nothing matching'),
     ('models = ["mobilenetv1\\n"]', 'models[0] is "mobilenetv1\\n"; accepted: text with nothing matching')],
)  # fmt: skip
def test_settings_no_bound_can_catch_are_refused_too(capsys, tmp_path, monkeypatch, setting, message):
    monkeypatch.chdir(tmp_path)  # NaN passes every bound (no comparison holds); a BEL would reach a terminal
    (tmp_path / "pyproject.toml").write_text(f"[tool.mnprof]\n{setting}\n")
    assert message in refused(capsys, "paper", "--table", "1")


@pytest.mark.parametrize("args", [["paper", "--table", "1", "--format", "markdown"], ["table", "--no-timing", "-q",
                                  *TINY, "--format", "json"], ["layers", "--no-timing", "-q", *TINY]])  # fmt: skip
def test_no_command_writes_over_the_settings_file(capsys, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    text = "[project]\nname = 'theirs'\n[tool.mnprof]\nalphas = [0.25]\n"
    (tmp_path / "pyproject.toml").write_text(text)
    assert "which this run reads" in refused(capsys, *args, "--out", "./pyproject.toml")
    assert (tmp_path / "pyproject.toml").read_text() == text


@pytest.mark.parametrize("kind", ["directory", "fifo", "device", "dangling link", "link loop"])
def test_a_pyproject_that_is_not_a_readable_file_is_refused_not_ignored(capsys, tmp_path, monkeypatch, kind):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "pyproject.toml"
    make = {
        "directory": path.mkdir,
        "fifo": lambda: os.mkfifo(path),  # read as a file, it would block
        "device": lambda: path.symlink_to("/dev/zero"),  # read as a file, it would never end
        "dangling link": lambda: path.symlink_to(tmp_path / "gone.toml"),
        "link loop": lambda: path.symlink_to(path),
    }
    make[kind]()
    err = refused(capsys, "table", "--no-timing", "-q", *TINY)
    assert err.startswith("mnprof: error: settings file pyproject.toml ")
    assert "accepted: a readable pyproject.toml, or none" in err


def test_an_unreadable_pyproject_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.mnprof]\n")
    real = Path.read_text

    def denied(self, *args, **kwargs):
        if self.name == "pyproject.toml":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", denied)
    err = refused(capsys, "check", "-q", *TINY)
    assert "pyproject.toml cannot be read (Permission denied)" in err


# ---------------------------------------------------------------- 6. text from files


def test_escape_sequences_from_a_results_file_stay_text(capsys, tmp_path):
    path = results_file(tmp_path / "r.json", [timing_record(cpu_model="Evil\x1b[2J\x1b[31mCPU\nsecond line").to_row()])
    assert main(["table", "-q", "--from-results", str(path), *TINY, "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "Evil\ufffd[2J\ufffd[31mCPU\ufffdsecond line" in out


@pytest.mark.parametrize("errors", ["strict", "surrogateescape"])  # the second: the C locale without UTF-8 mode
def test_an_ascii_stdout_gets_a_table_not_a_traceback(monkeypatch, errors):
    import io

    stdout = io.TextIOWrapper(io.BytesIO(), encoding="ascii", errors=errors)  # PYTHONIOENCODING=ascii, piped
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["table", "-q", "--no-timing", *TINY]) == 0
    stdout.flush()
    text = stdout.buffer.getvalue().decode("ascii")
    assert "0.25-32" in text and "MACs ?" in text  # the Delta of the header, as "?"


def test_a_model_name_with_a_newline_is_refused(capsys):
    err = refused(capsys, "check", "-q", "--model", "a\nb=tests.regression_models:tiny")
    assert "model name 'a\\nb' is invalid; accepted: up to 100 letters, digits and _ . : -" in err


# ---------------------------------------------------------------- 7. numbers


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["table", "--no-timing", "--alpha", "١"], "alpha '١' is not plain ASCII text"),
        (["table", "--no-timing", "--resolution", "３２"], "resolution '３２' is not plain ASCII text"),
        (["paper", "--table", ""], "table list '' is empty"),
        (["memory", "--batch-size", "1_0"], "batch size '1_0' has a digit separator"),  # int() would read 10
        (["table", "--no-timing", "--alpha", "0_5"], "alpha '0_5' has a digit separator"),
    ],
)
def test_only_plain_numbers_are_numbers(capsys, args, message):
    assert message in refused(capsys, *args)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget", "-5"], "--budget -5 is invalid"),
        (["--batch-size", "0"], "batch size 0 is invalid"),
        (["--backend", "nope"], "unknown backend 'nope'"),
        (["--target-ci", "500"], "--target-ci 500 is out of range"),
        (["--threads", "0"], "--threads 0 is invalid"),
    ],
)
def test_timing_options_are_validated_with_from_results_too(capsys, tmp_path, args, message):
    path = results_file(tmp_path / "r.json", [timing_record().to_row()])
    assert message in refused(capsys, "table", "-q", *TINY, "--from-results", str(path), *args)


@pytest.mark.parametrize("tolerance", ["５%", "1_0", "0_5%"])
def test_a_tolerance_is_a_plain_number(capsys, tolerance):
    err = refused(capsys, "check", "-q", *TINY, "--tolerance", tolerance)
    assert f"tolerance {tolerance!r} " in err and ("plain ASCII" in err or "digit separator" in err)


def test_the_user_code_time_limit_is_a_plain_number(monkeypatch):
    from mnprof.user_code import user_code_limit_s

    monkeypatch.setenv("MNPROF_USER_CODE_TIMEOUT", "1_0")
    with pytest.raises(MnprofError, match=r"MNPROF_USER_CODE_TIMEOUT='1_0' is invalid"):
        user_code_limit_s()


# ---------------------------------------------------------------- 8. concurrent writers


def test_a_second_sweep_on_the_same_results_file_is_refused(tmp_path):
    import sys

    path = tmp_path / "r.json"
    code = (
        "import sys, time; from mnprof.timing.store import ResultsStore;"
        f"ResultsStore.open(__import__('pathlib').Path({str(path)!r}), {{}}, resume=False);"
        "print('locked', flush=True); time.sleep(30)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        from mnprof.timing.store import ResultsStore

        with pytest.raises(MnprofError, match="is being written by another mnprof sweep"):
            ResultsStore.open(path, {}, resume=True)
    finally:
        holder.kill()
        holder.wait()
    ResultsStore.open(path, {}, resume=True)  # free again once the other process has gone


def test_a_refused_results_file_gets_no_lock_file_and_a_finished_sweep_leaves_none(capsys, tmp_path):

    path = baseline(tmp_path)  # not a results file: refused after its lock was taken
    capsys.readouterr()
    before = sorted(p.name for p in tmp_path.iterdir())
    assert "is not a mnprof results file" in refused(capsys, "table", "-q", *TINY, "--results", str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    results = tmp_path / "r.json"
    code = (
        "from pathlib import Path; from mnprof.timing.store import ResultsStore;"
        f"ResultsStore.open(Path({str(results)!r}), {{}}, resume=False)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)  # takes the lock; ends holding it
    assert not (tmp_path / ".r.json.lock").exists()  # released as it ended


# ---------------------------------------------------------------- 9. an option that takes one value, given twice


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["layers", "--no-timing", *TINY, "--model", "mobilenetv1", "--model=mobilenetv2"], "--model is given more"),
        (["paper", "--model", "mobilenetv2", "--model", "mobilenetv1"], "one --model for mnprof paper (table, memory"),
        (["layers", "--no-timing", "--alpha", "0.25", "--alpha", "0.5", "--resolution", "32"], "--alpha is given"),
        (["table", "--no-timing", *TINY, "--out", "a.md", "--out", "b.md"], "one --out for mnprof table"),
        (["table", *TINY, "--batch-size", "1", "--batch-size", "8"], "--batch-size is given more than once"),
    ],
)
def test_an_option_that_takes_one_value_is_refused_twice(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    assert message in refused(capsys, *args)
    assert list(tmp_path.iterdir()) == []


def test_repeatable_options_settings_and_help_are_left_alone(capsys):
    args = ["table", "-q", "--no-timing", *TINY, "--model", "mobilenetv1", "--model", "mobilenetv2"]
    assert main([*args, "--format", "json", "--format", "csv"]) == 0  # a setting: the last one wins, as in click
    out = capsys.readouterr().out
    assert out.startswith("id,alpha") and "v2-0.25-32" in out
    assert main(["layers", "--model", "mobilenetv1", "--model", "mobilenetv2", "--help"]) == 0
    assert "--model SPEC" in capsys.readouterr().out


def test_the_options_chosen_once_are_the_commands_own():
    import importlib

    import click

    from mnprof.cli import CHOSEN_ONCE, COMMANDS

    declared = set()
    for name, (module, _) in COMMANDS.items():
        for param in getattr(importlib.import_module(module), name).params:
            if isinstance(param, click.Option) and not param.multiple:
                declared.update(param.opts)
    assert declared >= CHOSEN_ONCE  # a renamed option would silently leave the check
