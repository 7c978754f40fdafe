"""The results file: every measurement with its provenance, versioned, written atomically, resumable.

Schema (version 4, ``kind`` ``mnprof.results``)::

    {
      "schema_version": 4,
      "kind": "mnprof.results",
      "environment": {...},        # mnprof.host.host_environment(): CPU, cores, OS, Python, torch + BLAS/oneDNN,
                                   # onnxruntime, mnprof version, git commit, date, host_fingerprint
      "gemm_peaks": [{"device", "threads", "kernel", "gflops", "gflops_by_kernel"}, ...],
      "measurements": [row, ...]   # flat objects, one per configuration x backend x batch size x threads x device
      "sources": [...]             # only in a file mnprof merge joined (mnprof.timing.merge): each file's
                                   # environment and GEMM peaks, and its runs; rows are then one per host and run too
    }

A row (written by :meth:`mnprof.timing.records.TimingRecord.to_row`) carries the configuration
(``id``, ``alpha``, ``resolution``, ...), ``backend``, ``device``, ``batch_size``, ``threads``,
``cpu_model`` and ``gpu`` (its name where ``device`` is ``cuda``), the headline ``latency_ms_p5``
(the 5th percentile of the clean calls, see :mod:`mnprof.timing.engine`) with its 95% CI
``latency_ms_ci_low`` and ``latency_ms_ci_high`` (half-width ``ci_halfwidth_pct``), the half-width of
its interval relative to its run ``rel_ci_halfwidth_pct`` (what ``noisy`` judges), the typical call
``latency_ms_adjusted`` (the host-adjusted median), the statistics of every call
(``latency_ms_median``, ``latency_ms_iqr``, ..., ``samples``), ``throughput_ips``,
``gflops_achieved``, ``peak_fraction``, the output check, ``host`` (the fingerprint),
``latency_ms_samples`` (every timed call the statistics come from, in milliseconds), ``turn_sizes``,
``turn_started_unix``, ``turn_host_factors`` (the host factor of each turn's pass, which the typical
figure divides out), ``turn_passes`` (the round-robin pass of each turn) and ``latency_ms_discarded``
(calls set aside as contended). A row whose backend failed or computed something else has ``error``
set and no latency. The version is bumped when a key is renamed or removed or changes meaning; adding
keys keeps it. Version 4: ``noisy`` judges the headline's interval relative to its run
(``rel_ci_halfwidth_pct``) where three or more tasks were timed together, instead of the interval of
the absolute figure. Version 3: the headline became ``latency_ms_p5``, and
``latency_ms_ci_low``/``latency_ms_ci_high``, ``ci_halfwidth_pct``, ``noisy``, ``throughput_ips`` and
the GFLOP/s follow it instead of the host-adjusted median (version 2's headline, still there as the
typical figure). Version 2: the headline became the host-adjusted median instead of the median. An
older file is refused with the command that re-measures it (its noisy flags and rates belong to
another headline or interval).
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import hashlib
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from mnprof import worker
from mnprof.errors import MnprofError
from mnprof.files.documents import dumps, read_json_file
from mnprof.files.schemas import schema_problem
from mnprof.files.write import atomic_write_text, check_writable
from mnprof.timing.records import RAW_SAMPLE_KEYS, MeasurementKey, TimingRecord

__all__ = [
    "DEFAULT_RESULTS_PATH",
    "RESULTS_KIND",
    "RESULTS_SCHEMA_VERSION",
    "ResultsStore",
    "check_results",
    "check_results_writable",
    "read_results",
    "refuse_copies",
    "refuse_other_models",
    "results_records",
]

RESULTS_SCHEMA_VERSION = 4
RESULTS_KIND = "mnprof.results"
DEFAULT_RESULTS_PATH = Path("mnprof-results.json")
KEY_FIELDS = ("id", "backend", "batch_size", "threads", "device")
REQUIRED_ROW_KEYS = (*KEY_FIELDS, "host")
REGENERATE = "re-measure with mnprof table --results NEW.json"


def check_results_writable(path: Path) -> None:
    """Fail before any work when the results file cannot be written."""
    try:
        check_writable(path)
    except MnprofError as error:
        raise MnprofError(str(error).replace("--out", "--results", 1)) from None


def read_results(path: Path, *, raw: bool = True) -> dict[str, Any]:
    """Read and validate a results file; a one-line :class:`MnprofError` names the file and what to do.

    Every measurement must read back as a :class:`~mnprof.timing.records.TimingRecord`. ``raw=False``: every
    timed call (:data:`~mnprof.timing.records.RAW_SAMPLE_KEYS`) is dropped before the rest is validated, for a
    reader of the statistics alone (``mnprof history``): validating the calls takes ten times as long.
    """
    path = Path(path)
    document = read_json_file(path, "results file", "accepted: a file written by mnprof table; " + REGENERATE)
    return check_results(document, path, raw=raw)


def check_results(document: Any, path: Path | str, *, raw: bool = True) -> dict[str, Any]:
    """Validate a results document read from (or about to be written to) ``path``, as :func:`read_results` does:
    its kind, version and schema, and every measurement read back as a record, each once (once per host and run in
    a file :func:`mnprof.timing.merge.merge_results` joined, which keeps ``sources``)."""
    if not isinstance(document, dict) or document.get("kind") != RESULTS_KIND:
        kind = document.get("kind") if isinstance(document, dict) else type(document).__name__
        raise MnprofError(
            f"{path} is not a mnprof results file (kind {kind!r}, expected {RESULTS_KIND!r}); {REGENERATE}"
        )
    found = document.get("schema_version")
    if type(found) is not int or found != RESULTS_SCHEMA_VERSION:  # 4.0 and true are not version 4
        raise MnprofError(
            f"results file {path} has schema version {found!r}; this mnprof reads version {RESULTS_SCHEMA_VERSION}; "
            f"{REGENERATE}, or read it with the mnprof that wrote it"
        )
    if not raw and isinstance(document.get("measurements"), list):
        for row in document["measurements"]:
            for key in RAW_SAMPLE_KEYS if isinstance(row, dict) else ():
                row.pop(key, None)
    problem = schema_problem(document, "results")  # mnprof/schemas/results.schema.json
    if problem is not None:
        raise MnprofError(f"results file {path} is corrupt ({problem}); {REGENERATE}")
    rows, environment = document["measurements"], document["environment"]
    joined = "sources" in document  # several hosts' and runs' measurements: a key once per host and run
    seen: dict[tuple[Any, ...], int] = {}
    for index, row in enumerate(rows):
        try:
            key = TimingRecord.from_row(row, environment).key.ident()
            key = (*key, row.get("host"), row.get("run_id")) if joined else key
        except MnprofError as error:
            raise MnprofError(f"results file {path} is corrupt (measurement {index}: {error}); {REGENERATE}") from None
        if key in seen:  # one measurement per key: a second would be counted twice in every view
            raise MnprofError(
                f"results file {path} is corrupt (measurements {seen[key]} and {index} are both {key[0]} {key[1]} "
                f"batch {key[2]}, {key[3]} threads, {key[4]}"
                f"{f', host {key[5]}, run {key[6]}' if joined else ''}); {REGENERATE}"
            )
        seen[key] = index
    return document


def results_records(documents: Iterable[Mapping[str, Any]]) -> list[TimingRecord]:
    """The measurements of one or more (validated) results documents, each with its host's processor."""
    return [
        TimingRecord.from_row(row, document["environment"])
        for document in documents
        for row in document["measurements"]
    ]


def refuse_other_models(records: Iterable[TimingRecord], macs: Mapping[str, int], where: str) -> None:
    """Refuse timings measured on another model than the one counted now under the same id: each record keeps the
    MACs of the model it timed, and ``macs`` holds the current model's (by configuration id). A family's code that
    changed, or two projects' families of one name, would otherwise show one model's time beside another's counts."""
    for record in records:
        then = record.rates.macs_analytic if record.rates is not None else None
        now = macs.get(record.config.id)
        if then is not None and now is not None and then != now:
            raise MnprofError(
                f"{where} holds timings of {record.config.id} measured on a model of {then:,} MACs, and its model "
                f"now has {now:,} (its code changed, or another model has its name); accepted: measurements of "
                "these models (time them again)"
            )


def refuse_copies(paths: Sequence[Path], documents: Sequence[dict[str, Any]]) -> None:
    """Refuse results files that hold the same measurement of the same run (a copy, a hard link): each would be
    shown, counted and compared twice."""
    seen: dict[tuple[Any, ...], Path] = {}
    for path, document in zip(paths, documents, strict=True):
        host = document["environment"].get("host_fingerprint")
        for row in document["measurements"]:
            if not isinstance(row.get("run_id"), str):
                continue
            key = (row["run_id"], row.get("host", host), *(row.get(name) for name in KEY_FIELDS))
            first = seen.setdefault(key, path)
            if first != path:
                raise MnprofError(
                    f"results file {path} holds run {row['run_id']} that {first} holds too (a copy of the same "
                    "measurements); accepted: each run once"
                )


_LOCKS: dict[str, tuple[int, Path]] = {}  # results file -> its lock file's descriptor and path, while held


def _lock_for_writing(path: Path) -> bool:
    """Take the advisory writer lock of results file ``path`` (once per process), or refuse with one line;
    returns whether this call took it (False: this process already held it).

    The lock is ``flock`` on ``.NAME.lock`` beside the file, which :func:`_release` removes (so that nothing is
    left beside a results file once no sweep writes it). Removing a lock file races with a process that opened it
    just before: that one would then hold a lock on a file no longer there, while a third creates a new one. So a
    lock counts only if the path still names the file locked; otherwise it is taken again on the new file."""
    key = str(path.resolve())
    if key in _LOCKS:
        return False
    digest = hashlib.sha256(os.fsencode(path.name)).hexdigest()[:12]  # the name's bytes: it may not be UTF-8
    name = path.name if len(path.name) <= 64 else f"{path.name[:48]}.{digest}"
    lock = path.with_name(f".{name}.lock")  # a long name is shortened: the lock's own must stay within 255 bytes
    while True:
        descriptor = _open_lock(path, lock)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(descriptor)
            raise MnprofError(
                f"--results {path} is being written by another mnprof sweep; accepted: wait for it to finish, or "
                "another --results file"
            ) from None
        held = os.fstat(descriptor)
        try:
            named = os.lstat(lock)  # a link put there since names another file: taken again, and refused
        except FileNotFoundError:
            named = None
        if named is not None and (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino):
            _LOCKS[key] = descriptor, lock
            return True
        os.close(descriptor)  # its holder removed it as this process opened it: lock the one there now


def _open_lock(path: Path, lock: Path) -> int:
    """Open (or create) the lock file itself, never what a link there points at: a symbolic link, a FIFO or
    anything but a regular file where the lock goes is one line, and nothing is created elsewhere."""
    refuse = f"--results {path}: its lock {lock} is not a regular file"
    accepted = "accepted: a regular file or nothing there (remove it if no mnprof sweep is running)"
    try:
        descriptor = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise MnprofError(f"{refuse} (a symbolic link); {accepted}") from None
        raise MnprofError(f"--results {path}: cannot create its lock {lock} ({error.strerror})") from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise MnprofError(f"{refuse}; {accepted}")
    return descriptor


def _release(key: str) -> None:
    """Give up the writer lock of the results file ``key``: its lock file is removed while still locked."""
    descriptor, lock = _LOCKS.pop(key)
    with suppress(OSError):
        os.unlink(lock)
    os.close(descriptor)


@atexit.register
def release_all() -> None:
    """Every lock this process still holds, when it ends (a sweep's, held until then)."""
    for key in list(_LOCKS):
        _release(key)


class ResultsStore:
    """The results file of one sweep on one host: records are added as measurements finish, each add an
    atomic write.

    An interrupted sweep therefore keeps every measurement already finished, and
    :meth:`open` with ``resume=True`` continues it (on the same host fingerprint only). :meth:`open` also
    takes the file's writer lock (an advisory lock on ``.NAME.lock`` beside it, held until the process
    ends, then removed; a refused :meth:`open` removes it at once): a second sweep on the same file is
    refused instead of dropping the first one's measurements.
    """

    def __init__(
        self,
        path: Path,
        environment: Mapping[str, Any],
        records: Sequence[TimingRecord] = (),
        gemm_peaks: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        self.path = Path(path)
        self.environment = dict(environment)
        self._records: dict[MeasurementKey, TimingRecord] = {record.key.ident(): record for record in records}
        self._gemm_peaks: list[dict[str, Any]] = [dict(peak) for peak in gemm_peaks]

    @classmethod
    def open(cls, path: Path, environment: Mapping[str, Any], *, resume: bool) -> ResultsStore:
        """Validate ``path`` before any work. Without ``resume`` a new sweep replaces it at its first write.

        An existing file that is not a valid results file is never replaced (one-line error instead).
        """
        path = Path(path)
        check_results_writable(path)
        took = _lock_for_writing(path)
        try:
            store = cls._open_locked(path, environment, resume=resume)
            store._announce()
            return store
        except BaseException:  # refused: nothing of this process's stays beside the file
            if took:
                _release(str(path.resolve()))
            raise

    @classmethod
    def _open_locked(cls, path: Path, environment: Mapping[str, Any], *, resume: bool) -> ResultsStore:
        if not path.exists():
            return cls(path, environment)
        document = read_results(path)
        if not resume:
            return cls(path, environment)
        if "sources" in document:  # its records are keyed per host and run: one sweep's store would drop some
            raise MnprofError(
                f"--resume: {path} was joined by mnprof merge from {len(document['sources'])} files; accepted: "
                "the results file of one sweep (pass another --results file to measure here)"
            )
        theirs = document["environment"].get("host_fingerprint")
        ours = environment.get("host_fingerprint")
        if theirs != ours:
            raise MnprofError(
                f"--resume: {path} was measured on another host or software stack (fingerprint {theirs}, "
                f"here {ours}); pass another --results file to measure here"
            )
        return cls(path, environment, results_records([document]), document.get("gemm_peaks", []))

    def done(self) -> set[MeasurementKey]:
        """Keys measured successfully (records with an error are measured again)."""
        return {key for key, record in self._records.items() if not record.error}

    def record(self, key: MeasurementKey) -> TimingRecord | None:
        return self._records.get(key)

    def add(self, record: TimingRecord) -> None:
        """Add (or replace) one measurement and write the whole file atomically."""
        self._records[record.key.ident()] = record
        self.write()
        self._announce()

    def _announce(self) -> None:
        """Tell the ``mnprof`` process what this file keeps (and its lock), for its line if this process dies."""
        held = _LOCKS.get(str(self.path.resolve()))
        worker.kept(str(self.path), len(self.done()), str(held[1]) if held else None)

    def set_gemm_peak(self, peak: Mapping[str, Any]) -> None:
        """Record the GEMM peak measured in this run for its (device, threads)."""
        self._gemm_peaks = [
            old for old in self._gemm_peaks if (old["device"], old["threads"]) != (peak["device"], peak["threads"])
        ] + [dict(peak)]

    def document(self) -> dict[str, Any]:
        return {
            "schema_version": RESULTS_SCHEMA_VERSION,
            "kind": RESULTS_KIND,
            "environment": self.environment,
            "gemm_peaks": self._gemm_peaks,
            "measurements": [record.to_row() for record in self._records.values()],
        }

    def write(self) -> None:
        atomic_write_text(self.path, dumps(self.document()))
