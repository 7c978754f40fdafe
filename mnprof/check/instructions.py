"""Instructions for the regression gate, only on request (``mnprof baseline --instructions``, ``mnprof check
--instructions``): imported by the command line only then, so that a counts-only gate loads no measuring code.

Each entry's instructions per forward pass of one image, counted under Valgrind's Callgrind
(:mod:`mnprof.timing.instructions`), go into the baseline's ``instructions`` section with what decides them: the
torch build (version and commit), the Valgrind version (its CPU model), the Python version and the machine, and
how they were counted (passes, warm-ups, Valgrind processes). A check counts the same way the baseline did and
compares only against the same software: another torch or Valgrind runs other code, so its counts would differ
by more than any tolerance for reasons that are not the model's; such a baseline is refused with one line, or
compared with ``--force`` and a warning in the report.

The comparison itself is the counts' (:func:`mnprof.check.findings.compare`): each entry's instructions are the
``callgrind`` counter's ``instructions`` metric, failing when they grew beyond ``--instructions-tolerance``.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

from mnprof.check.findings import INSTRUCTIONS_COUNTER, INSTRUCTIONS_METRIC
from mnprof.check.sections import refuse_other_method
from mnprof.check.settings import CheckSettings, entry_key
from mnprof.errors import MnprofError
from mnprof.model.config import ModelConfig
from mnprof.timing import instructions as callgrind

__all__ = [
    "INSTRUCTIONS_METHOD",
    "SOFTWARE",
    "add_instructions",
    "instructions_section",
    "measure_instructions",
    "software_here",
    "usable_instructions",
]

# What the baseline's instructions section holds: one forward pass of one image, eval mode, inference mode, one
# thread, counted under Callgrind (mnprof.timing.instructions); the median of the counted passes.
INSTRUCTIONS_METHOD = "callgrind-forward-batch1"
# What decides the counts besides the model, as the section names them, and how a message says them.
SOFTWARE = {"torch": "torch", "torch_git": "torch commit", "valgrind": "Valgrind", "python": "Python",
            "machine": "machine"}  # fmt: skip
# How they are counted: the section's keys and count_instructions' arguments.
HOW = ("passes", "warmup", "warm_first", "processes")


def software_here() -> dict[str, str]:
    """The software that decides instruction counts here; refuses (one line) where Valgrind cannot count."""
    valgrind = callgrind.check_available("cpu")
    torch = callgrind.torch
    return {
        "torch": str(torch.__version__),
        "torch_git": str(getattr(torch.version, "git_version", "") or ""),
        "valgrind": valgrind,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def _configs(settings: CheckSettings) -> list[tuple[str, ModelConfig]]:
    """(entry key, configuration) of every entry this run counts (its --shard part), in the grid's order."""
    return [
        (entry_key(model, alpha, resolution), ModelConfig(alpha, resolution, settings.num_classes, family=model.family))
        for model, alpha, resolution in settings.keys()  # noqa: SIM118 - a method of CheckSettings, not a dict
    ]


def measure_instructions(
    settings: CheckSettings,
    how: Mapping[str, Any] | None = None,
    on_event: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every entry's instructions per forward pass, counted under Valgrind as ``how`` says (a baseline's section:
    its passes, warm-ups and processes, so that a check counts as its baseline did; this mnprof's defaults
    without), as a baseline's ``instructions`` section."""
    chosen = _configs(settings)
    arguments = {key: (how or {}).get(key, getattr(callgrind, key.upper())) for key in HOW}
    run = callgrind.count_instructions([config for _, config in chosen], on_event=on_event, **arguments)
    entries = {
        key: {"instructions": count.instructions, "passes": list(count.passes)}
        for (key, _), count in zip(chosen, run.counts, strict=True)
    }
    return instructions_section(entries, software_here(), run)


def instructions_section(entries: Mapping[str, Any], software: Mapping[str, str], run: Any) -> dict[str, Any]:
    """The baseline's ``instructions`` section: the method, the software, how the run counted, the entries."""
    return {
        "method": INSTRUCTIONS_METHOD,
        **{key: software[key] for key in SOFTWARE},
        **{key: getattr(run, key) for key in HOW},
        "entries": dict(sorted(entries.items())),
    }


def usable_instructions(
    section: Mapping[str, Any] | None, here: Mapping[str, str], path: Path, force: bool
) -> tuple[str, ...]:
    """Refuse, before anything is counted, an instructions baseline this check cannot compare with (one line);
    with ``force``, compare one counted with other software, and return the warning the report says aloud."""
    regenerate = refuse_other_method(
        section,
        path,
        what="instructions",
        method=INSTRUCTIONS_METHOD,
        recorded="were counted another way",
        this="this mnprof",
    )
    assert section is not None  # refused above
    differ = [key for key in SOFTWARE if section.get(key) != here[key]]
    if not differ:
        return ()
    there = ", ".join(f"{SOFTWARE[key]} {section.get(key) or '?'}" for key in differ)
    now = ", ".join(f"{SOFTWARE[key]} {here[key] or '?'}" for key in differ)
    if not force:
        raise MnprofError(
            f"baseline {path} instructions were counted with {there}, this check counts with {now}: instructions "
            f"compare only under the same software; accepted: {regenerate}, or --force to compare anyway"
        )
    return (
        f"--force: instructions compared across software (baseline: {there}; now: {now}): a difference may be "
        "the software's, not the model's",
    )


def add_instructions(entries: MutableMapping[str, Any], section: Mapping[str, Any]) -> None:
    """Each entry of ``entries`` that ``section`` counted gets its instructions as the ``callgrind`` counter, the
    metric :func:`mnprof.check.findings.compare` compares (copies: ``entries``' own counts are not changed)."""
    for key, counted in section.get("entries", {}).items():
        if key in entries:
            entry = dict(entries[key])
            entry["counts"] = {
                **entry.get("counts", {}),
                INSTRUCTIONS_COUNTER: {INSTRUCTIONS_METRIC: counted["instructions"]},
            }
            entries[key] = entry
