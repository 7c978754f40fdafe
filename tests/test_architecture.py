"""The package's layering, enforced: imports point one way, mnprof's own imports sit at the top of modules,
and ``mnprof --help`` stays fast (it imports no command, hence no torch)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import click
import pytest

from mnprof.cli import COMMANDS, cli, summary_line

PACKAGE = Path(__file__).resolve().parent.parent / "mnprof"

# Each layer may import only from the layers listed for it (and from itself); the command line sits on top.
ALLOWED = {
    "mnprof.model": {"mnprof.errors", "mnprof.parsing", "mnprof.user_code", "mnprof.project"},
    "mnprof.counting": {"mnprof.errors", "mnprof.user_code", "mnprof.model"},
    "mnprof.host": {"mnprof.provenance"},  # facts about this machine: CPU, cores, memory, the software stack
    "mnprof.runtimes": {
        "mnprof.errors",
        "mnprof.parsing",
        "mnprof.model",
        "mnprof.host",
        "mnprof.provenance",
    },  # fmt: skip
    "mnprof.timing": {
        "mnprof.errors",
        "mnprof.parsing",
        "mnprof.user_code",
        "mnprof.model",
        "mnprof.counting",
        "mnprof.runtimes",
        "mnprof.host",
        "mnprof.files",
        "mnprof.provenance",
        "mnprof.worker",  # the results store tells the mnprof process what it keeps
    },  # fmt: skip
    "mnprof.memory": {
        "mnprof.errors",
        "mnprof.user_code",
        "mnprof.model",
        "mnprof.counting",
        "mnprof.runtimes",
        "mnprof.timing",
    },  # fmt: skip
    "mnprof.paper": {"mnprof.errors", "mnprof.parsing", "mnprof.user_code", "mnprof.model", "mnprof.counting"},
    "mnprof.views": {
        "mnprof.errors",
        "mnprof.user_code",
        "mnprof.model",
        "mnprof.counting",
        "mnprof.paper",
        "mnprof.files",
        "mnprof.provenance",
        "mnprof.timing.records",
        "mnprof.runtimes.registry",  # what each runtime is and can do: no torch, as records
        "mnprof.memory.records",
        "mnprof.timing.store",
    },  # fmt: skip
    "mnprof.check": {
        "mnprof.errors",
        "mnprof.user_code",
        "mnprof.model",
        "mnprof.counting",
        "mnprof.timing",
        "mnprof.runtimes",
        "mnprof.host",
        "mnprof.memory",
        "mnprof.files",
        "mnprof.provenance",
        "mnprof.views.render",
    },  # fmt: skip
    "mnprof.reports": {
        "mnprof.errors",
        "mnprof.user_code",
        "mnprof.model",
        "mnprof.counting",
        "mnprof.timing",
        "mnprof.runtimes",
        "mnprof.host",
        "mnprof.memory",
        "mnprof.paper",
        "mnprof.views",
        "mnprof.check",
        "mnprof.files",
        "mnprof.provenance",
    },  # fmt: skip
    "mnprof.api": {
        "mnprof.errors",
        "mnprof.user_code",
        "mnprof.model",
        "mnprof.counting",
        "mnprof.timing",  # api.sweep: the timing plan, as mnprof table times
        "mnprof.host",  # the cores and host fingerprint of the latency gate
        "mnprof.check",
        "mnprof.files",
    },  # fmt: skip
    "mnprof.pytest_plugin": {"mnprof.api"},  # loaded by every pytest run where mnprof is installed: see LAZY
    "mnprof.project": {"mnprof.errors", "mnprof.files"},
    "mnprof.files": {"mnprof.errors"},  # atomic writes, JSON read and written, the published schemas
    "mnprof.provenance": set(),
    "mnprof.errors": set(),
    "mnprof.parsing": {"mnprof.errors"},  # one value of an enum, a comma-separated list: for options and files alike
    "mnprof.user_code": {"mnprof.errors", "mnprof.torch_state", "mnprof.worker"},  # the fence around user code
    "mnprof.supervisor": {"mnprof._startup", "mnprof.worker"},  # the mnprof process: no torch, no command line
    "mnprof.worker": set(),  # the worker's side of the pipe: the standard library only (the mnprof process loads it)
    "mnprof.torch_state": set(),  # no torch import either: it keeps torch's settings only where torch is loaded
    "mnprof._startup": set(),  # the command's first code, before anything heavy: imports nothing of mnprof's
}


# The imports inside a function: the mnprof process imports the command line only with --in-process; the pytest
# plugin imports the API (and with it torch) only when a test uses its fixture, not in every pytest run.
# mnprof check and baseline import the instructions gate (and with it what counts under Valgrind) only with
# --instructions: a counts-only gate loads no measuring code it does not run.
LAZY = {
    ("mnprof.__main__", "mnprof.cli"),
    ("mnprof.pytest_plugin", "mnprof.api"),
    ("mnprof.cli.check", "mnprof.check.instructions"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def mnprof_imports(tree: ast.Module) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import of an mnprof module, outside TYPE_CHECKING."""
    found = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.ImportFrom) and child.module and child.module.split(".")[0] == "mnprof":
                names = [f"{child.module}.{alias.name}" for alias in child.names] if child.module == "mnprof" else []
                for name in names or [child.module]:
                    found.append((name, child.lineno, top))
            elif isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, top) for a in child.names if a.name.split(".")[0] == "mnprof")
            nested = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            visit(child, top and not nested)

    visit(tree, True)
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def layer_of(name: str) -> str | None:
    return max((layer for layer in ALLOWED if name == layer or name.startswith(layer + ".")), key=len, default=None)


@pytest.mark.parametrize("path", MODULES, ids=lambda path: module_name(path))
def test_imports_point_down_and_sit_at_the_top(path):
    name = module_name(path)
    imports = mnprof_imports(ast.parse(path.read_text(encoding="utf-8")))
    nested = [f"line {line}: {imported}" for imported, line, top in imports if not top and (name, imported) not in LAZY]
    assert not nested, f"{name} imports mnprof modules inside functions: {nested}"
    if name.startswith("mnprof.cli") or name in ("mnprof", "mnprof.__main__"):
        return
    layer = layer_of(name)
    assert layer is not None, f"{name} belongs to no layer; add it to ALLOWED"
    for imported, line, _ in imports:
        target_layer = layer_of(imported) or imported
        if target_layer == layer or imported == "mnprof" or imported.startswith(layer + "."):
            continue
        allowed = ALLOWED[layer]
        assert any(imported == a or imported.startswith(a + ".") for a in allowed), (
            f"{name} line {line} imports {imported}: {layer} may import only {sorted(allowed)}"
        )


def test_nothing_outside_the_command_line_imports_it():
    for path in MODULES:
        name = module_name(path)
        if name.startswith("mnprof.cli") or name == "mnprof.__main__":
            continue
        for imported, line, _ in mnprof_imports(ast.parse(path.read_text(encoding="utf-8"))):
            assert not imported.startswith("mnprof.cli"), f"{name} line {line} imports {imported}"


def test_the_command_list_matches_every_commands_own_help():
    for name in COMMANDS:
        command = cli.get_command(click.Context(cli), name)
        assert isinstance(command, click.Command) and command.name == name
        assert summary_line(name, 1000) == command.get_short_help_str(1000), name


def test_help_imports_no_command_and_no_torch():
    code = "import sys; from mnprof.cli import main; main(['--help']); print(sorted(sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = result.stdout.splitlines()[-1]
    assert "'torch'" not in loaded and "mnprof.cli.table" not in loaded
    assert "Commands:" in result.stdout and all(name in result.stdout for name in COMMANDS)


def test_every_directory_of_modules_is_a_package_a_wheel_would_carry():
    """pyproject.toml's ``packages.find`` takes only directories with an ``__init__.py``: a directory of modules
    without one works from a checkout (a namespace package) and is missing from an installed wheel."""
    from setuptools import find_packages

    found = set(find_packages(str(PACKAGE.parent), include=["mnprof*"]))
    with_modules = {module_name(path.parent / "__init__.py") for path in MODULES}
    assert with_modules <= found, f"directories without __init__.py: {sorted(with_modules - found)}"
