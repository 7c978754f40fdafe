"""mnprof paper: exact numbers from independent arithmetic, verdicts derived from the data, golden Markdown."""

from __future__ import annotations

import dataclasses
import io
import json

import pandas as pd
import pytest
from cli_run import run

from mnprof.counting.count import count_many
from mnprof.model.reference import TABLE1, TABLE2
from mnprof.paper import architecture
from mnprof.paper import models as paper
from mnprof.paper.models import paper_tables
from mnprof.paper.verdict import Verdict, verdict
from mnprof.views import grid
from mnprof.views.paper import render_paper
from mnprof.views.render import Format
from mnprof.views.table_document import TABLE_SCHEMA_VERSION

MACS_1_0_224 = 568_740_352  # pinned independently in tests/test_analytic.py


@pytest.mark.parametrize(
    ("computed", "published", "expected"),
    [
        (568.740352, 569, Verdict.REPRODUCED),
        (290.6752, 290, Verdict.TRUNCATED),  # rounds to 291
        (4867.293184, 4866, Verdict.DIFFERS),
        (0.465144, 0.5, Verdict.REPRODUCED),
        (2.35, 2.4, Verdict.REPRODUCED),  # half up on the decimal value, whatever the binary float is
        (1.906, 1.19, Verdict.DIFFERS),
        (94.857, 94.86, Verdict.REPRODUCED),
    ],
)
def test_verdict_compares_at_the_printed_precision(computed, published, expected):
    assert verdict(computed, published) is expected


# ---------------------------------------------------------------------------- Table 1


def test_table1_shapes_by_hand():
    frame = paper.table1().frame
    # Feature map sides at input 224: the stem and four more stride-2 stages halve it, padding 1.
    sides = [224 // 2**k for k in range(6)]  # 224, 112, 56, 28, 14, 7
    assert sides == [224, 112, 56, 28, 14, 7]
    by_row = frame.set_index("row")
    assert by_row.loc[1, ["type_stride", "filter_shape", "input_size"]].tolist() == [
        "Conv / s2",
        "3x3x3x32",
        "224x224x3",
    ]
    assert by_row.loc[4, "input_size"] == f"{sides[1]}x{sides[1]}x64"
    assert by_row.loc[13, ["filter_shape", "input_size"]].tolist() == ["1x1x256x512", f"{sides[4]}x{sides[4]}x256"]
    assert by_row.loc[14, ["filter_shape", "repeat", "layers"]].tolist() == ["3x3x512 dw", 5, "blocks.7-11.dw"]
    assert by_row.loc[17, "input_size"] == f"{sides[5]}x{sides[5]}x512"
    assert by_row.loc[20, "filter_shape"] == "Pool 7x7"
    assert by_row.loc[22, "input_size"] == "1x1x1000"
    # Every printed cell but one is reproduced; the one is the last depthwise conv's stride.
    matches = frame[["type_stride_match", "filter_shape_match", "input_size_match"]]
    assert int(matches.to_numpy().sum()) == 3 * len(TABLE1) - 1
    assert by_row.loc[18, ["published_type_stride", "type_stride", "type_stride_match"]].tolist() == [
        "Conv dw / s2",
        "Conv dw / s1",
        False,
    ]


def test_table1_misprint_is_confirmed_by_computation():
    notes = " ".join(paper.table1().notes)
    # With stride 2 the last block runs at 4x4 instead of 7x7 (3x3 kernel, padding 1: (7 + 2 - 3) // 2 + 1 = 4).
    saved = (7 * 7 - 4 * 4) * (3 * 3 * 1024 + 1024 * 1024)
    stride_two = MACS_1_0_224 - saved
    assert stride_two == 533_833_216
    assert f"{stride_two / 1e6:.2f} million Mult-Adds (differs against Table 6's 569)" in notes
    assert "Confirmed: the printed s2 is a misprint for s1." in notes
    assert "turns 7x7 into 4x4, but row 19 prints input 7x7x1024; stride 1 gives 7x7" in notes


def test_table1_verdicts_come_from_the_data(monkeypatch):
    fixed = list(TABLE1)
    fixed[17] = dataclasses.replace(fixed[17], type_stride="Conv dw / s1")
    monkeypatch.setattr(architecture, "TABLE1", tuple(fixed))
    table = paper.table1()
    assert "66 of 66 printed cells" in table.notes[0]
    assert not any("misprint" in note or "disagrees" in note for note in table.notes)


# ---------------------------------------------------------------------------- Table 2


def test_table2_shares_by_hand():
    frame = paper.table2().frame.set_index("kind")
    stem = 112 * 112 * 3 * 3 * 3 * 32
    fc = 1024 * 1000
    assert frame.loc["conv", "macs"] == stem == 10_838_016
    assert frame.loc["fc", "macs"] == fc
    assert frame["macs"].sum() == MACS_1_0_224
    assert frame.loc["conv", "macs_pct"] == pytest.approx(100 * stem / MACS_1_0_224)
    assert frame["macs_pct"].sum() == pytest.approx(100)
    assert frame.loc["conv", "macs_verdict"] == "differs"
    assert (frame.drop(index="conv")["macs_verdict"] == "reproduced").all()
    # Parameters: only the weights-only shares reproduce every printed row.
    assert (frame["weights_verdict"] == "reproduced").all()
    assert set(frame.loc[frame["params_verdict"] == "differs"].index) == {"pointwise", "fc"}


def test_table2_notes_find_the_transposition_and_the_sum():
    notes = " ".join(paper.table2().notes)
    assert "The printed column sums to 99.29%" in notes
    assert "The printed 1.19 has the digits of the computed 1.91 in another order" in notes
    assert "would sum to 100.01%" in notes
    assert "2 of 4 rows are reproduced; counting weights only" in notes and "4 of 4" in notes


def test_table2_verdicts_come_from_the_data(monkeypatch):
    fixed = list(TABLE2)
    fixed[2] = dataclasses.replace(fixed[2], macs_pct=1.91)
    monkeypatch.setattr(architecture, "TABLE2", tuple(fixed))
    notes = " ".join(paper.table2().notes)
    assert "4 of 4 rows reproduced" in notes and "transposition" not in notes
    assert "sums to 100.01%" in notes


# ---------------------------------------------------------------------------- Table 3


def test_table3_exact_integers_by_hand():
    frame = paper.table3().frame
    assert frame["macs"].tolist() == [
        14 * 14 * 3 * 3 * 512 * 512,  # standard convolution, Ho*Wo*F^2*N*M
        14 * 14 * 512 * (3 * 3 + 512),  # depthwise separable, Ho*Wo*N*(F^2+M)
        14 * 14 * 384 * (3 * 3 + 384),  # alpha 0.75: 384 channels
        10 * 10 * 384 * (3 * 3 + 384),  # rho 160/224: 14x14 -> 10x10
    ]
    assert frame["macs"].tolist() == [462_422_016, 52_283_392, 29_578_752, 15_091_200]
    assert frame["params"].tolist() == [
        3 * 3 * 512 * 512,
        3 * 3 * 512 + 512 * 512,
        3 * 3 * 384 + 384 * 384,
        3 * 3 * 384 + 384 * 384,
    ]
    assert (frame["macs_verdict"] == "reproduced").all() and (frame["params_verdict"] == "reproduced").all()
    assert frame["equals_model_layer"].all()
    separable = frame.iloc[1:]
    assert (separable["ratio_to_same_shape_standard"] == separable["seed_formula_ratio"]).all()
    assert separable["seed_formula_holds"].tolist() == [True, True, True]
    assert frame.loc[1, "seed_formula_ratio"] == pytest.approx(1 / 512 + 1 / 9)


# ---------------------------------------------------------------------------- Tables 4 to 9


def test_table4_full_convolution_and_the_unexplained_difference():
    table = paper.table4()
    frame = table.frame.set_index("model")
    assert frame.loc["Conv MobileNet", "macs"] == 4_867_293_184
    assert frame.loc["Conv MobileNet", "macs_verdict"] == "differs"
    assert frame.loc["Conv MobileNet", "params_verdict"] == "reproduced"
    assert frame.loc["MobileNet", "macs"] == MACS_1_0_224
    notes = " ".join(table.notes)
    # Leaving the FC out gives 4866 but breaks MobileNet's 569 (567.72 rounds to 568).
    assert f"without the FC layer {(4_867_293_184 - 1_024_000) / 1e6:.2f} (reproduced)" in notes
    assert "no single convention tried reproduces the whole table" in notes


def test_table5_shallow_by_hand():
    frame = paper.table5().frame.set_index("model")
    shallow = MACS_1_0_224 - 5 * 14 * 14 * 512 * (9 + 512)
    assert frame.loc["Shallow MobileNet", "macs"] == shallow == 307_323_392
    assert (frame["macs_verdict"] == "reproduced").all() and (frame["params_verdict"] == "reproduced").all()


def test_tables_6_and_7_and_paper_frame_share_computed_rows(monkeypatch):
    calls = []
    original = paper.computed_rows

    def recording(keys, *args, **kwargs):
        calls.append(tuple(keys))
        return original(keys, *args, **kwargs)

    monkeypatch.setattr(paper, "computed_rows", recording)
    six = paper.table6().frame.set_index("model")
    assert calls == [("6",)], "Table 6 must come from paper.computed_rows"
    assert six.loc["1.0 MobileNet-224", "macs_m"] == MACS_1_0_224 / 1e6
    assert six["id"].tolist() == ["1.0-224", "0.75-224", "0.5-224", "0.25-224"]
    seven = paper.table7().frame.set_index("model")
    assert calls[-1] == ("7",), "Table 7 must come from paper.computed_rows"
    assert seven.loc["1.0 MobileNet-160", "macs_verdict"] == "truncated"
    assert seven.loc["1.0 MobileNet-160", "macs"] == 290_675_200
    calls.clear()
    view = grid.paper_frame(count_many(list(dict.fromkeys(grid.paper_configs()))))
    assert calls == [("6", "7")], "mnprof table --view paper must come from paper.computed_rows"
    view_six = view[view["table"] == "6"].set_index("model")
    assert view_six.loc["1.0 MobileNet-224", "macs_m"] == MACS_1_0_224 / 1e6
    assert view_six["id"].tolist() == six["id"].tolist()
    shared = ["macs_m", "delta_macs_pct", "params_m", "delta_params_pct"]
    assert view_six[shared].equals(six[shared])


def test_table6_notes_tfslim_disagreements():
    notes = " ".join(paper.table6().notes)
    assert "0.75-224: paper 325 (reproduced), TF-slim 317 (differs), computed 325.400" in notes
    assert "16 channels give 316.97, 233.08, 162.10, 104.02" in notes
    assert "0.25-192 (TF-slim 34, computed 30.213)" in notes


def test_tables_8_and_9_compute_only_mobilenet():
    eight, nine = paper.table8().frame.set_index("model"), paper.table9().frame.set_index("model")
    assert eight.loc["1.0 MobileNet-224", "macs_verdict"] == "reproduced"
    assert eight.loc["VGG 16", "macs_verdict"] == "not computed" and pd.isna(eight.loc["VGG 16", "macs"])
    assert nine.loc["0.50 MobileNet-160", "macs"] == 76_524_800
    assert nine.loc["0.50 MobileNet-160", "macs_verdict"] == "truncated"
    assert nine.loc["0.50 MobileNet-160", "params_verdict"] == "reproduced"


# ---------------------------------------------------------------------------- rendering and the command


def test_paper_markdown_matches_golden(golden):
    golden("paper_tables.md", render_paper(paper_tables(), Format.MARKDOWN))


def test_json_carries_rows_and_notes():
    document = json.loads(render_paper(paper_tables(["3", "4"]), Format.JSON))
    assert document["kind"] == "mnprof.paper" and document["schema_version"] == TABLE_SCHEMA_VERSION
    assert set(document["tables"]) == {"3", "4"}
    assert any("no single convention" in note for note in document["tables"]["4"]["notes"])
    first = document["rows"][0]
    assert first["paper_table"] == "3" and first["macs"] == 462_422_016 and isinstance(first["macs"], int)


def test_csv_is_one_long_table_with_exact_integers():
    frame = pd.read_csv(io.StringIO(render_paper(paper_tables(["2", "3"]), Format.CSV)))
    assert frame["paper_table"].tolist() == [2] * 4 + [3] * 4
    assert frame.loc[frame["paper_table"] == 3, "macs"].tolist() == [462_422_016, 52_283_392, 29_578_752, 15_091_200]


def test_command_prints_every_table(capsys):
    code, out, err = run(capsys, "paper", "--format", "markdown")
    assert code == 0, err
    assert [line for line in out.splitlines() if line.startswith("### Table")] == [
        line for line in out.splitlines() if line.startswith("### ")
    ]
    assert sum(line.startswith("### Table") for line in out.splitlines()) == 9


def test_command_writes_atomically(capsys, tmp_path):
    out = tmp_path / "paper.json"
    code, stdout, _ = run(capsys, "paper", "--table", "1", "--out", str(out))
    assert code == 0 and stdout == ""
    assert json.loads(out.read_text())["tables"]["1"]["title"].startswith("Table 1")
    assert [p.name for p in tmp_path.iterdir()] == ["paper.json"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--table", "10"], "unknown table '10'; accepted: 1, 2, 3, 4, 5, 6, 7, 8, 9 or all"),
        (["--table", "1,x"], "unknown table 'x'"),
        (["--format", "xml"], "'xml' is not one of 'table', 'markdown', 'csv', 'json'"),
        (["--out", "/nonexistent-dir/p.md"], "directory /nonexistent-dir does not exist"),
        (["--out", "{tmp}"], "is a directory"),
        (["--out", "{tmp}/file/p.md"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, tmp_path, args, message):
    (tmp_path / "file").write_text("")
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    code, out, err = run(capsys, "paper", *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("mnprof: error: ")
    assert message in err


def test_unwritable_out_leaves_nothing(capsys, tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    tmp_path.chmod(0o500)
    try:
        code, _, err = run(capsys, "paper", "--out", str(tmp_path / "p.md"))
    finally:
        tmp_path.chmod(0o700)
    assert code == 2 and "not writable" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
