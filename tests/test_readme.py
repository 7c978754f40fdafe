"""The README's commands and CI stay in step; the README stays a front page, the docs site stays whole."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 250


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def nav_pages() -> list[str]:
    """The pages mkdocs.yml's nav lists (``- Title: page.md`` lines), in order."""
    config = (ROOT / "mkdocs.yml").read_text()
    nav = config.split("\nnav:\n", 1)[1]
    return re.findall(r"^\s+-\s+(?:[^:\n]+:\s+)?(\S+\.md)\s*$", nav, flags=re.MULTILINE)


def test_quick_start_has_exactly_two_commands_install_and_run_then_test():
    install_and_run, test = quick_start_commands()
    assert "pip install ." in install_and_run and install_and_run.endswith("mnprof table")
    assert '".[test]"' in test and "pytest" in test


def test_ci_runs_the_readmes_test_command_verbatim():
    test_command = quick_start_commands()[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci


def test_the_readme_is_a_front_page():
    readme = (ROOT / "README.md").read_text()
    lines = readme.splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail to docs/"
    assert "UTC" not in readme, "measurement logs belong in benchmarks/RESULTS.md, not the README"


def test_the_readmes_local_links_resolve():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", readme)
    local = [target.split("#", 1)[0] for target in targets if not re.match(r"[a-z]+:|#", target)]
    assert local, "the README links to the docs"
    missing = [target for target in local if not (ROOT / target).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_every_nav_page_exists_and_every_page_is_in_the_nav():
    pages = nav_pages()
    assert "index.md" in pages and len(pages) == len(set(pages))
    missing = [page for page in pages if not (ROOT / "docs" / page).is_file()]
    assert not missing, f"mkdocs.yml's nav lists pages that do not exist: {missing}"
    unlisted = sorted(str(path.relative_to(ROOT / "docs")) for path in (ROOT / "docs").rglob("*.md"))
    assert sorted(pages) == unlisted, "every page in docs/ is in mkdocs.yml's nav, and only those"


def test_ci_builds_the_docs_strictly_and_the_build_is_ignored():
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -e ".[docs]"' in ci and "mkdocs build --strict" in ci
    assert re.search(r'^docs = \["mkdocs[^"]*"\]', (ROOT / "pyproject.toml").read_text(), flags=re.MULTILINE)
    assert "/site/" in (ROOT / ".gitignore").read_text().splitlines()
