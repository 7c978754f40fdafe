"""``mnprof merge``: join the baselines or results files of a CI matrix's shards (``--shard i/n``) or of several
hosts into one."""

from __future__ import annotations

from pathlib import Path

import click

from mnprof.check.merge import merge_files
from mnprof.cli.options import Command
from mnprof.cli.output import OutputPath, refuse_overwriting
from mnprof.files.documents import dumps
from mnprof.files.write import atomic_write_text, check_writable
from mnprof.timing.store import RESULTS_KIND


@click.command(cls=Command)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out", type=OutputPath(), required=True, help="The merged baseline or results file (written atomically)."
)
def merge(files: tuple[Path, ...], out: Path) -> None:
    """Join baselines (shards of mnprof baseline --shard, or several models') or results files (of mnprof table
    --results: shards, hosts) into one.

    Every file is checked before anything is written: all of one kind (baseline or results file, told by its
    content) and one schema version. Baselines: all counted with the same software (the provenance the merged
    file keeps), a configuration in two files holding the same counts in both, and shards every part of one
    partition, each once. Results files: each read as --from-results reads it, every measurement kept with its
    host and run, and each file's environment kept under sources; a measurement (host, run, configuration,
    runtime, batch size, threads, device) in two files is kept once, and refused if its values differ. A
    failure is one line and exit 2, and --out is left as it was.

    \b
    Examples:
      mnprof merge baseline-1-of-3.json baseline-2-of-3.json baseline-3-of-3.json --out reports/baseline.json
      mnprof merge results-host-a.json results-host-b.json --out results.json
    """
    refuse_overwriting(out, {path: "one of the files merged" for path in files})
    check_writable(out)
    document = merge_files(list(files))
    atomic_write_text(out, dumps(document))
    if document["kind"] == RESULTS_KIND:
        what = f"{len(document['measurements'])} measurements ({len(document['sources'])} sources)"
    else:
        what = f"{len(document['entries'])} configurations"
    click.echo(f"mnprof merge: wrote {what} from {len(files)} files to {out}", err=True)
