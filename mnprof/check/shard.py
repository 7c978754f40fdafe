"""``--shard i/n``: one part of a deterministic partition of the configurations, for a CI matrix.

The configurations' ids are sorted and dealt round-robin: shard ``i`` (1-based) of ``n`` takes the ``i``-th,
``(i+n)``-th, ... id. The partition depends only on the set of ids, never on the machine, the order options were
given or the order models finish in, so ``n`` jobs of one matrix each count their own part and every configuration
is counted exactly once. ``mnprof merge`` joins the shards' baselines into one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from mnprof.errors import MnprofError

__all__ = ["MAX_SHARDS", "Shard", "parse_shard"]

MAX_SHARDS = 1024  # more jobs than any CI matrix runs (GitHub's allows 256)
_ACCEPTED = f"accepted: i/n, integers with 1 <= i <= n <= {MAX_SHARDS}, e.g. 2/4"


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def part(self, ids: Iterable[str]) -> list[str]:
        """This shard's ids of ``ids``: sorted, then every ``count``-th from the ``index``-th."""
        return sorted(set(ids))[self.index - 1 :: self.count]

    def refuse_empty(self, ids: Iterable[str]) -> None:
        """Refuse a shard that holds no configuration: a job that counts nothing would pass whatever changed."""
        every = set(ids)
        if not self.part(every):
            raise MnprofError(
                f"--shard {self} holds none of the {len(every)} configuration(s); accepted: at most "
                f"{len(every)} shard(s) for this grid"
            )


def parse_shard(text: str) -> Shard:
    """``"2/4"`` -> Shard(2, 4); anything else is a one-line :class:`MnprofError` saying what is accepted."""
    match = re.fullmatch(r"([0-9]+)/([0-9]+)", text.strip())
    if match is None:
        raise MnprofError(f"--shard {text!r} is not i/n; {_ACCEPTED}")
    index, count = (int(group) for group in match.groups())
    if count < 1 or count > MAX_SHARDS:
        raise MnprofError(f"--shard {text!r} has {count} shards; {_ACCEPTED}")
    if index < 1 or index > count:
        raise MnprofError(f"--shard {text!r}: shard {index} is not one of 1 to {count}; {_ACCEPTED}")
    return Shard(index, count)
