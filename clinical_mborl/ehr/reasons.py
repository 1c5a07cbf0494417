"""Reason codes of the EHR validator, in one place.

Every `Violation` the `ehr` stage reports carries one of these codes. `REASONS` maps each code to
a one-line description (what the rule checks); the CLI summary and the docs use it.

>>> REASONS[BAD_TYPE]
'a value cannot be cast to the contract type'
"""

from __future__ import annotations

from clinical_mborl.ehr.tables import AGE_YEARS_MAX, SEX_VALUES

# Errors: the tables break the contract (CONTRACTS.md §1).
MISSING_COLUMN = "missing_column"
BAD_TYPE = "bad_type"
NULL_REQUIRED = "null_required"
DUPLICATE_STAY_ID = "duplicate_stay_id"
UNKNOWN_STAY_ID = "unknown_stay_id"
DISCHARGE_BEFORE_ADMIT = "discharge_before_admit"
DEATH_BEFORE_ADMIT = "death_before_admit"
END_BEFORE_START = "end_before_start"
DEATH_TIME_MISMATCH = "death_time_mismatch"
NON_FINITE = "non_finite"
NEGATIVE_DOSE = "negative_dose"
NO_DOSE = "no_dose"
DOSE_WITHOUT_UNIT = "dose_without_unit"
BAD_SEX = "bad_sex"
NEGATIVE_AGE = "negative_age"
IMPLAUSIBLE_AGE = "implausible_age"
NON_POSITIVE_WEIGHT = "non_positive_weight"

# Warnings: reported and counted, not errors (the cohort spec decides what to do with them).
DUPLICATE_ROWS = "duplicate_rows"

REASONS: dict[str, str] = {
    MISSING_COLUMN: "a required column is absent",
    BAD_TYPE: "a value cannot be cast to the contract type",
    NULL_REQUIRED: "a required value is empty",
    DUPLICATE_STAY_ID: "a stay_id repeats an earlier row of stays",
    UNKNOWN_STAY_ID: "a stay_id is not in stays",
    DISCHARGE_BEFORE_ADMIT: "discharge_time is before admit_time",
    DEATH_BEFORE_ADMIT: "death_time is before admit_time",
    END_BEFORE_START: "end_time is before start_time",
    DEATH_TIME_MISMATCH: "death_time must be set if and only if died_in_hospital",
    NON_FINITE: "a number is NaN or infinite",
    NEGATIVE_DOSE: "a dose amount or rate is negative",
    NO_DOSE: "neither amount nor rate is set",
    DOSE_WITHOUT_UNIT: "an amount or rate is set without its unit",
    BAD_SEX: f"sex is not one of {', '.join(SEX_VALUES)}",
    NEGATIVE_AGE: "age_years is negative",
    IMPLAUSIBLE_AGE: f"age_years is above {AGE_YEARS_MAX:g}",
    NON_POSITIVE_WEIGHT: "weight_kg is zero or negative",
    DUPLICATE_ROWS: "a row repeats an earlier row exactly (warning)",
}

ERROR_REASONS = frozenset(REASONS) - {DUPLICATE_ROWS}
WARNING_REASONS = frozenset({DUPLICATE_ROWS})
