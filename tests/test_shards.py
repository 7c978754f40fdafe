"""``--shard i/n`` on table, baseline and check, and ``mnprof merge``: a CI matrix counts each configuration once,
and its shards join into the baseline one job would have written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_run import ROOT, run
from factories import edited

from mnprof.check.shard import Shard, parse_shard
from mnprof.errors import MnprofError

# two models, two alphas, two resolutions: 8 configurations, sorted across models
GRID = [
    "--model", "net=tests.regression_models:tiny", "--model", "wide=tests.regression_models:tiny_widened",
    "--alpha", "1.0,0.5", "--resolution", "64,32", "--quiet",
]  # fmt: skip


pytestmark = pytest.mark.usefixtures("at_repo_root")  # factories are imported relative to the working directory


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mnprof: error: "), err
    return lines[0]


def baseline(capsys, out: Path, *extra: str) -> dict:
    code, _, err = run(capsys, "baseline", *GRID, "--out", str(out), *extra)
    assert code == 0, err
    return json.loads(out.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    """The unsharded baseline of GRID (module-scoped: every test compares with it)."""
    from mnprof.cli import main

    path = tmp_path_factory.mktemp("whole") / "baseline.json"
    cwd = Path.cwd()
    try:
        os.chdir(ROOT)
        assert main(["baseline", *GRID, "--out", str(path)]) == 0
    finally:
        os.chdir(cwd)
    return path


def test_the_partition_is_round_robin_over_sorted_ids_and_covers_each_once():
    ids = [f"c{index:02d}" for index in range(10)][::-1]
    parts = [Shard(index, 3).part(ids) for index in (1, 2, 3)]
    assert parts == [["c00", "c03", "c06", "c09"], ["c01", "c04", "c07"], ["c02", "c05", "c08"]]
    assert parse_shard(" 2/3 ") == Shard(2, 3)
    with pytest.raises(MnprofError, match="holds none of the 2 configuration"):
        Shard(3, 3).refuse_empty(["a", "b"])


@pytest.mark.parametrize("count", [2, 3, 4])
def test_sharded_baselines_merge_into_the_unsharded_one(capsys, tmp_path, whole, count):
    expected = json.loads(whole.read_text(encoding="utf-8"))
    parts = [tmp_path / f"part-{index}-of-{count}.json" for index in range(1, count + 1)]
    held = []
    for index, part in enumerate(parts, 1):
        document = baseline(capsys, part, "--shard", f"{index}/{count}")
        assert document["shard"] == {"index": index, "count": count, "configurations": 8}
        held.append(set(document["entries"]))
    assert sum(len(keys) for keys in held) == 8 and set().union(*held) == set(expected["entries"])
    merged = tmp_path / "merged.json"
    code, _, err = run(capsys, "merge", *map(str, reversed(parts)), "--out", str(merged))
    assert code == 0, err
    document = json.loads(merged.read_text(encoding="utf-8"))
    assert document["entries"] == expected["entries"]
    assert document["provenance"] == json.loads(parts[0].read_text(encoding="utf-8"))["provenance"]
    assert "shard" not in document
    code, out, err = run(capsys, "check", *GRID, "--baseline", str(merged))  # the merged file is a whole baseline
    assert code == 0 and "8 configurations compared" in out, err + out


def test_each_check_shard_compares_its_part_and_only_the_shard_holding_a_regression_fails(capsys, tmp_path, whole):
    grown = [arg.replace("net=tests.regression_models:tiny", "net=tests.regression_models:tiny_bias") for arg in GRID]
    compared, failed = 0, []
    for index in (1, 2, 3):
        code, out, err = run(capsys, "check", *grown, "--baseline", str(whole), "--shard", f"{index}/3", "--format",
                             "json")  # fmt: skip
        assert code in (0, 1), err
        document = json.loads(out)
        compared += document["compared"]
        failed += sorted({f["entry"] for f in document["findings"] if f["fails"]})
        assert all(f["status"] != "removed" for f in document["findings"])  # the other shards' entries are theirs
    assert compared == 8
    assert sorted(failed) == ["net@0.5-32", "net@0.5-64", "net@1.0-32", "net@1.0-64"]


def test_table_shards_partition_the_rows(capsys):
    ids = []
    for index in (1, 2):
        code, out, err = run(capsys, "table", "--no-timing", *GRID, "--shard", f"{index}/2", "--format", "json")
        assert code == 0, err
        ids.append([row["id"] for row in json.loads(out)["rows"]])
    assert sorted(ids[0] + ids[1]) == sorted(f"{m}-{a}-{r}" for m in ("net", "wide") for a in ("1.0", "0.5")
                                             for r in (64, 32)) == sorted(set(ids[0]) | set(ids[1]))  # fmt: skip
    assert ids[0] and ids[1]


@pytest.mark.parametrize("spec", ["0/3", "4/3", "1/0", "a/b", "1/3/5", "-1/3", "١/٣"])
@pytest.mark.parametrize("command", ["table", "baseline", "check"])
def test_bad_shard_specs_are_one_line_exit_2_and_nothing_is_written(capsys, tmp_path, whole, command, spec):
    out = tmp_path / "out.json"
    where = {"table": ["--no-timing", "--out", str(out)], "baseline": ["--out", str(out)],
             "check": ["--baseline", str(whole)]}[command]  # fmt: skip
    code, stdout, err = run(capsys, command, *GRID, "--shard", spec, *where)
    assert code == 2 and stdout == ""
    line = one_error_line(err)
    assert "--shard" in line and "accepted: i/n" in line
    assert sorted(path.name for path in tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("command", "extra", "message"),
    [
        ("baseline", ["--shard", "9/9", "--out", "{tmp}/b.json"], "--shard 9/9 holds none of the 8 configuration"),
        ("baseline", ["--shard", "1/2"], "--shard 1/2 writes part of a baseline; accepted: --out"),
        ("baseline", ["--shard", "1/2", "--latency", "--out", "{tmp}/b.json"], "cannot be combined with --latency"),
        ("check", ["--shard", "1/2", "--latency", "--baseline", "{whole}"], "cannot be combined with --latency"),
    ],
)
def test_shard_refusals_are_one_line(capsys, tmp_path, whole, command, extra, message):
    args = [arg.format(tmp=tmp_path, whole=whole) for arg in extra]
    code, _, err = run(capsys, command, *GRID, *args)
    assert code == 2
    assert message in one_error_line(err)
    assert list(tmp_path.iterdir()) == []


def test_a_shards_baseline_is_not_checked_as_a_whole_one(capsys, tmp_path):
    part = tmp_path / "part.json"
    baseline(capsys, part, "--shard", "1/2")
    code, _, err = run(capsys, "check", *GRID, "--baseline", str(part))
    assert code == 2 and "is shard 1/2 of a baseline" in one_error_line(err)
    code, out, err = run(capsys, "check", *GRID, "--baseline", str(part), "--shard", "1/2")
    assert code == 0, err + out


TIMED = {"host_fingerprint": "h", "threads": 1, "entries": {}}  # a latency section, as --latency writes


def _grow(document: dict) -> None:
    document["entries"]["net@1.0-64"]["counts"]["pytorch"]["params"] += 1


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (lambda t, w: [w, edited(w, t / "grown.json", _grow)], "net@1.0-64 is in"),
        (lambda t, w: [w, edited(w, t / "v2.json", lambda d: d.update(schema_version=2))], "schema version 1 and"),
        (lambda t, w: [w, edited(w, t / "table.json", lambda d: d.update(kind="mnprof.table"))], "a 'mnprof.table'"),
        (lambda t, w: [edited(w, t / "t.json", lambda d: d.update(kind="mnprof.table"))] * 1, "is not an mnprof"),
        (lambda t, w: [w, edited(w, t / "other.json", lambda d: d["provenance"].update(torch="0.0"))],
         "different torch"),
        (lambda t, w: [w, edited(w, t / "timed.json", lambda d: d.update(latency=TIMED))], "holds latency"),
        (lambda t, w: [w, t / "missing.json"], "missing.json does not exist"),
        (lambda t, w: [w, w], "is named twice"),
        (lambda t, w: [edited(w, t / "s1.json", lambda d: d.update(shard={"index": 1, "count": 2,
                                                                           "configurations": 8}))],
         "shard(s) 2/2 are missing"),
        (lambda t, w: [edited(w, t / "s1.json", lambda d: d.update(shard={"index": 1, "count": 1,
                                                                           "configurations": 8})), w],
         "is a shard and"),
    ],
)  # fmt: skip
def test_merge_refusals_are_one_line_exit_2_and_leave_out_alone(capsys, tmp_path, whole, files, message):
    out = tmp_path / "merged.json"
    out.write_text("before", encoding="utf-8")
    code, _, err = run(capsys, "merge", *map(str, files(tmp_path, whole)), "--out", str(out))
    assert code == 2
    assert message in one_error_line(err)
    assert out.read_text(encoding="utf-8") == "before"


def test_merge_of_two_models_baselines_and_an_identical_overlap(capsys, tmp_path, whole):
    net = ["--model", "net=tests.regression_models:tiny", *GRID[4:]]
    code, _, err = run(capsys, "baseline", *net, "--out", str(tmp_path / "net.json"))
    assert code == 0, err
    merged = tmp_path / "merged.json"
    code, _, err = run(capsys, "merge", str(tmp_path / "net.json"), str(whole), "--out", str(merged))
    assert code == 0, err
    assert json.loads(merged.read_text(encoding="utf-8"))["entries"] == json.loads(whole.read_text())["entries"]


def test_entries_the_grid_no_longer_has_are_reported_by_shard_1_alone(capsys, whole):
    narrower = [arg if arg != "1.0,0.5" else "1.0" for arg in GRID]  # the 0.5 entries are left in the baseline only
    removed = []
    for index in (1, 2):
        code, out, err = run(capsys, "check", *narrower, "--baseline", str(whole), "--shard", f"{index}/2", "--format",
                             "json")  # fmt: skip
        assert code == 0, err
        removed.append(sorted(f["entry"] for f in json.loads(out)["findings"] if f["status"] == "removed"))
    assert removed == [["net@0.5-32", "net@0.5-64", "wide@0.5-32", "wide@0.5-64"], []]
