"""Joining baselines into one: the shards of a CI matrix (``mnprof baseline --shard i/n``), or baselines of
different models; and :func:`merge_files`, which tells baselines from results files by their ``kind`` (results files
are joined by :mod:`mnprof.timing.merge`).

Every file is read and checked before anything is written: each must be an mnprof baseline of the schema version
this mnprof reads (a file of another kind or version is one line), all must come from the same software (their
provenance: the merged file keeps it), a configuration in two files must hold the same counts there, and shards
must be every part of one partition, each once. Latency is relative to controls timed on one host in one run, so a
baseline that holds it is not merged.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mnprof.check.baseline import BASELINE_KIND, BASELINE_SCHEMA_VERSION, load_baseline
from mnprof.errors import MnprofError
from mnprof.files.documents import read_json_file
from mnprof.timing.merge import merge_results
from mnprof.timing.store import RESULTS_KIND, RESULTS_SCHEMA_VERSION

__all__ = ["KINDS", "merge_baselines", "merge_files"]


KINDS = {BASELINE_KIND: BASELINE_SCHEMA_VERSION, RESULTS_KIND: RESULTS_SCHEMA_VERSION}  # what merge joins
_ACCEPTED_KINDS = (
    f"baselines ({BASELINE_KIND!r}, mnprof baseline --out) or results files ({RESULTS_KIND!r}, mnprof table --results)"
)


def _header(path: Path) -> tuple[Any, Any]:
    """(kind, schema_version) of the JSON document at ``path``, before it is read as a baseline or results file."""
    document = read_json_file(path, "file", f"accepted: {_ACCEPTED_KINDS}")
    if not isinstance(document, dict):
        return None, None
    return document.get("kind"), document.get("schema_version")


def _one_kind(paths: Sequence[Path]) -> str:
    """The kind every file at ``paths`` is, all of one schema version; a one-line refusal naming two that differ,
    a file named twice, or a kind merge does not join."""
    if len(set(paths)) != len(paths):
        twice = next(str(path) for index, path in enumerate(paths) if path in paths[:index])
        raise MnprofError(f"mnprof merge: {twice} is named twice; accepted: each file once")
    headers = {path: _header(path) for path in paths}
    first, (first_kind, first_version) = paths[0], headers[paths[0]]
    for path, (kind, version) in headers.items():
        if kind != first_kind:
            raise MnprofError(
                f"mnprof merge: {first} is a {first_kind!r} file and {path} a {kind!r} one; accepted: files of one "
                f"kind, {_ACCEPTED_KINDS}"
            )
        if version != first_version:
            writes = "mnprof baseline" if kind == BASELINE_KIND else "mnprof table --results"
            raise MnprofError(
                f"mnprof merge: {first} has schema version {first_version!r} and {path} {version!r}; accepted: files "
                f"of one schema version (this mnprof writes {KINDS.get(kind, '?')}: {writes} writes them again)"
            )
    if first_kind not in KINDS:
        raise MnprofError(
            f"mnprof merge: {first} is not an mnprof baseline or results file (kind {first_kind!r}); accepted: "
            f"{_ACCEPTED_KINDS}"
        )
    return first_kind


def merge_files(paths: Sequence[Path]) -> dict[str, Any]:
    """The baseline or results document joining the files at ``paths``, all of one kind (read from each file's
    ``kind``) and schema version: :func:`merge_baselines` or :func:`mnprof.timing.merge.merge_results`."""
    if _one_kind(paths) == RESULTS_KIND:
        return merge_results(paths)
    return merge_baselines(paths)


def merge_baselines(paths: Sequence[Path]) -> dict[str, Any]:
    """The baseline document holding every entry of the baselines at ``paths`` (see the module's rules)."""
    _one_kind(paths)
    documents = {path: load_baseline(path) for path in paths}  # the kind, version and schema, one line each
    for path, document in documents.items():
        if "latency" in document:
            raise MnprofError(
                f"mnprof merge: {path} holds latency, which is relative to controls timed on one host in one run; "
                "accepted: baselines of counts (mnprof baseline without --latency)"
            )
        if "instructions" in document:  # a count depends on what ran before it in its Valgrind process
            raise MnprofError(
                f"mnprof merge: {path} holds instructions, each counted beside the configurations of its own run; "
                "accepted: baselines of counts (mnprof baseline without --instructions)"
            )
    provenance = _one_provenance(documents)
    _refuse_incomplete_shards(documents)
    entries: dict[str, Any] = {}
    origin: dict[str, Path] = {}
    for path, document in documents.items():
        for key, entry in document["entries"].items():
            if key in entries and entries[key] != entry:
                raise MnprofError(
                    f"mnprof merge: {key} is in {origin[key]} and {path} with different counts; accepted: files that "
                    "agree on every configuration they share (count it again: mnprof baseline)"
                )
            entries.setdefault(key, entry)
            origin.setdefault(key, path)
    document = {
        "schema_version": BASELINE_SCHEMA_VERSION,
        "kind": BASELINE_KIND,
        "entries": dict(sorted(entries.items())),
    }
    if provenance is not None:
        document["provenance"] = provenance
    return document


def _one_provenance(documents: dict[Path, dict[str, Any]]) -> dict[str, Any] | None:
    """The provenance every file shares (the versions that counted), or a one-line refusal naming what differs."""
    items = list(documents.items())
    first_path, first = items[0]
    expected = first.get("provenance")
    for path, document in items[1:]:
        found = document.get("provenance")
        if found == expected:
            continue
        keys = sorted(set(expected or {}) | set(found or {}))
        differ = next(key for key in keys if (expected or {}).get(key) != (found or {}).get(key))
        raise MnprofError(
            f"mnprof merge: {first_path} and {path} were counted with different {differ} "
            f"({(expected or {}).get(differ)!r} and {(found or {}).get(differ)!r}); accepted: baselines counted "
            "with the same software (run every shard in one environment)"
        )
    return expected


def _refuse_incomplete_shards(documents: dict[Path, dict[str, Any]]) -> None:
    """Shards (``mnprof baseline --shard``) must be every part of one partition, each once, and nothing else."""
    parts = {path: document.get("shard") for path, document in documents.items()}
    sharded = [path for path, part in parts.items() if part is not None]
    if not sharded:
        return
    whole = [path for path, part in parts.items() if part is None]
    if whole:
        raise MnprofError(
            f"mnprof merge: {sharded[0]} is a shard and {whole[0]} a whole baseline; accepted: the shards of one "
            "partition, or whole baselines"
        )
    first = parts[sharded[0]]
    for path in sharded:
        part = parts[path]
        assert part is not None
        if (part["count"], part["configurations"]) != (first["count"], first["configurations"]):
            raise MnprofError(
                f"mnprof merge: {sharded[0]} is a shard of {first['count']} over {first['configurations']} "
                f"configurations and {path} of {part['count']} over {part['configurations']}; accepted: the shards "
                "of one partition"
            )
    seen: dict[int, Path] = {}
    for path in sharded:
        index = parts[path]["index"]  # type: ignore[index]
        if index in seen:
            raise MnprofError(
                f"mnprof merge: {seen[index]} and {path} are both shard {index}/{first['count']}; accepted: each "
                "shard once"
            )
        seen[index] = path
    missing = sorted(set(range(1, first["count"] + 1)) - set(seen))
    if missing:
        names = ", ".join(f"{index}/{first['count']}" for index in missing)
        raise MnprofError(
            f"mnprof merge: shard(s) {names} are missing; accepted: all {first['count']} shards of the partition "
            "(a baseline without them would let their configurations pass unchecked)"
        )
    held = sum(len(document["entries"]) for document in documents.values())
    if held != first["configurations"]:
        raise MnprofError(
            f"mnprof merge: the {first['count']} shards hold {held} configurations, their partition "
            f"{first['configurations']}; accepted: shards written by mnprof baseline --shard, unedited"
        )
