"""``python -m mnprof``: the same as the ``mnprof`` command.

``python -m`` puts the working directory first on ``sys.path``, where a local ``torch.py`` or ``click.py``
(a scratch file, a user's module) would shadow the installed package; it goes to the end instead, as for the
``mnprof`` command (user modules are still found there, see :mod:`mnprof.model.families`).
"""

from __future__ import annotations

import os
import sys

if sys.path and sys.path[0] in ("", os.getcwd()):
    sys.path.append(sys.path.pop(0))

from mnprof.cli import console_main  # noqa: E402 - after the path is set

if __name__ == "__main__":
    console_main()
