"""The command line: the only place that parses arguments, prints, and picks exit codes.

Exit codes: 0 success; 1 a check found a regression; 2 bad input or an unusable file (one line on stderr, no
traceback); 130 interrupted (143 by SIGTERM, 129 by SIGHUP). The Python warnings the user's code issues are held
until the command ends (:func:`mnprof.user_code.held_warnings`): shown after its output with exit 0 or 1, one line
each, and dropped with an error, whose one line stays alone on stderr. The command runs in a worker process
(:mod:`mnprof.worker`) that the ``mnprof`` process outlives and reports on (:mod:`mnprof.supervisor`): a model that
crashes, ends the process or outruns its time limit is one line too, exit 2.

Each command lives in its own module and is imported only when it runs (``mnprof --help`` and a
mistyped command stay fast: the counting and timing libraries import torch, which takes seconds).
The summaries ``mnprof --help`` lists are kept here; a test holds them equal to each command's own.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from collections.abc import Sequence
from contextlib import suppress
from typing import NoReturn

import click

from mnprof import __version__
from mnprof._startup import INTERRUPTED, broken_environment, install_signal_handlers, run_begins, run_ends
from mnprof.cli.output import EXIT_REGRESSION, EXIT_USAGE, Interrupted, error_line, warn
from mnprof.errors import MnprofError, interrupted_by, mnprof_output, note_interruption, one_line, sigint_noted
from mnprof.supervisor import IN_PROCESS
from mnprof.user_code import contain_threads, held_warnings, warnings_held_for_run

__all__ = ["COMMANDS", "cli", "console_main", "main", "refuse_repeated", "run_in_worker", "summary_line"]

# name -> (module, the first paragraph of the command's docstring)
COMMANDS: dict[str, tuple[str, str]] = {
    "baseline": (
        "mnprof.cli.check",
        "Record exact params and MACs of every model x alpha x resolution as a baseline.",
    ),
    "check": (
        "mnprof.cli.check",
        "Recount and compare with the baseline; exit 1 when params, MACs, activations or peak memory grew.",
    ),
    "bisect": (
        "mnprof.cli.bisect",
        "Find the first commit between GOOD and BAD where a count grew versus GOOD's counts (git bisect run).",
    ),
    "history": (
        "mnprof.cli.history",
        "Counts and latency over commits, from results files and baselines collected per commit.",
    ),
    "layers": ("mnprof.cli.layers", "One configuration, layer by layer: where the MACs are, and where the time goes."),
    "memory": (
        "mnprof.cli.memory",
        "Peak memory of one forward pass per configuration, runtime and batch size: measured from PyTorch's "
        "allocator, beside the analytic weights + working set, the difference named by cause.",
    ),
    "merge": (
        "mnprof.cli.merge",
        "Join baselines (shards of mnprof baseline --shard, or several models') or results files (of mnprof table "
        "--results: shards, hosts) into one.",
    ),
    "paper": (
        "mnprof.cli.paper",
        "The paper's Tables 1 to 9, computed, each cell published | computed | delta (V2: TF-slim's 22; V3: Table 3).",
    ),
    "plot": (
        "mnprof.cli.plot",
        "Accuracy vs MACs and params (paper Figures 4 and 5), and latency measured here vs MACs and accuracy.",
    ),
    "report": (
        "mnprof.cli.report",
        "Regenerate reports/: the table (Markdown, CSV, JSON), the paper's tables, the layer table for 1.0-224, "
        "the baseline, and (unless --no-timing) the results file, the figures and the roofline.",
    ),
    "table": (
        "mnprof.cli.table",
        "Params and MACs of every configuration, counted three ways, beside the published numbers, and (grid "
        "view) each configuration's latency, throughput and achieved GFLOP/s timed on this host.",
    ),
}


def summary_line(name: str, limit: int) -> str:
    """A command's summary as click shortens it for the command list (at most ``limit`` characters)."""
    return click.Command(name, help=COMMANDS[name][1]).get_short_help_str(limit)


class LazyGroup(click.Group):
    """A group whose commands are imported from :data:`COMMANDS` when they are run or asked for help."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        with (
            mnprof_output()
        ):  # --help and --version are mnprof's output (in a worker, the channel to the mnprof process)
            return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, _ = COMMANDS[name]
        try:  # torch's math library ends the process with its own line where the working directory is gone
            os.getcwd()
        except OSError as error:
            raise MnprofError(
                f"the working directory cannot be read ({error.strerror or error}); accepted: run mnprof from an "
                "existing directory"
            ) from None
        try:  # the command's libraries: torch, and through it every installed distribution's entry points
            loaded = importlib.import_module(module)
        except Exception as error:
            problem = broken_environment(error)  # too little memory, a malformed entry point, a dependency missing
            if problem is None:  # mnprof's own error: its traceback
                raise
            raise MnprofError(problem) from None
        command = getattr(loaded, name)
        return command if isinstance(command, click.Command) else None

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None and name is not None and not ctx.resilient_parsing:
            refuse_repeated(command, click.Context(command, info_name=name, parent=ctx), rest)
        return name, command, rest

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click's, from the summaries above, without importing any command."""
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [(name, summary_line(name, limit)) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


# The options that choose what is measured, shown or written, where a second value reads as "this one too":
# given twice, each is refused (click would keep the last one silently). The settings of how (--threads, --budget,
# --format, --tolerance, ...) keep click's rule, the last one wins, so that a wrapper's defaults can be overridden.
CHOSEN_ONCE = frozenset(
    ["--model", "--alpha", "--resolution", "--classes", "--variant", "--rounding", "--backend", "--batch-size",
     "--table", "--view", "--out", "--results", "--baseline", "--config", "--shard"]
)  # fmt: skip
# Where --model is refused twice: the commands whose --model is repeatable (several models side by side).
SEVERAL_MODELS = "table, memory, baseline, check, report and plot take several"


def refuse_repeated(command: click.Command, ctx: click.Context, args: list[str]) -> None:
    """Refuse an option of :data:`CHOSEN_ONCE` that takes one value given more than once: ``--model a --model b``
    would measure b alone, ``--out x --out y`` write y alone. Repeatable options are left alone; so is
    everything when --help (or another eager option) is asked for."""
    try:
        _, _, order = command.make_parser(ctx).parse_args(args=list(args))
    except click.UsageError:  # the command's own parsing says what is wrong
        return
    options = [param for param in order if isinstance(param, click.Option)]
    if any(option.is_eager for option in options):
        return
    seen: set[str] = set()
    for option in options:
        flag = next((opt for opt in option.opts if opt in CHOSEN_ONCE), None)
        if flag is None or option.multiple or option.count or option.is_flag:
            continue
        if flag in seen:
            hint = f" ({SEVERAL_MODELS})" if flag == "--model" else ""
            raise click.UsageError(
                f"{flag} is given more than once; accepted: one {flag} for mnprof {ctx.info_name}{hint}", ctx
            )
        seen.add(flag)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mnprof")  # also from a source tree that was never installed
@click.option(
    IN_PROCESS,
    "in_process",
    is_flag=True,
    help="Run the command and its models in this process, without the worker process that turns a model's crash, "
    "exit or overrun into one line: unprotected, for debugging a model with pdb. The first argument only.",
)
def cli(in_process: bool) -> None:
    """mnprof: model analysis and profiling for MobileNet-style networks.

    Builds every width (alpha) x resolution MobileNetV1 (and, with --model, MobileNetV2) as a real
    PyTorch model, counts params and multiply-accumulates analytically and with fvcore, thop and
    torch's FlopCounterMode, explains every difference by operator, times each configuration, and
    sets the results beside the published numbers.
    """


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code (errors become one line on stderr; the warnings the user's
    code issued follow a command that succeeded, and are dropped with an error)."""
    args = list(argv) if argv is not None else sys.argv[1:]
    # The warnings of the user's code wait for the outcome.
    with warnings_held_for_run() as held, sigint_noted():
        with held_warnings():  # the whole run: a warning can come from a user's object freed at any moment
            code = _run(args)
        if code in (0, EXIT_REGRESSION):
            for line in held():
                warn(line)
    return code


def _by_signal(message: str) -> str:
    """``message``, naming the signal where it was not Ctrl-C (which goes without saying): SIGTERM, SIGHUP."""
    signum = interrupted_by()
    if signum == signal.SIGINT:
        return message
    return message.replace("interrupted", f"interrupted ({signal.Signals(signum).name})", 1)


def run_in_worker(args: list[str]) -> int:
    """The command ``mnprof ARGS`` in a worker process (:mod:`mnprof.worker`), to its exit code: an interrupt
    (SIGINT, SIGTERM, SIGHUP, which the ``mnprof`` process passes on) is one line and 128 + its number at any
    moment; a thread that raises is one warning line (:func:`mnprof.user_code.contain_threads`); the results lock is
    released before the worker says it is done."""
    install_signal_handlers()  # no-op where mnprof.worker installed them
    contain_threads()
    try:
        run_begins(note_interruption)
        code = main(args)
    except KeyboardInterrupt:  # one that came as the run was set up or wound down, outside _run's own handling
        run_ends()
        error_line(_by_signal(INTERRUPTED))
        code = 128 + interrupted_by()
    else:
        run_ends()  # the output is complete: nothing is left to interrupt
    store = sys.modules.get("mnprof.timing.store")
    if store is not None:
        store.release_all()
    return code


def console_main() -> NoReturn:
    """``mnprof --in-process ARGS``: the command in this process, unprotected (a model that crashes ends mnprof
    without a word; a time limit is not enforced), for debugging a model with pdb. :mod:`mnprof.__main__` sends
    every other command line to a worker process (:mod:`mnprof.supervisor`)."""
    code = run_in_worker(sys.argv[1:])
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):  # a stream closed under us
            stream.flush()
    if code != 0:  # exit handlers the user's code registered must not turn a failed check into a passing one
        os._exit(code)
    sys.exit(code)


def _run(args: list[str]) -> int:
    try:
        # As click's main without its handlers: click's own prints a blank line on Ctrl-C before it gives up.
        with cli.make_context("mnprof", args) as ctx:
            result = cli.invoke(ctx)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.exceptions.NoArgsIsHelpError as error:
        click.echo(error.ctx.get_help(), err=True)
        return EXIT_USAGE
    except click.UsageError as error:
        hint = f" (see '{error.ctx.command_path} --help')" if error.ctx else ""
        error_line(error.format_message() + hint)
        return EXIT_USAGE
    except click.ClickException as error:
        error_line(error.format_message())
        return EXIT_USAGE
    except MnprofError as error:
        error_line(str(error))
        return EXIT_USAGE
    except Interrupted as interrupted:
        error_line(_by_signal(str(interrupted)))
        return 128 + interrupted_by()
    except OSError as error:  # a path the system refuses where mnprof only asked about it (a name too long)
        where = f"{error.filename}: " if error.filename else ""
        error_line(f"{where}{error.strerror or error}; accepted: a path this system can use")
        return EXIT_USAGE
    except SystemExit as exit_:  # mnprof's commands return their codes: this is the user's code, unfenced somewhere
        error_line(f"the user's code raised {one_line(exit_)}; accepted: a model whose code returns or raises an error")
        return EXIT_USAGE
    except (KeyboardInterrupt, click.exceptions.Abort):
        error_line(_by_signal(INTERRUPTED))
        return 128 + interrupted_by()
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
