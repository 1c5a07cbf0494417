"""The plausibility table is computed from the tables and flags values outside their band."""

from __future__ import annotations

import polars as pl

from clinical_mborl.simulators.sepsis.plausibility import (
    PlausibilityRow,
    plausibility_rows,
    to_markdown,
)


def test_rows_cover_the_required_metrics(ehr_tables: dict[str, pl.DataFrame]) -> None:
    rows = plausibility_rows(ehr_tables)
    metrics = " ".join(r.metric for r in rows)
    for needed in ("mortality", "length of stay", "vasopressors", "fluid 0-24 h", "lactate", "MAP"):
        assert needed in metrics
    assert all(r.source and r.published for r in rows)
    mortality = rows[0]
    expected = 100 * ehr_tables["stays"]["died_in_hospital"].mean()
    assert abs(mortality.value - expected) < 1e-9


def test_markdown_flags_out_of_band_rows() -> None:
    row = PlausibilityRow(metric="m", population="all", simulated="9", value=9.0, published="1-2", band=(1.0, 2.0),
                          source="s")
    assert not row.within
    assert "| NO |" in to_markdown([row], 10, 0)
