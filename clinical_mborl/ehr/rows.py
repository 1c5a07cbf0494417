"""Pydantic row models of the canonical EHR tables (CONTRACTS.md §1).

They mirror `clinical_mborl.ehr.tables` column for column and document each field (meaning,
unit, nullability). They serve JSON-Schema export and documentation, and can check a single row;
whole tables are checked vectorised by `clinical_mborl.ehr.validate`.

>>> from datetime import datetime
>>> row = MeasurementRow(stay_id="s1", time=datetime(2020, 1, 1), variable="heart_rate",
...                      value=88.0, unit="bpm")
>>> row.unit
'bpm'
>>> sorted(ehr_json_schemas())
['measurements', 'stays', 'treatments']
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from clinical_mborl.core.models import StrictModel
from clinical_mborl.ehr.tables import AGE_YEARS_MAX

_TIME_NOTE = "Naive ISO 8601 datetime; one clock for the whole extract."


def _unit(unit: str) -> dict[str, Any]:
    return {"unit": unit}


class StayRow(StrictModel):
    """One ICU stay: a row of the `stays` table."""

    stay_id: str = Field(min_length=1, description="ICU stay identifier; unique in `stays`.")
    patient_id: str = Field(
        min_length=1, description="Patient identifier; several stays may share one (splits are by patient)."
    )
    admit_time: datetime = Field(description=f"ICU admission time. {_TIME_NOTE}")
    discharge_time: datetime = Field(
        description=f"ICU discharge time (or death); not before admit_time. {_TIME_NOTE}"
    )
    age_years: float = Field(
        ge=0, le=AGE_YEARS_MAX, allow_inf_nan=False,
        description="Age at ICU admission, in years.", json_schema_extra=_unit("years"),
    )
    sex: Literal["F", "M", "U"] = Field(description="Sex: F (female), M (male) or U (unknown).")
    weight_kg: float | None = Field(
        default=None, gt=0, allow_inf_nan=False,
        description="Body weight at admission, in kilograms; empty when not recorded.",
        json_schema_extra=_unit("kg"),
    )
    died_in_hospital: bool = Field(description="True if the patient died during the hospital stay.")
    death_time: datetime | None = Field(
        default=None,
        description=f"Time of death; set if and only if died_in_hospital. {_TIME_NOTE}",
    )

    @model_validator(mode="after")
    def _check_times(self) -> Self:
        if self.discharge_time < self.admit_time:
            raise ValueError("discharge_time is before admit_time")
        if self.died_in_hospital != (self.death_time is not None):
            raise ValueError("death_time must be set if and only if died_in_hospital")
        return self


class MeasurementRow(StrictModel):
    """One charted value (vital sign, laboratory result, score): a row of `measurements`."""

    stay_id: str = Field(min_length=1, description="ICU stay the value belongs to; must exist in `stays`.")
    time: datetime = Field(description=f"Charting time (when the value became known). {_TIME_NOTE}")
    variable: str = Field(min_length=1, description="Variable name, e.g. `heart_rate`, `lactate`.")
    value: float = Field(allow_inf_nan=False, description="Numeric value, in `unit`.")
    unit: str = Field(description="Unit of `value` as free text (e.g. `mmol/L`); the cohort spec converts it.")


class TreatmentRow(StrictModel):
    """One administration (bolus or infusion segment): a row of `treatments`."""

    stay_id: str = Field(min_length=1, description="ICU stay the administration belongs to; must exist in `stays`.")
    start_time: datetime = Field(description=f"Start of the administration. {_TIME_NOTE}")
    end_time: datetime = Field(
        description=f"End of the administration; equal to start_time for a bolus. {_TIME_NOTE}"
    )
    treatment: str = Field(min_length=1, description="Treatment name, e.g. `norepinephrine`, `crystalloid`.")
    amount: float | None = Field(
        default=None, ge=0, allow_inf_nan=False,
        description="Total amount given over the interval, in `amount_unit` (e.g. mL, mg).",
        json_schema_extra=_unit("amount_unit"),
    )
    amount_unit: str | None = Field(default=None, description="Unit of `amount`; required when amount is set.")
    rate: float | None = Field(
        default=None, ge=0, allow_inf_nan=False,
        description="Infusion rate, in `rate_unit` (e.g. mcg/kg/min, mL/h).",
        json_schema_extra=_unit("rate_unit"),
    )
    rate_unit: str | None = Field(default=None, description="Unit of `rate`; required when rate is set.")

    @model_validator(mode="after")
    def _check_dose(self) -> Self:
        if self.end_time < self.start_time:
            raise ValueError("end_time is before start_time")
        if self.amount is None and self.rate is None:
            raise ValueError("neither amount nor rate is set")
        if self.amount is not None and self.amount_unit is None:
            raise ValueError("amount is set without amount_unit")
        if self.rate is not None and self.rate_unit is None:
            raise ValueError("rate is set without rate_unit")
        return self


ROW_MODELS: dict[str, type[StrictModel]] = {
    "stays": StayRow,
    "measurements": MeasurementRow,
    "treatments": TreatmentRow,
}


def ehr_json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of one row of each canonical table, keyed by table name.

    >>> ehr_json_schemas()["stays"]["properties"]["weight_kg"]["unit"]
    'kg'
    """
    out: dict[str, dict[str, Any]] = {}
    for table, model in ROW_MODELS.items():
        schema = model.model_json_schema()
        schema["x-table"] = table
        out[table] = schema
    return out
