"""Hypothesis: valid tables pass; k injected bad rows give count == k at the injected rows."""

from __future__ import annotations

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinical_mborl.ehr import reasons as R
from clinical_mborl.ehr.readers import EHRTables
from clinical_mborl.ehr.validate import validate_ehr

from .factories import SENTINEL, SENTINEL_NUMBER, append_copies, make_frames, set_cells

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# (table, column, reason, values set on each injected row)
INJECTIONS = [
    ("measurements", "value", R.NON_FINITE, {"value": float("nan")}),
    ("measurements", "value", R.BAD_TYPE, {"value": SENTINEL}),
    ("measurements", "stay_id", R.UNKNOWN_STAY_ID, {"stay_id": SENTINEL}),
    ("measurements", "variable", R.NULL_REQUIRED, {"variable": None}),
    ("treatments", "amount", R.NEGATIVE_DOSE, {"amount": -SENTINEL_NUMBER, "amount_unit": "mL"}),
    ("treatments", "end_time", R.END_BEFORE_START, {"end_time": pl.col("start_time") - pl.duration(minutes=1)}),
    ("treatments", "amount", R.NO_DOSE, {"amount": None, "rate": None}),
    ("treatments", "start_time", R.BAD_TYPE, {"start_time": "not a time"}),
    ("stays", "age_years", R.NEGATIVE_AGE, {"age_years": -SENTINEL_NUMBER}),
    ("stays", "sex", R.BAD_SEX, {"sex": SENTINEL}),
    ("stays", "death_time", R.DEATH_TIME_MISMATCH, {"died_in_hospital": True, "death_time": None}),
]


@st.composite
def frames(draw):
    return make_frames(
        n_stays=draw(st.integers(1, 8)),
        meas_per_stay=draw(st.integers(1, 6)),
        treat_per_stay=draw(st.integers(1, 4)),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@SETTINGS
@given(frames())
def test_random_valid_tables_report_nothing(f):
    report = validate_ehr(EHRTables.from_frames(**f))
    assert report.ok and report.violations == [] and report.warnings == []
    assert report.row_counts == {name: df.height for name, df in f.items()}


@SETTINGS
@given(frames(), st.sampled_from(INJECTIONS), st.data())
def test_injected_bad_rows_are_counted_and_located(f, injection, data):
    table, column, reason, values = injection
    height = f[table].height
    rows = sorted(data.draw(st.sets(st.integers(0, height - 1), min_size=1, max_size=height)))
    f[table] = set_cells(f[table], rows, values)
    report = validate_ehr(EHRTables.from_frames(**f))
    (violation,) = report.violations
    assert (violation["reason"], violation["table"], violation["column"]) == (reason, table, column)
    assert violation["count"] == len(rows)
    assert violation["example_rows"] == rows[:5]


@SETTINGS
@given(frames(), st.data())
def test_appended_duplicates_are_counted_as_warnings(f, data):
    height = f["measurements"].height
    rows = data.draw(st.lists(st.integers(0, height - 1), min_size=1, max_size=10))
    f["measurements"] = append_copies(f["measurements"], rows)
    report = validate_ehr(EHRTables.from_frames(**f))
    assert report.ok and report.duplicate_rows == {"measurements": len(rows), "treatments": 0}
    (warning,) = report.warnings
    assert warning["example_rows"] == list(range(height, height + min(len(rows), 5)))
