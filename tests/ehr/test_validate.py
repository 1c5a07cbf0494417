"""Every validator rule fires its reason code on the intended table and column, and only there."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl
import pytest

from clinical_mborl.core.errors import ValidationFailed
from clinical_mborl.ehr import reasons as R
from clinical_mborl.ehr.readers import EHRTables
from clinical_mborl.ehr.validate import check_ehr, validate_ehr

from .factories import (
    SENTINEL,
    SENTINEL_NUMBER,
    Frames,
    append_copies,
    leaked_values,
    make_frames,
    set_cells,
)

ROW = 1
HOUR = pl.duration(hours=1)


@dataclass(frozen=True)
class Case:
    reason: str
    table: str
    column: str
    mutate: Callable[[Frames], Frames]
    rows: tuple[int, ...] = (ROW,)  # expected example rows (none for a missing column)
    count: int = 1


def _on(table: str, values: dict) -> Callable[[Frames], Frames]:
    return lambda f: {**f, table: set_cells(f[table], [ROW], values)}


def _drop(table: str, column: str) -> Callable[[Frames], Frames]:
    return lambda f: {**f, table: f[table].drop(column)}


def _dup_stay(f: Frames) -> Frames:
    return {**f, "stays": append_copies(f["stays"], [0], {"patient_id": SENTINEL})}


N_STAYS = 4
CASES = [
    Case(R.MISSING_COLUMN, "stays", "sex", _drop("stays", "sex"), rows=(), count=N_STAYS),
    Case(R.MISSING_COLUMN, "treatments", "rate_unit", _drop("treatments", "rate_unit"), rows=(), count=2 * N_STAYS),
    Case(R.BAD_TYPE, "measurements", "value", _on("measurements", {"value": SENTINEL})),
    Case(R.BAD_TYPE, "stays", "admit_time", _on("stays", {"admit_time": SENTINEL})),
    Case(R.BAD_TYPE, "stays", "died_in_hospital", _on("stays", {"died_in_hospital": SENTINEL})),
    Case(R.NULL_REQUIRED, "measurements", "variable", _on("measurements", {"variable": None})),
    Case(R.NULL_REQUIRED, "stays", "patient_id", _on("stays", {"patient_id": None})),
    Case(R.DUPLICATE_STAY_ID, "stays", "stay_id", _dup_stay, rows=(N_STAYS,)),
    Case(R.UNKNOWN_STAY_ID, "measurements", "stay_id", _on("measurements", {"stay_id": SENTINEL})),
    Case(R.UNKNOWN_STAY_ID, "treatments", "stay_id", _on("treatments", {"stay_id": SENTINEL})),
    Case(R.DISCHARGE_BEFORE_ADMIT, "stays", "discharge_time",
         _on("stays", {"discharge_time": pl.col("admit_time") - HOUR})),
    Case(R.DEATH_BEFORE_ADMIT, "stays", "death_time",
         _on("stays", {"died_in_hospital": True, "death_time": pl.col("admit_time") - HOUR})),
    Case(R.END_BEFORE_START, "treatments", "end_time",
         _on("treatments", {"end_time": pl.col("start_time") - HOUR})),
    Case(R.DEATH_TIME_MISMATCH, "stays", "death_time", _on("stays", {"died_in_hospital": True, "death_time": None})),
    Case(R.DEATH_TIME_MISMATCH, "stays", "death_time",
         _on("stays", {"died_in_hospital": False, "death_time": pl.col("admit_time")})),
    Case(R.NON_FINITE, "measurements", "value", _on("measurements", {"value": float("nan")})),
    Case(R.NON_FINITE, "treatments", "amount", _on("treatments", {"amount": float("inf"), "amount_unit": "mL"})),
    Case(R.NON_FINITE, "stays", "weight_kg", _on("stays", {"weight_kg": float("-inf")})),
    Case(R.NON_FINITE, "treatments", "rate", _on("treatments", {"rate": float("-inf"), "rate_unit": "mL/h"})),
    Case(R.NEGATIVE_DOSE, "treatments", "amount", _on("treatments", {"amount": -SENTINEL_NUMBER, "amount_unit": "mL"})),
    Case(R.NEGATIVE_DOSE, "treatments", "rate", _on("treatments", {"rate": -SENTINEL_NUMBER, "rate_unit": "mL/h"})),
    Case(R.NO_DOSE, "treatments", "amount", _on("treatments", {"amount": None, "rate": None})),
    Case(R.DOSE_WITHOUT_UNIT, "treatments", "amount_unit",
         _on("treatments", {"amount": SENTINEL_NUMBER, "amount_unit": None})),
    Case(R.DOSE_WITHOUT_UNIT, "treatments", "rate_unit", _on("treatments", {"rate": SENTINEL_NUMBER, "rate_unit": None})),
    Case(R.BAD_SEX, "stays", "sex", _on("stays", {"sex": SENTINEL})),
    Case(R.NEGATIVE_AGE, "stays", "age_years", _on("stays", {"age_years": -SENTINEL_NUMBER})),
    Case(R.IMPLAUSIBLE_AGE, "stays", "age_years", _on("stays", {"age_years": SENTINEL_NUMBER})),
    Case(R.NON_POSITIVE_WEIGHT, "stays", "weight_kg", _on("stays", {"weight_kg": -SENTINEL_NUMBER})),
]
IDS = [f"{c.reason}-{c.table}.{c.column}" for c in CASES]


def _case(reason: str) -> Case:
    return next(c for c in CASES if c.reason == reason)


def _tables(case: Case) -> EHRTables:
    return EHRTables.from_frames(**case.mutate(make_frames(n_stays=N_STAYS)))


def test_every_error_reason_has_a_case():
    assert {c.reason for c in CASES} == set(R.ERROR_REASONS)
    assert set(R.REASONS) == R.ERROR_REASONS | R.WARNING_REASONS


def test_valid_tables_pass():
    report = check_ehr(EHRTables.from_frames(**make_frames()))
    assert report.ok and report.violations == [] and report.warnings == []
    assert report.row_counts == {"stays": 4, "measurements": 12, "treatments": 8}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_rule_fires_only_on_intended_column(case):
    report = validate_ehr(_tables(case))
    assert not report.ok
    found = [(v["reason"], v["table"], v["column"]) for v in report.violations]
    assert found == [(case.reason, case.table, case.column)]
    violation = report.violations[0]
    assert violation["count"] == case.count
    assert tuple(violation["example_rows"]) == case.rows
    assert report.warnings == []


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_message_names_table_and_column_and_no_patient_value(case):
    tables = _tables(case)
    with pytest.raises(ValidationFailed) as err:
        check_ehr(tables)
    message = str(err.value)
    assert f"[{case.reason}] {case.table}.{case.column}" in message
    assert leaked_values(message) == []
    assert err.value.exit_code == 2 and err.value.reasons == {case.reason}
    report = validate_ehr(tables).model_dump(mode="json")
    report.pop("source_files")
    assert leaked_values(json.dumps(report) + validate_ehr(tables).describe()) == []


def test_all_violations_collected_in_one_pass():
    frames = make_frames()
    for reason in (R.BAD_TYPE, R.DUPLICATE_STAY_ID, R.DEATH_TIME_MISMATCH, R.NO_DOSE):
        frames = _case(reason).mutate(frames)
    with pytest.raises(ValidationFailed) as err:
        check_ehr(EHRTables.from_frames(**frames))
    assert err.value.reasons == {R.BAD_TYPE, R.DUPLICATE_STAY_ID, R.DEATH_TIME_MISMATCH, R.NO_DOSE}


def test_exact_duplicate_rows_are_warnings_with_counts():
    frames = make_frames()
    frames["measurements"] = append_copies(frames["measurements"], [2, 5])
    frames["treatments"] = append_copies(frames["treatments"], [0])
    report = check_ehr(EHRTables.from_frames(**frames))  # warnings do not fail
    assert report.ok
    assert report.duplicate_rows == {"measurements": 2, "treatments": 1}
    warned = {(w["reason"], w["table"], tuple(w["example_rows"])) for w in report.warnings}
    assert warned == {(R.DUPLICATE_ROWS, "measurements", (12, 13)), (R.DUPLICATE_ROWS, "treatments", (8,))}


def test_bad_type_cells_are_not_also_reported_as_null():
    frames = make_frames()
    frames["measurements"] = set_cells(frames["measurements"], [0], {"value": SENTINEL})
    frames["measurements"] = set_cells(frames["measurements"], [3], {"value": None})
    report = validate_ehr(EHRTables.from_frames(**frames))
    found = {(v["reason"], tuple(v["example_rows"])) for v in report.violations}
    assert found == {(R.BAD_TYPE, (0,)), (R.NULL_REQUIRED, (3,))}


def test_unknown_stay_ids_not_checked_when_stays_lacks_stay_id():
    frames = make_frames()
    frames["stays"] = frames["stays"].drop("stay_id")
    report = validate_ehr(EHRTables.from_frames(**frames))
    assert [(v["reason"], v["column"]) for v in report.violations] == [(R.MISSING_COLUMN, "stay_id")]


def test_example_rows_are_the_first_five_and_count_is_total():
    frames = make_frames(n_stays=5, meas_per_stay=4)
    rows = [1, 3, 4, 8, 11, 15, 19]
    frames["measurements"] = set_cells(frames["measurements"], rows, {"value": float("nan")})
    (violation,) = validate_ehr(EHRTables.from_frames(**frames)).violations
    assert violation["count"] == 7 and violation["example_rows"] == rows[:5]


def test_ignored_columns_are_listed_not_errors():
    frames = make_frames()
    frames["measurements"] = frames["measurements"].with_columns(pl.lit(1).alias("charted_by"))
    report = check_ehr(EHRTables.from_frames(**frames))
    assert report.ignored_columns["measurements"] == ["charted_by"]
    assert "charted_by" in report.describe()


def test_report_round_trips_to_violations():
    report = validate_ehr(_tables(_case(R.BAD_TYPE)))
    (violation,) = report.violation_objects()
    assert (violation.reason, violation.table, violation.column, violation.example_rows) == (
        R.BAD_TYPE, "measurements", "value", (ROW,)
    )


def test_equal_boundary_times_are_valid():
    frames = make_frames()
    frames["stays"] = set_cells(frames["stays"], [0], {
        "discharge_time": pl.col("admit_time"), "died_in_hospital": True, "death_time": pl.col("admit_time"),
    })
    frames["treatments"] = set_cells(frames["treatments"], [0, 1], {"end_time": pl.col("start_time")})
    assert check_ehr(EHRTables.from_frames(**frames)).ok
