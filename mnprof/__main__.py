"""``python -m mnprof``: the same as the ``mnprof`` command."""

from __future__ import annotations

import sys

from mnprof.cli import main

if __name__ == "__main__":
    sys.exit(main())
