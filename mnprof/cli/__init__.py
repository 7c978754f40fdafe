"""The command line: the only place that parses arguments, prints, and picks exit codes.

Exit codes: 0 success; 1 a check found a regression; 2 bad input or an unusable file (one
line on stderr, no traceback); 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from mnprof import __version__
from mnprof.cli.options import EXIT_INTERRUPTED, EXIT_USAGE, error_line
from mnprof.errors import MnprofError

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mnprof")  # also from a source tree that was never installed
def cli() -> None:
    """mnprof: model analysis and profiling for MobileNet-style networks.

    Builds every width (alpha) x resolution MobileNetV1 as a real PyTorch model, counts params and
    multiply-accumulates analytically, with fvcore and with thop, explains every difference by
    operator, and sets the results beside the paper's published numbers.
    """


# Commands register themselves on the group when their modules are imported.
from mnprof.cli import check as _check  # noqa: E402,F401
from mnprof.cli import layers as _layers  # noqa: E402,F401
from mnprof.cli import paper as _paper  # noqa: E402,F401
from mnprof.cli import plot as _plot  # noqa: E402,F401
from mnprof.cli import report as _report  # noqa: E402,F401
from mnprof.cli import table as _table  # noqa: E402,F401


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code (errors become one line on stderr)."""
    try:
        result = cli.main(args=list(argv) if argv is not None else None, prog_name="mnprof", standalone_mode=False)
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
    except (KeyboardInterrupt, click.exceptions.Abort):
        error_line("interrupted; files already written are complete, nothing was half-written")
        return EXIT_INTERRUPTED
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
