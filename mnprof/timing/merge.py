"""Joining results files into one: the shards of a CI matrix (``mnprof table --shard i/n --results R.json``), or
the sweeps of several hosts, for ``mnprof merge``.

Every file is read and validated as ``mnprof table --from-results`` reads it (:func:`mnprof.timing.store.read_results`).
The joined file holds every measurement of every file, in the order of the files and of their rows, so that
``mnprof table --from-results joined.json`` shows what ``--from-results A --from-results B`` shows. Provenance is
kept at both levels a results file has it:

- each row already names its host (fingerprint), run, runtime version and time; the processor, which an older row
  may leave to its file's ``environment``, is written into the row from that environment (what reading it did);
- each file's ``environment`` and ``gemm_peaks`` are kept whole under ``sources``, with the file's name and the
  runs it holds (a row's run id finds its source). The top-level ``environment`` keeps the keys on which every
  source agrees, ``gemm_peaks`` the peaks every source that measured that device and thread count measured alike;
  so a joined file of several hosts has no ``host_fingerprint`` and is never resumed as one sweep.

A measurement is identified by its host, run id, configuration, runtime, batch size, threads and device (what
one sweep measures once). The same measurement in two files (a file given again, a joined file joined again) is
kept once; the same measurement with different values in two files is refused, since one of them was edited.
A file that was itself joined contributes its sources, not itself, so joining again never nests.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mnprof.errors import MnprofError
from mnprof.timing.store import KEY_FIELDS, RESULTS_KIND, RESULTS_SCHEMA_VERSION, check_results, read_results

__all__ = ["measurement_identity", "merge_results"]


def measurement_identity(row: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two rows the same measurement: host, run id, configuration, runtime, batch size, threads and
    device."""
    return (row.get("host"), row.get("run_id"), *(row.get(name) for name in KEY_FIELDS))


def _with_processor(row: dict[str, Any], environment: dict[str, Any]) -> dict[str, Any]:
    """``row`` with the processor its file's environment gives where the row lacks it (as reading it does)."""
    row = dict(row)
    row.setdefault("cpu_model", environment.get("cpu_model"))
    if row.get("device") == "cuda":
        row.setdefault("gpu", environment.get("gpu"))
    return row


def _sources(path: Path, document: dict[str, Any]) -> list[dict[str, Any]]:
    """Where ``document``'s measurements come from: its own sources when it was joined, else itself."""
    if "sources" in document:
        return [dict(source) for source in document["sources"]]
    runs = sorted({row["run_id"] for row in document["measurements"] if isinstance(row.get("run_id"), str)})
    return [
        {
            "file": str(path),
            "environment": document["environment"],
            "gemm_peaks": document.get("gemm_peaks", []),
            "runs": runs,
        }
    ]


def _common_environment(sources: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The keys on which every source's environment agrees, with their value."""
    first, *rest = (source["environment"] for source in sources)
    return {key: value for key, value in first.items() if all(key in other and other[key] == value for other in rest)}


def _common_peaks(sources: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each (device, threads)'s GEMM peak where every source that measured one measured the same."""
    peaks: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for source in sources:
        for peak in source.get("gemm_peaks", []):
            peaks.setdefault((peak["device"], peak["threads"]), []).append(peak)
    return [found[0] for found in peaks.values() if all(peak == found[0] for peak in found)]


def _describe(identity: tuple[Any, ...]) -> str:
    host, run, config, backend, batch, threads, device = identity
    return f"{config} {backend} batch {batch}, {threads} threads, {device} of host {host}, run {run}"


def merge_results(paths: Sequence[Path]) -> dict[str, Any]:
    """The results document holding every measurement of the results files at ``paths`` (see the module's rules);
    a :class:`MnprofError` (one line) when a file cannot be read or two disagree. Validated before it is returned."""
    documents = [read_results(path) for path in paths]  # kind, version, schema and every row: one line each
    rows: list[dict[str, Any]] = []
    origin: dict[tuple[Any, ...], tuple[Path, dict[str, Any]]] = {}
    sources: list[dict[str, Any]] = []
    for path, document in zip(paths, documents, strict=True):
        for row in document["measurements"]:
            row = _with_processor(row, document["environment"])
            identity = measurement_identity(row)
            if identity in origin:
                first, seen = origin[identity]
                if seen != row:
                    raise MnprofError(
                        f"mnprof merge: {first} and {path} both hold {_describe(identity)}, with different values; "
                        "accepted: files that agree on every measurement they share (one of them was edited: "
                        "measure it again with mnprof table --results NEW.json)"
                    )
                continue
            origin[identity] = (path, row)
            rows.append(row)
        for source in _sources(path, document):
            if source not in sources:
                sources.append(source)
    merged = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "kind": RESULTS_KIND,
        "environment": _common_environment(sources),
        "gemm_peaks": _common_peaks(sources),
        "measurements": rows,
        "sources": sources,
    }
    return check_results(merged, "the merged results")  # what reading it back will check, before it is written
