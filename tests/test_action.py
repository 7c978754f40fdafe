"""The GitHub Action (action.yml, action/mnprof-check.sh, action/render.py) and the workflow that uses it
(.github/workflows/mnprof.yml).

The action's shell step runs here as a runner would run it: a fake ``GITHUB_*`` environment in a scratch directory
(the step summary, the step outputs and a push or pull_request event payload as files) and a recorded ``gh``
stand-in on PATH, which logs every call with the body it was sent and answers as the GitHub API does. The fast
tests replay a check report that mnprof's own renderer wrote (an interpreter stand-in answers ``python -m mnprof
check``); the slow one runs the real ``mnprof check`` on a tiny project, passing and failing. actionlint and
shellcheck, the real clients, lint the workflow (with the action's metadata, through ``uses: ./``) and the script;
broken copies prove that the lint fails.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_run import ROOT
from user_project import NETS, grown

from mnprof.check import render_check
from mnprof.check.findings import CheckResult, Finding, compare

SCRIPT = ROOT / "action" / "mnprof-check.sh"
RENDER = ROOT / "action" / "render.py"
WORKFLOW = ROOT / ".github" / "workflows" / "mnprof.yml"
MARKER = "<!-- mnprof-check -->"
REPOSITORY = "octo/models"

_spec = importlib.util.spec_from_file_location("mnprof_action_render", RENDER)
render = importlib.util.module_from_spec(_spec)  # the action's renderer, beside its script (not a package)
_spec.loader.exec_module(render)

# ------------------------------------------------------------------ check results of every kind, as mnprof renders them


def _entry(params: int, macs: int, conv: int, **extra: Any) -> dict[str, Any]:
    return {
        "counts": {"pytorch": {"params": params}, "fvcore": {"macs": macs, "macs_by_operator": {"conv": conv}, **extra}}
    }


BEFORE = {
    "m@1.0-32": _entry(1_000, 50_000, 40_000, unsupported_ops={}),
    "m@0.5-32": _entry(400, 20_000, 15_000, unsupported_ops={}),
}
NOW = {
    "m@1.0-32": _entry(1_200, 48_000, 40_000, unsupported_ops={"aten::gelu": 3}),  # grew, shrank, uncounted
    "m@0.75-32": _entry(700, 30_000, 25_000),  # added; m@0.5-32 removed
}
NOW["m@1.0-32"]["counts"]["analytic"] = {"activations": 5_000}  # a metric the baseline did not record

RESULTS = {
    "passed": compare(BEFORE, BEFORE),
    "passed with notices": compare(BEFORE, {**BEFORE, "m@0.5-32": _entry(400, 19_000, 14_000, unsupported_ops={})}),
    "every kind of finding": compare(
        BEFORE, NOW, extra=[Finding("slower", "m@1.0-32", "latency", "latency_relative", 1.031, 1.2894)]
    ),
    "within tolerance": compare(
        BEFORE, {**BEFORE, "m@1.0-32": _entry(1_010, 50_000, 40_000, unsupported_ops={})}, tolerance_pct=1.5
    ),
    "strict": compare(BEFORE, {"m@1.0-32": BEFORE["m@1.0-32"]}, strict=True),
}
if {"instructions_tolerance_pct", "warnings"} <= {field.name for field in dataclasses.fields(CheckResult)}:
    RESULTS["instructions, with a warning"] = dataclasses.replace(
        RESULTS["every kind of finding"],
        instructions_tolerance_pct=2.5,
        warnings=("instructions compared across software versions (--force): 100% guess",),
    )


def _report(result: CheckResult, baseline: str = "reports/baseline.json") -> str:
    """What ``mnprof check --format json`` prints for ``result``."""
    return render_check(result, "json", Path(baseline))


@pytest.mark.parametrize("name", RESULTS)
def test_the_renderer_writes_what_mnprof_check_writes(name):
    result = RESULTS[name]
    report = json.loads(_report(result))
    assert render.markdown(report) == render_check(result, "markdown", Path("reports/baseline.json"))
    assert render.annotations(report) == render_check(result, "github", Path("reports/baseline.json"))


def test_every_status_is_rendered():
    statuses = {f.status for f in RESULTS["every kind of finding"].findings}
    assert statuses == {"grew", "shrank", "added", "removed", "uncounted", "slower"}


def test_a_long_summary_is_shortened_to_fit_a_comment():
    rows = "".join(f"| FAIL | `m@{i}` | fvcore | `macs` | 1 | 2 | +1 | +100.00 |\n" for i in range(2_000))
    text = "### :x: mnprof check FAILED\n\n| | configuration |\n|---|---|\n" + rows
    short = render.shortened(text)
    assert len(text) > render.COMMENT_LIMIT >= len(short)
    assert short.startswith("### :x: mnprof check FAILED\n")
    kept = short.count("| FAIL |")
    assert short.endswith(f"... {2_000 - kept} more lines: see the job summary of this run\n")
    assert render.shortened("short\n") == "short\n"


# ------------------------------------------------------------------ the action's step under a fake runner

GH_STANDIN = """\
#!{python}
# gh, recorded: each call is logged (argv and the JSON body it sends) and answered as the GitHub API answers.
import json, os, sys

argv = sys.argv[1:]
body = None
if "--input" in argv:
    source = argv[argv.index("--input") + 1]
    body = json.load(sys.stdin if source == "-" else open(source, encoding="utf-8"))
with open(os.environ["GH_STANDIN_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps({{"argv": argv, "body": body, "token": os.environ.get("GH_TOKEN")}}) + "\\n")
if os.environ.get("GH_STANDIN_FAIL"):
    sys.stderr.write("gh: Resource not accessible by integration (HTTP 403)\\n")
    sys.exit(1)
method = argv[argv.index("-X") + 1] if "-X" in argv else "GET"
path = next(arg for arg in argv[1:] if arg.startswith("repos/"))
if method == "GET":  # --paginate: every page, one JSON array after another
    sys.stdout.write(open(os.environ["GH_STANDIN_PAGES"], encoding="utf-8").read())
else:
    number = int(path.rsplit("/", 1)[1]) if method == "PATCH" else 9001
    url = "https://github.com/{repository}/pull/7#issuecomment-%d" % number
    user = {{"login": "github-actions[bot]"}}
    json.dump({{"id": number, "html_url": url, "body": body["body"], "user": user}}, sys.stdout)
"""

PYTHON_STANDIN = """\
#!/usr/bin/env bash
# The interpreter the action runs: 'python -m mnprof check' replays a recorded report, 'python -m pip' is logged,
# anything else (the renderer) runs in the real one.
if [[ "$1 $2" == "-m mnprof" || "$1 $2" == "-m pip" ]]; then
  printf '%s\\n' "$*" >>"$PYTHON_STANDIN_LOG"
fi
if [[ "$1 $2 $3" == "-m mnprof check" ]]; then
  cat "$CHECK_STDOUT"; cat "$CHECK_STDERR" >&2; exit "$CHECK_EXIT"
fi
[[ "$1 $2" == "-m pip" ]] && exit 0
exec {python} "$@"
"""

COMMENTS_WITHOUT_MARKER = [  # two pages
    [{"id": 1, "body": "Nice.", "user": {"login": "alice"}}],
    [{"id": 2, "body": f"> {MARKER} quoted by a person", "user": {"login": "bob"}}],
]
COMMENTS_WITH_MARKER = [
    [{"id": 1, "body": "Nice.", "user": {"login": "alice"}}],
    [{"id": 42, "body": f"{MARKER}\n### old result", "user": {"login": "github-actions[bot]"}}],
]


class Runner:
    """A fake GitHub Actions runner for one step: its files, its environment and what gh was asked."""

    def __init__(self, root: Path):
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir()
        self.summary = root / "step_summary.md"
        self.outputs_file = root / "github_output"
        self.event = root / "event.json"
        self.gh_log = root / "gh.log"
        self.python_log = root / "python.log"
        self.temp = root / "runner_temp"
        self.temp.mkdir()
        gh = self.bin / "gh"
        gh.write_text(GH_STANDIN.format(python=sys.executable, repository=REPOSITORY), encoding="utf-8")
        gh.chmod(0o755)
        self.pages(COMMENTS_WITHOUT_MARKER)
        self.env = {
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "HOME": os.environ.get("HOME", str(root)),
            "LANG": "C.UTF-8",
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_REPOSITORY": REPOSITORY,
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_RUN_ID": "123456",
            "GITHUB_SHA": "f" * 40,
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "GITHUB_OUTPUT": str(self.outputs_file),
            "GITHUB_EVENT_PATH": str(self.event),
            "RUNNER_TEMP": str(self.temp),
            "GH_TOKEN": "token-from-input",
            "GH_STANDIN_LOG": str(self.gh_log),
            "GH_STANDIN_PAGES": str(root / "pages.json"),
            "PYTHON_STANDIN_LOG": str(self.python_log),
            "INPUT_MNPROF": "false",
            "INPUT_INSTALL": "",
            "INPUT_PYTHON": sys.executable,
            "INPUT_COMMENT": "true",
        }
        self.pull_request()

    def pages(self, pages: list[list[dict[str, Any]]]) -> None:
        (self.root / "pages.json").write_text("".join(json.dumps(page) for page in pages), encoding="utf-8")

    def pull_request(self, number: int = 7) -> None:
        payload = {
            "action": "synchronize",
            "number": number,
            "pull_request": {
                "number": number,
                "title": "$(touch pwned) `touch pwned` ${{ github.token }}",  # never shell code
                "head": {"sha": "a" * 40, "ref": "feature"},
            },
        }
        self.event.write_text(json.dumps(payload), encoding="utf-8")
        self.env["GITHUB_EVENT_NAME"] = "pull_request"

    def push(self) -> None:
        self.event.write_text(json.dumps({"ref": "refs/heads/main", "after": "b" * 40}), encoding="utf-8")
        self.env["GITHUB_EVENT_NAME"] = "push"

    def replay(self, report: str, exit_code: int, stderr: str = "") -> None:
        """``python -m mnprof check`` prints ``report`` and exits ``exit_code``: the interpreter stand-in."""
        python = self.bin / "python-standin"
        python.write_text(PYTHON_STANDIN.format(python=sys.executable), encoding="utf-8")
        python.chmod(0o755)
        (self.root / "check.stdout").write_text(report, encoding="utf-8")
        (self.root / "check.stderr").write_text(stderr, encoding="utf-8")
        self.env.update(
            INPUT_PYTHON=str(python),
            CHECK_STDOUT=str(self.root / "check.stdout"),
            CHECK_STDERR=str(self.root / "check.stderr"),
            CHECK_EXIT=str(exit_code),
        )

    def run(self, cwd: Path | None = None, **inputs: str) -> subprocess.CompletedProcess[str]:
        env = {**self.env, **{f"INPUT_{key.upper()}": value for key, value in inputs.items()}}
        return subprocess.run(
            ["bash", str(SCRIPT)], cwd=cwd or self.root, env=env, capture_output=True, text=True, timeout=600
        )

    def outputs(self) -> dict[str, str]:
        """The step's outputs: GITHUB_OUTPUT's NAME=VALUE lines, each name once."""
        lines = self.outputs_file.read_text(encoding="utf-8").splitlines()
        pairs = [line.split("=", 1) for line in lines]
        assert all(len(pair) == 2 for pair in pairs), lines
        names = [name for name, _ in pairs]
        assert len(names) == len(set(names)), names
        return dict(pairs)

    def gh_calls(self) -> list[dict[str, Any]]:
        if not self.gh_log.exists():
            return []
        return [json.loads(line) for line in self.gh_log.read_text(encoding="utf-8").splitlines()]

    def check_calls(self) -> list[str]:
        return self.python_log.read_text(encoding="utf-8").splitlines() if self.python_log.exists() else []


def _annotations(stdout: str) -> list[tuple[str, str, str]]:
    """Workflow commands in the step's output: (level, title, message) for each ``::LEVEL title=T::M``."""
    found = []
    for line in stdout.splitlines():
        if line.startswith("::") and not line.startswith(("::group::", "::endgroup::")):
            command, message = line[2:].split("::", 1)
            level, _, properties = command.partition(" ")
            found.append((level, properties.removeprefix("title="), message))
    return found


def _comment_body(call: dict[str, Any]) -> str:
    body = call["body"]["body"]
    assert body.startswith(MARKER + "\n"), body
    return body


@pytest.fixture
def runner(tmp_path) -> Runner:
    return Runner(tmp_path)


FAILING = RESULTS["every kind of finding"]
PASSING = RESULTS["passed"]


def test_a_pull_request_without_the_comment_gets_one(runner):
    runner.replay(_report(PASSING), 0)
    step = runner.run(args="--tolerance 0.5% --strict")
    assert step.returncode == 0, step.stderr
    markdown = render_check(PASSING, "markdown", Path("reports/baseline.json"))
    assert runner.summary.read_text(encoding="utf-8") == markdown
    outputs = runner.outputs()
    assert outputs["exit-code"] == "0" and outputs["status"] == "passed"
    assert json.loads(Path(outputs["report"]).read_text(encoding="utf-8"))["passed"] is True
    assert outputs["comment-id"] == "9001"
    assert outputs["comment-url"] == f"https://github.com/{REPOSITORY}/pull/7#issuecomment-9001"
    # the user's arguments, then the action's own: the last --format wins
    assert runner.check_calls() == ["-m mnprof check --tolerance 0.5% --strict --quiet --format json"]

    listed, created = runner.gh_calls()
    assert listed["argv"] == ["api", "--paginate", f"repos/{REPOSITORY}/issues/7/comments?per_page=100"]
    assert created["argv"][:4] == ["api", "-X", "POST", f"repos/{REPOSITORY}/issues/7/comments"]
    assert {call["token"] for call in (listed, created)} == {"token-from-input"}
    body = _comment_body(created)
    assert markdown in body
    assert f"[the run](https://github.com/{REPOSITORY}/actions/runs/123456)" in body
    assert "a" * 40 in body  # the pull request's head, not the merge commit GITHUB_SHA names
    assert not (runner.root / "pwned").exists()


def test_a_later_push_updates_the_comment_instead_of_adding_one(runner):
    runner.pages(COMMENTS_WITH_MARKER)
    runner.replay(_report(FAILING), 1)
    step = runner.run()
    assert step.returncode == 1, step.stderr
    calls = runner.gh_calls()
    listed = ["--paginate", f"repos/{REPOSITORY}/issues/7/comments?per_page=100"]
    assert [call["argv"][1:3] for call in calls] == [listed, ["-X", "PATCH"]]
    assert calls[1]["argv"][3] == f"repos/{REPOSITORY}/issues/comments/42"
    assert not [call for call in calls if "POST" in call["argv"]]
    body = _comment_body(calls[1])
    assert (
        "### :x: mnprof check FAILED" in body and "| FAIL | `m@1.0-32` | pytorch | `params` | 1,000 | 1,200 |" in body
    )
    outputs = runner.outputs()
    assert (outputs["exit-code"], outputs["status"], outputs["comment-id"]) == ("1", "failed", "42")

    # the annotations are mnprof check --format github's, one per finding, errors for what fails
    annotations = _annotations(step.stdout)
    expected = _annotations(render_check(FAILING, "github", Path("reports/baseline.json")))
    assert annotations == expected
    levels = [level for level, _, _ in annotations]
    assert levels.count("error") == len(FAILING.failures) and "notice" in levels
    assert step.stdout.rstrip().endswith(render.summary(json.loads(_report(FAILING))))


def test_a_push_makes_no_comment(runner):
    runner.push()
    runner.replay(_report(FAILING), 1)
    step = runner.run()
    assert step.returncode == 1
    assert runner.gh_calls() == []
    assert runner.summary.read_text(encoding="utf-8").startswith("### :x: mnprof check FAILED")
    assert "comment-id" not in runner.outputs()


def test_comment_false_makes_no_comment(runner):
    runner.replay(_report(PASSING), 0)
    step = runner.run(comment="false")
    assert step.returncode == 0
    assert runner.gh_calls() == []
    assert runner.outputs()["status"] == "passed"


def test_a_comment_that_cannot_be_made_warns_and_keeps_the_gates_verdict(runner):
    runner.env["GH_STANDIN_FAIL"] = "1"  # a fork's pull request: the token is read-only
    runner.replay(_report(FAILING), 1)
    step = runner.run()
    assert step.returncode == 1
    warnings = [a for a in _annotations(step.stdout) if a[0] == "warning" and a[1] == "mnprof check"]
    assert len(warnings) == 1 and "could not comment on pull request #7" in warnings[0][2]
    assert "comment-id" not in runner.outputs() and runner.outputs()["status"] == "failed"


def test_a_check_that_cannot_run_is_an_error_everywhere(runner):
    line = "mnprof: error: baseline reports/baseline.json does not exist; regenerate it with: mnprof baseline"
    runner.replay("", 2, stderr=line + "\n")
    step = runner.run()
    assert step.returncode == 2
    assert _annotations(step.stdout) == [("error", "mnprof check could not run (exit 2)", line)]
    outputs = runner.outputs()
    assert (outputs["exit-code"], outputs["status"]) == ("2", "error")
    summary = runner.summary.read_text(encoding="utf-8")
    assert summary.startswith("### :x: mnprof check could not run (exit 2)") and line in summary
    (_, created) = runner.gh_calls()
    assert line in _comment_body(created)


def test_an_unreadable_report_never_passes(runner):
    runner.replay("not json\n", 0)
    step = runner.run()
    assert step.returncode == 2
    assert runner.outputs()["status"] == "error"


def _installs(runner: Runner) -> list[str]:
    return [line for line in runner.check_calls() if line.startswith("-m pip")]


def test_mnprof_comes_from_the_actions_own_checkout_by_default(runner):
    runner.replay(_report(PASSING), 0)
    step = runner.run(
        mnprof="", install=". torchvision", pip_args="--extra-index-url https://download.pytorch.org/whl/cpu"
    )
    assert step.returncode == 0, step.stderr
    assert _installs(runner) == [
        "-m pip install --disable-pip-version-check --extra-index-url https://download.pytorch.org/whl/cpu "
        f"{ROOT} . torchvision"
    ]
    assert "::group::pip install" in step.stdout and "::endgroup::" in step.stdout


@pytest.mark.parametrize(
    ("mnprof", "install", "expected"),
    [
        ("mnprof==0.1.0", "", ["-m pip install --disable-pip-version-check mnprof==0.1.0"]),
        ("false", ".", ["-m pip install --disable-pip-version-check ."]),
        ("false", "", []),  # everything is installed already
    ],
)
def test_install_takes_what_the_inputs_name(runner, mnprof, install, expected):
    runner.replay(_report(PASSING), 0)
    assert runner.run(mnprof=mnprof, install=install, pip_args="").returncode == 0
    assert _installs(runner) == expected


# ------------------------------------------------------------------ the real mnprof check, end to end


SETTINGS = """\
[tool.mnprof]
models = ["tiny=nets:tiny"]
alphas = [1.0]
resolutions = [32]
num_classes = 10
"""


@pytest.mark.slow
def test_the_real_check_passes_then_fails_on_one_comment(runner, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "nets.py").write_text(NETS, encoding="utf-8")
    (project / "pyproject.toml").write_text(SETTINGS, encoding="utf-8")
    recorded = subprocess.run(
        [sys.executable, "-m", "mnprof", "baseline", "--quiet"], cwd=project, capture_output=True, text=True
    )
    assert recorded.returncode == 0, recorded.stderr

    passed = runner.run(cwd=project)
    assert passed.returncode == 0, passed.stderr
    assert runner.outputs()["status"] == "passed"
    assert runner.summary.read_text(encoding="utf-8").startswith(
        "### :white_check_mark: mnprof check passed: 1 configurations compared"
    )
    (_, created) = runner.gh_calls()
    assert "POST" in created["argv"]
    # the comment now exists: the stand-in lists it, as GitHub would
    runner.pages([[{"id": 9001, "body": created["body"]["body"], "user": {"login": "github-actions[bot]"}}]])

    (project / "nets.py").write_text(grown(), encoding="utf-8")
    runner.outputs_file.unlink()
    runner.summary.unlink()
    grew = runner.run(cwd=project)
    assert grew.returncode == 1, grew.stderr
    report = json.loads(Path(runner.outputs()["report"]).read_text(encoding="utf-8"))
    assert report["passed"] is False
    params = [f for f in report["findings"] if (f["counter"], f["metric"]) == ("pytorch", "params")]
    assert params == [
        {
            "status": "grew",
            "fails": True,
            "entry": "tiny@1.0-32",
            "counter": "pytorch",
            "metric": "params",
            "baseline": 634,
            "now": 946,
            "delta": 312,
            "percent": pytest.approx(49.2113564),
        }
    ]
    assert ("error", "mnprof%3A tiny@1.0-32 grew", "tiny@1.0-32 pytorch params: 634 -> 946 (+312, +49.21%25)") in (
        _annotations(grew.stdout)
    )
    assert runner.summary.read_text(encoding="utf-8") == render.markdown(report)
    calls = runner.gh_calls()[2:]
    assert [call["argv"][:4] for call in calls][1] == ["api", "-X", "PATCH", f"repos/{REPOSITORY}/issues/comments/9001"]
    assert len([call for call in runner.gh_calls() if "POST" in call["argv"]]) == 1  # one comment, updated


# ------------------------------------------------------------------ the action's metadata and the workflow


def test_the_action_pastes_no_expression_into_shell():
    """Inputs reach the script through env: (where ${{ }} is safe), never spliced into a run: line, where a pull
    request's title or a branch name would be shell code. actionlint does not read a composite action's steps."""
    action = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    assert action["runs"]["using"] == "composite"
    (step,) = action["runs"]["steps"]
    assert "${{" not in step["run"] and "action/mnprof-check.sh" in step["run"]
    passed = {name.removeprefix("INPUT_").lower().replace("_", "-") for name in step["env"] if name != "GH_TOKEN"}
    assert passed | {"github-token", "working-directory"} == set(action["inputs"])
    script = SCRIPT.read_text(encoding="utf-8")
    assert all(name in script for name in step["env"])
    written = {name for name in action["outputs"] if f"output {name} " in script}
    assert written == set(action["outputs"])
    assert MARKER in script


def test_the_workflow_uses_the_action_with_least_permissions():
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert set(workflow[True]) == {"push", "pull_request"}  # YAML 1.1 reads the key "on" as True
    assert workflow["permissions"] == {"contents": "read", "pull-requests": "write"}
    uses = [step.get("uses") for step in workflow["jobs"]["check"]["steps"]]
    assert "./" in uses


def _tool(name: str) -> str:
    """The real client on PATH or beside this Python; in CI its absence fails (.ci/run installs it), elsewhere the
    test is skipped with the reason."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        how = {"actionlint": 'pip install -e ".[test]"', "shellcheck": "apt-get install shellcheck"}[name]
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; .ci/run installs it ({how})")
        pytest.skip(f"{name} is not installed ({how})")
    return found


def _actionlint(repository: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("actionlint"), "-oneline", "-no-color"], cwd=repository, capture_output=True, text=True, timeout=120
    )


def _copy(tmp_path: Path) -> Path:
    """The workflow and the action, in a repository of their own, to break."""
    copy = tmp_path / "repository"
    (copy / ".git").mkdir(parents=True)  # actionlint finds the project by its .git
    shutil.copytree(ROOT / ".github", copy / ".github")
    shutil.copy(ROOT / "action.yml", copy / "action.yml")
    return copy


def test_actionlint_passes_the_workflow_and_the_actions_metadata():
    linted = _actionlint(ROOT)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert linted.stdout == ""


BROKEN = {  # a change to the workflow or the action, and what actionlint must say about it
    "a pull request's title in a run: line": (
        "workflow",
        "      - id: mnprof\n",
        '      - run: echo "${{ github.event.pull_request.title }}"\n      - id: mnprof\n',
        '"github.event.pull_request.title" is potentially untrusted',
    ),
    "an input the action does not have": (
        "workflow",
        "        uses: ./\n",
        "        uses: ./\n        with:\n          tolerence: 1%\n",
        'input "tolerence" is not defined in action "mnprof check"',
    ),
    "an output the action does not have": (
        "workflow",
        "steps.mnprof.outputs.report != ''",
        "steps.mnprof.outputs.reports != ''",
        'property "reports" is not defined',
    ),
    "an unknown context": (
        "workflow",
        "github.event.pull_request.number",
        "gihub.event.pull_request.number",
        'undefined variable "gihub"',
    ),
    "an action that is not composite": (
        "action",
        "using: composite",
        "using: compost",
        'invalid runner name "compost"',
    ),
}


@pytest.mark.parametrize("name", BROKEN)
def test_actionlint_fails_a_broken_copy(tmp_path, name):
    where, old, new, message = BROKEN[name]
    copy = _copy(tmp_path)
    path = copy / (".github/workflows/mnprof.yml" if where == "workflow" else "action.yml")
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    linted = _actionlint(copy)
    assert linted.returncode == 1, linted.stdout + linted.stderr
    assert message in linted.stdout, linted.stdout


def test_shellcheck_passes_the_actions_script_and_fails_a_broken_one(tmp_path):
    shellcheck = _tool("shellcheck")
    passed = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True)
    assert passed.returncode == 0, passed.stdout
    broken = tmp_path / "broken.sh"
    broken.write_text(SCRIPT.read_text(encoding="utf-8").replace('"${args[@]}"', "${args[@]}"), encoding="utf-8")
    failed = subprocess.run([shellcheck, "--format", "json", str(broken)], capture_output=True, text=True)
    assert failed.returncode == 1
    assert 2068 in {finding["code"] for finding in json.loads(failed.stdout)}  # SC2068: unquoted array expansion
