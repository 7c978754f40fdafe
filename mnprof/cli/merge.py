"""``mnprof merge``: join the baselines of a CI matrix's shards (``mnprof baseline --shard i/n``) into one."""

from __future__ import annotations

from pathlib import Path

import click

from mnprof.check.merge import merge_baselines
from mnprof.cli.options import Command
from mnprof.cli.output import OutputPath, refuse_overwriting
from mnprof.files import atomic_write_text, check_writable, dumps


@click.command(cls=Command)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=OutputPath(), required=True, help="The merged baseline (written atomically).")
def merge(files: tuple[Path, ...], out: Path) -> None:
    """Join baselines (the shards of mnprof baseline --shard, or several models' baselines) into one.

    Every file is checked before anything is written: each an mnprof baseline of this schema version, all
    counted with the same software (the provenance the merged file keeps), a configuration in two files
    holding the same counts in both, and shards every part of one partition, each once. A failure is one
    line and exit 2, and --out is left as it was.

    \b
    Examples:
      mnprof merge baseline-1-of-3.json baseline-2-of-3.json baseline-3-of-3.json --out reports/baseline.json
    """
    refuse_overwriting(out, {path: "one of the files merged" for path in files})
    check_writable(out)
    document = merge_baselines(list(files))
    atomic_write_text(out, dumps(document))
    click.echo(
        f"mnprof merge: wrote {len(document['entries'])} configurations from {len(files)} files to {out}", err=True
    )
