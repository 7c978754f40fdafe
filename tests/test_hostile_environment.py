"""A hostile environment, with the real ``mnprof`` command in its own process: an interrupt at any moment, from the
first line of mnprof's code to the end of its run, is one line and exit 128 + its number; an environment that cannot
import what mnprof needs (a malformed entry point of any installed distribution, too little address space) is one
line naming the cause, exit 2. Never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from mnprof.model import families

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--alpha", "0.25", "--resolution", "32"]
MNPROF = shutil.which("mnprof", path=str(Path(sys.executable).parent))  # the installed console script
ENTRIES = {"mnprof": [MNPROF], "python -m mnprof": [sys.executable, "-m", "mnprof"]}
INTERRUPTED = "interrupted; files already written are complete, nothing was half-written"
SIGHUP = getattr(signal, "SIGHUP", None)

pytestmark = pytest.mark.skipif(MNPROF is None, reason="the mnprof command is not installed beside this Python")


def _environment(**changes: str) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment.pop("PYTHONPROFILEIMPORTTIME", None)
    environment.update(changes)
    return environment


def _message(signum: int) -> str:
    name = "" if signum == signal.SIGINT else f" ({signal.Signals(signum).name})"
    return f"mnprof: error: interrupted{name}; files already written are complete, nothing was half-written"


def _own_lines(stderr: str) -> list[str]:
    """stderr without Python's import-time profile (how the tests below see what the command imports)."""
    return [line for line in stderr.splitlines() if not line.startswith("import time:")]


def _interrupt_after_import(command: list[str], marker: str, delay: float, signum: int, cwd: Path) -> tuple[int, str]:
    """Run ``command``; once it has imported the module ``marker`` (as ``PYTHONPROFILEIMPORTTIME`` reports, live,
    on stderr), wait ``delay`` seconds and send ``signum``. Its exit code and stderr."""
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env=_environment(PYTHONPROFILEIMPORTTIME="1"))  # fmt: skip
    lines: list[str] = []
    imported = threading.Event()

    def drain() -> None:  # all of stderr, always: a full pipe would stop the command where it is
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if line.startswith("import time:") and line.rsplit("|", 1)[-1].strip() == marker:
                imported.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        assert imported.wait(120), f"{command} never imported {marker}: {''.join(lines)[-3000:]}"
        time.sleep(delay)
        process.send_signal(signum)
        code = process.wait(120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(30)
    return code, "".join(lines)


# ---------------------------------------------------------------- 1. signals from the first line


# click is the first thing mnprof's command line imports once its handlers are in place (the signal is sent that long
# after it was imported); then come rich and mnprof's own modules, a few tenths of a second before the run begins.
EARLY = [
    (signal.SIGINT, 0.0),
    (signal.SIGINT, 0.01),
    (signal.SIGINT, 0.02),
    (signal.SIGINT, 0.05),
    (signal.SIGTERM, 0.0),
    (signal.SIGTERM, 0.02),
    (signal.SIGTERM, 0.05),
    *([(SIGHUP, 0.0)] if SIGHUP is not None else []),
]


@pytest.mark.parametrize(("signum", "delay"), EARLY, ids=lambda value: getattr(value, "name", str(value)))
def test_an_interrupt_while_the_command_is_still_importing_is_one_line(tmp_path, signum, delay):
    code, stderr = _interrupt_after_import(
        [MNPROF, "table", "--no-timing", "-q", *TINY], "click", delay, signum, tmp_path
    )
    assert "Traceback" not in stderr, stderr[-3000:]
    assert _own_lines(stderr) == [_message(signum)]
    assert code == 128 + signum


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda value: value.name)
def test_python_m_mnprof_handles_an_early_interrupt_too(tmp_path, signum):
    command = [*ENTRIES["python -m mnprof"], "table", "--no-timing", "-q", *TINY]
    code, stderr = _interrupt_after_import(command, "click", 0.0, signum, tmp_path)
    assert "Traceback" not in stderr, stderr[-3000:]
    assert (code, _own_lines(stderr)) == (128 + signum, [_message(signum)])


def _baseline_interrupted_at_its_end(tmp_path: Path, offset: float, signum: int) -> tuple[int, str, Path]:
    out = tmp_path / "baseline.json"
    process = subprocess.Popen([MNPROF, "baseline", "-q", *TINY, "--out", str(out)], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=_environment())  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not out.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.0005)  # the file appears complete (a rename): the run is about to end
        time.sleep(offset)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, stderr, out


@pytest.mark.parametrize("offset", [0.0, 0.005, 0.05])
def test_an_interrupt_as_the_run_ends_is_ignored_or_one_line_and_the_output_stays_whole(tmp_path, offset):
    code, stderr, out = _baseline_interrupted_at_its_end(tmp_path, offset, signal.SIGINT)
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr[-3000:]
    lines = stderr.splitlines()
    wrote = [line for line in lines if line.startswith("mnprof baseline: wrote 1 configurations to ")]
    others = [line for line in lines if line not in wrote]
    assert len(wrote) <= 1 and others in ([], [_message(signal.SIGINT)]), stderr
    assert code == (130 if others else 0), stderr
    if code == 0:  # ignored: the output was complete
        assert wrote
    if out.exists():  # written whole or not at all
        assert json.loads(out.read_text(encoding="utf-8"))["entries"]
    assert [path.name for path in tmp_path.iterdir()] in ([], [out.name])  # no temporary or lock file left


# ---------------------------------------------------------------- 2. a broken environment is named


def _fake_distribution(root: Path, entry_points_txt: str, name: str = "fake") -> Path:
    """An installed distribution ``name`` 1.0 in ``root`` (for PYTHONPATH), with this ``entry_points.txt``."""
    dist = root / f"{name}-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text(entry_points_txt, encoding="utf-8")
    return dist / "entry_points.txt"


@pytest.mark.parametrize("entry", ENTRIES)
def test_a_malformed_entry_point_of_any_installed_distribution_is_one_line_naming_it(tmp_path, entry):
    path = _fake_distribution(tmp_path / "site", "[console_scripts]\nthis line has no equals sign\n")
    done = subprocess.run([*ENTRIES[entry], "table", "--no-timing", "-q", *TINY], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=_environment(PYTHONPATH=str(tmp_path / "site")))  # fmt: skip
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stderr.startswith(f"mnprof: error: the installed distribution fake 1.0 has a malformed {path} ")
    assert "(line 2 'this line has no equals sign' has no '=')" in done.stderr
    assert "accepted: lines 'name = module:object' under '[group]' headers" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("module", ["nosuchmodule_xyz", "raising_backend"])
def test_a_torch_device_backend_that_fails_to_load_is_one_line(tmp_path, module):
    site = tmp_path / "site"
    _fake_distribution(site, f"[torch.backends]\nfoo = {module}:init\n")  # torch loads these as it is imported
    (site / "raising_backend.py").write_text("raise ValueError('backend boom')\n", encoding="utf-8")
    done = subprocess.run([MNPROF, "table", "--no-timing", "-q", *TINY], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=_environment(PYTHONPATH=str(site)))  # fmt: skip
    assert (done.returncode, done.stdout) == (2, ""), done.stderr[-3000:]
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stderr.startswith("mnprof: error: importing torch failed: RuntimeError: Failed to load the backend")
    assert "accepted: TORCH_DEVICE_BACKEND_AUTOLOAD=0" in done.stderr


def test_mnprofs_own_plugin_lookup_skips_a_distribution_it_cannot_read_with_one_warning(tmp_path, monkeypatch, capsys):
    bad = _fake_distribution(tmp_path, "[mnprof.models]\nbroken\n")
    _fake_distribution(tmp_path, "[mnprof.models]\nplugged = tests.tiny_family:tiny\n", name="mnprof_plugin_fine")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = families.installed_families()
    assert found["plugged"].target == "tests.tiny_family:tiny"  # the readable one is still found
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        f"mnprof: warning: skipped the installed distribution fake 1.0: its {bad} cannot be read ("
    ), err
    assert families.resolve("plugged", {}).target == "tests.tiny_family:tiny"
    assert capsys.readouterr().err == ""  # once per distribution


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS as Linux enforces it")
@pytest.mark.parametrize("limit_mib", [24, 64, 200])
def test_too_little_address_space_to_import_torch_is_one_line(tmp_path, limit_mib):
    import resource

    limit = limit_mib * 2**20

    def limited() -> None:  # in the child, before it runs Python: ``ulimit -v``
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    done = subprocess.run([MNPROF, "table", "--no-timing", "-q", *TINY], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=_environment(), preexec_fn=limited)  # fmt: skip
    if done.returncode == 0:
        pytest.skip(f"{limit_mib} MiB is enough for torch here")
    if "Fatal Python error" in done.stderr:
        pytest.skip(f"{limit_mib} MiB is too little for Python itself to start here")
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stderr.startswith("mnprof: error: too little memory or address space to import ")
    assert f"the address space is limited to {limit // 1024} KiB (ulimit -v)" in done.stderr
    assert "accepted: a larger limit (ulimit -v unlimited) or more free memory" in done.stderr


# ---------------------------------------------------------------- 3. the entry points themselves


def test_the_command_enters_through_a_module_that_imports_nothing_heavy_first():
    (point,) = entry_points(group="console_scripts", name="mnprof")
    assert point.value == "mnprof.__main__:main"
    code = "import sys; import mnprof._startup; print(sorted(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for heavy in ("'click'", "'rich'", "'torch'", "'importlib.metadata'", "'typing'", "'mnprof.cli'"):
        assert heavy not in loaded, heavy
    # every way in runs the command line: the script, python -m, and the entry the script had before
    for command in ([MNPROF], [sys.executable, "-m", "mnprof"],
                    [sys.executable, "-c", "from mnprof.cli import console_main; console_main()"]):  # fmt: skip
        done = subprocess.run([*command, "--version"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert (done.returncode, done.stderr) == (0, "") and done.stdout.startswith("mnprof, version "), command


def test_a_working_directory_removed_before_the_command_runs_is_one_line(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    done = subprocess.run([MNPROF, "table", "--no-timing", "-q", *TINY], cwd=gone, capture_output=True, text=True,
                          timeout=300, env=_environment(), preexec_fn=lambda: os.rmdir(gone))  # fmt: skip
    assert (done.returncode, done.stdout) == (2, ""), done.stderr[-3000:]
    assert done.stderr == (
        "mnprof: error: the working directory cannot be read (No such file or directory); accepted: run mnprof from "
        "an existing directory\n"
    )  # torch's math library used to end the process with its own line, "Intel oneMKL FATAL ERROR"


@pytest.mark.parametrize("delay", [2.0, 3.5])
def test_two_signals_at_once_are_one_interruption_and_one_line(tmp_path, delay):
    out = tmp_path / "baseline.json"
    process = subprocess.Popen([MNPROF, "baseline", "-q", *TINY, "--out", str(out)], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env=_environment())  # fmt: skip
    try:
        time.sleep(delay)  # importing torch, or counting
        process.send_signal(signal.SIGTERM)
        time.sleep(0.001)
        process.send_signal(signal.SIGINT)  # a CI runner's SIGTERM, then the user's Ctrl-C
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if process.returncode == 0:  # the run had finished before the signals came
        return
    # Python runs the handlers of signals pending together in the order of their numbers: either may be the one.
    either = [(128 + signum, [_message(signum)]) for signum in (signal.SIGTERM, signal.SIGINT)]
    assert (process.returncode, stderr.splitlines()) in either
    assert not out.exists()


def test_a_working_directory_that_cannot_be_entered_is_not_blamed_on_user_code(monkeypatch):
    from mnprof.user_code import process_kept

    def refuse(path: object) -> None:  # an unreadable directory (mode 000, without root's bypass) cannot be entered
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "chdir", refuse)
    with process_kept():  # user code that left the directory alone: nothing to enter again
        pass
    assert os.getcwd()
