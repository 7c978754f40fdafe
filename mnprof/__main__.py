"""The ``mnprof`` command (``mnprof.__main__:main``) and ``python -m mnprof``: the same.

From its first line, before click, rich and torch are imported (a second or more), an interrupt is one line and its
exit code (:func:`mnprof._startup.install_signal_handlers`), and an environment that cannot import them is one line
naming why (:func:`mnprof._startup.exit_if_broken`). The command itself runs in a worker process that this one
outlives (:mod:`mnprof.supervisor`), unless ``--in-process`` comes first.

``python -m`` puts the working directory first on ``sys.path``, where a local ``torch.py`` or ``click.py``
(a scratch file, a user's module) would shadow the installed package; it goes to the end instead, as for the
``mnprof`` command (user modules are still found there, see :mod:`mnprof.model.families`).
"""

from __future__ import annotations

import os
import sys

try:
    _cwd: str | None = os.getcwd()
except OSError:  # removed under us: nothing there to shadow anything
    _cwd = None
if sys.path and sys.path[0] in ("", _cwd):
    sys.path.append(sys.path.pop(0))

from mnprof import _startup  # noqa: E402 - after the path is set; imports nothing heavy

_startup.install_signal_handlers()

from mnprof import supervisor  # noqa: E402 - the standard library and mnprof.worker: nothing heavy


def main() -> None:
    """The command line, to its end: in a worker process (:mod:`mnprof.supervisor`), or with ``--in-process`` as
    the first argument in this one (:func:`mnprof.cli.console_main`, which never returns)."""
    if sys.argv[1:2] != [supervisor.IN_PROCESS]:
        sys.exit(supervisor.supervise(sys.argv[1:], ending=True))
    try:  # only here: the mnprof process imports neither the command line (click, rich) nor torch
        from mnprof.cli import console_main
    except Exception as error:  # click or rich cannot be imported here (too little memory, one missing)
        _startup.exit_if_broken(error)  # one line and exit 2 where the environment is the cause
        raise
    console_main()


if __name__ == "__main__":
    main()
