"""The streaming validator gives the eager validator's report, rule for rule, on files."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinical_mborl.ehr.scan_validate import scan_validate_folder
from clinical_mborl.ehr.validate import validate_folder

from .factories import append_copies, make_frames, set_cells, write_frames
from .test_properties import INJECTIONS
from .test_validate import CASES, IDS, N_STAYS


def _same_report(folder: Path) -> dict:
    eager, lazy = validate_folder(folder).model_dump(), scan_validate_folder(folder).model_dump()
    assert lazy == eager
    return lazy


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_every_rule_reports_as_the_eager_validator_does(case, fmt, tmp_path):
    report = _same_report(write_frames(tmp_path, case.mutate(make_frames(n_stays=N_STAYS)), fmt))
    assert (case.reason, case.table, case.column) in {(v["reason"], v["table"], v["column"])
                                                      for v in report["violations"]}


def test_every_problem_at_once_with_duplicates_extra_columns_and_text_datetimes(tmp_path):
    frames = make_frames(n_stays=N_STAYS)
    # text in typed columns last: later cases compute on those columns
    for case in sorted((c for c in CASES if c.reason != "missing_column"), key=lambda c: c.reason == "bad_type"):
        frames = case.mutate(frames)
    frames["measurements"] = append_copies(frames["measurements"], [2, 5, 5]).with_columns(
        pl.lit("x").alias("extra"))
    frames["treatments"] = frames["treatments"].with_columns(pl.col("start_time").dt.strftime("%Y-%m-%dT%H:%M"))
    report = _same_report(write_frames(tmp_path, frames, "parquet"))
    assert not report["ok"] and report["duplicate_rows"]["measurements"] >= 3
    assert report["ignored_columns"]["measurements"] == ["extra"]


SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.integers(1, 8), st.integers(1, 6), st.integers(0, 2**32 - 1), st.sampled_from(INJECTIONS),
       st.data(), st.sampled_from(["csv", "parquet"]))
def test_random_tables_with_injected_rows_give_the_same_report(n_stays, per_stay, seed, injection, data, fmt):
    frames = make_frames(n_stays=n_stays, meas_per_stay=per_stay, seed=seed)
    table, _, _, values = injection
    rows = sorted(data.draw(st.sets(st.integers(0, frames[table].height - 1), min_size=1, max_size=7)))
    frames[table] = set_cells(frames[table], rows, values)
    dups = data.draw(st.lists(st.integers(0, frames["measurements"].height - 1), max_size=6))
    frames["measurements"] = append_copies(frames["measurements"], dups)
    folder = Path(tempfile.mkdtemp())
    try:
        report = _same_report(write_frames(folder, frames, fmt))
        assert report["duplicate_rows"]["measurements"] > 0 or not dups
    finally:
        shutil.rmtree(folder)
