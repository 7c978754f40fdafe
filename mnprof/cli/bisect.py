"""``mnprof bisect``: the first commit where a count grew, found by ``git bisect run`` with a counts-only check."""

from __future__ import annotations

import click

from mnprof.check.bisect import bisect as find_growth
from mnprof.cli.output import PlainInt
from mnprof.model.config import MAX_CLASSES, parse_alphas, parse_resolutions

MODEL_HELP = (
    "Model to guard, repeatable, as mnprof check takes it: a built-in family, a name from [tool.mnprof.families], "
    "or [NAME=]package.module:factory (imported from each commit's tree). [default: [tool.mnprof] models in each "
    "commit's ./pyproject.toml, else mobilenetv1]"
)


@click.command()
@click.argument("good")
@click.argument("bad")
@click.option("--model", "models", multiple=True, metavar="SPEC", help=MODEL_HELP)
@click.option("--alpha", "alphas", default=None, metavar="LIST", help="Comma-separated width multipliers in (0, 4].")
@click.option("--resolution", "resolutions", default=None, metavar="LIST", help="Comma-separated input resolutions.")
@click.option("--classes", "num_classes", type=PlainInt(min=1, max=MAX_CLASSES), default=None,
              help="Classifier outputs passed to each factory.")  # fmt: skip
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
def bisect(
    good: str,
    bad: str,
    models: tuple[str, ...],
    alphas: str | None,
    resolutions: str | None,
    num_classes: int | None,
    quiet: bool,
) -> None:
    """Find the first commit between GOOD and BAD where a count grew versus GOOD's counts (git bisect run).

    Run inside the git repository whose models are guarded, with a clean working tree. GOOD's counts are
    recorded with mnprof baseline in a copy of GOOD's tree; git bisect run then checks the commits it picks with
    mnprof check --tolerance 0 against them (params, MACs, activations, peak activation memory: counts only, no
    timing) and names the first commit where one grew. A commit where the models cannot be counted is skipped.
    The repository is left on the branch or commit it was on (git bisect reset, also on Ctrl-C).

    Refused in one line, exit 2, with nothing changed: outside a git repository, an unknown commit, GOOD not an
    ancestor of BAD, a bisection already under way, changes to tracked files, or no count that grew at BAD.

    \b
    Examples:
      mnprof bisect v1.2 HEAD
      mnprof bisect 3f2a1bc main --model tiny=nets.tiny:tiny --alpha 1.0 --resolution 224
    """
    if alphas is not None:
        parse_alphas(alphas)  # refused here, before any git command, as mnprof check would refuse it
    if resolutions is not None:
        parse_resolutions(resolutions)
    forwarded = [arg for model in models for arg in ("--model", model)]
    for option, value in (("--alpha", alphas), ("--resolution", resolutions), ("--classes", num_classes)):
        if value is not None:
            forwarded += [option, str(value)]

    def stage(text: str) -> None:
        if not quiet:
            click.echo(f"mnprof bisect: {text}", err=True)

    result = find_growth(good, bad, forwarded, on_stage=stage)
    codes = [code for _, code in result.checks]
    outcomes = {"grew": codes.count(1), "passed": codes.count(0), "could not be counted": codes.count(2)}
    told = ", ".join(f"{count} {outcome}" for outcome, count in outcomes.items() if count)
    click.echo(f"{result.commit} is the first commit whose counts grew: {result.subject}")
    click.echo(
        f"mnprof bisect: {len(codes)} checks ({told}) between {result.good[:12]} and {result.bad[:12]}; "
        "mnprof check at it says what grew"
    )
