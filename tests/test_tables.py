from __future__ import annotations

import io
import json
import math

import pandas as pd
import pytest

from mnprof.counting.count import count_many
from mnprof.model.config import ModelConfig
from mnprof.views.grid import (
    Format,
    Unit,
    View,
    grid_frame,
    paper_configs,
    paper_frame,
    render,
    seed_configs,
    seed_frame,
)
from mnprof.views.table_document import TABLE_SCHEMA_VERSION

CONFIGS = [ModelConfig(1.0, 224), ModelConfig(0.75, 224), ModelConfig(0.6, 96)]
REPORTS = count_many(CONFIGS)
FRAME = grid_frame(REPORTS)


def test_json_is_versioned_and_pandas_reads_rows_directly():
    document = json.loads(render(FRAME, View.GRID, Format.JSON))
    assert document["schema_version"] == TABLE_SCHEMA_VERSION
    assert {"mnprof", "torch", "fvcore", "thop", "python"} <= set(document["environment"])
    rows = pd.DataFrame(document["rows"])
    for key in ("id", "alpha", "resolution", "params", "macs_analytic", "macs_fvcore", "macs_thop"):
        assert key in rows.columns
    first = document["rows"][0]
    assert first["id"] == "1.0-224"
    assert first["macs_analytic"] == 568_740_352 and isinstance(first["macs_analytic"], int)
    assert first["macs_fvcore"] == 578_875_904 and first["macs_thop"] == 588_962_304
    assert first["published_macs_m_paper"] == 569 and first["published_top1_paper"] == 70.6


def test_published_columns_are_separate_and_empty_where_no_source_has_the_configuration():
    row = FRAME.set_index("id").loc["0.6-96"]
    assert math.isnan(row["published_macs_m_paper"]) and math.isnan(row["published_macs_m_tfslim"])
    row = FRAME.set_index("id").loc["0.75-224"]
    assert row["published_macs_m_paper"] == 325 and row["published_macs_m_tfslim"] == 317
    assert row["delta_macs_pct_tfslim"] == pytest.approx((325.400448 - 317) / 317 * 100)


def test_flops_unit_doubles_and_says_so():
    document = json.loads(render(FRAME, View.GRID, Format.JSON, Unit.FLOPS))
    assert document["unit"] == "flops"
    assert document["rows"][0]["flops_analytic"] == 2 * 568_740_352
    markdown = render(FRAME, View.GRID, Format.MARKDOWN, Unit.FLOPS)
    assert "MFLOPs (2xMACs) analytic" in markdown and "1,137.5" in markdown


def test_csv_keeps_exact_integers():
    frame = pd.read_csv(io.StringIO(render(FRAME, View.GRID, Format.CSV)))
    assert frame.loc[0, "macs_analytic"] == 568_740_352
    assert frame.loc[0, "params"] == 4_231_976


def test_markdown_marks_published_values_and_states_the_reconciliation():
    markdown = render(FRAME, View.GRID, Format.MARKDOWN)
    assert "| 1.0-224 | 4.232 | 568.7 | 578.9 | 589.0 | 569* (-0.05%) |" in markdown
    assert "0 of 3 configurations leave anything unexplained" in markdown
    assert "published, not computed" in markdown


def test_paper_view_matches_golden(golden):
    golden("paper_view.md", render(paper_frame(count_many(paper_configs())), View.PAPER, Format.MARKDOWN))


def test_seed_view_says_what_is_reproduced(golden):
    frame = seed_frame(count_many(seed_configs()))
    by_model = frame.set_index("model")
    assert set(frame["params_reproduced_by"].str.contains("tfslim")) == {True}
    assert by_model.loc["1.0 MobileNet-224", "gflops_reproduced_by"] == "2xMACs of alpha 1.25"
    assert by_model.loc["0.75 MobileNet-224", "gflops_reproduced_by"] == ""
    golden("seed_view.md", render(frame, View.SEED, Format.MARKDOWN))
