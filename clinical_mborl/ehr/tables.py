"""The canonical EHR input contract (CONTRACTS.md §1) as polars schemas.

Three tables, one file each in a folder (`stays`, `measurements`, `treatments`, as `.parquet`
or `.csv`). Times are naive datetimes in one clock per extract; units are free text strings
that the cohort spec converts.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

DATETIME = pl.Datetime("us")


@dataclass(frozen=True)
class TableContract:
    name: str
    schema: dict[str, pl.DataType]
    nullable: frozenset[str]

    @property
    def columns(self) -> list[str]:
        return list(self.schema)


STAYS = TableContract(
    name="stays",
    schema={
        "stay_id": pl.String(),
        "patient_id": pl.String(),
        "admit_time": DATETIME,
        "discharge_time": DATETIME,
        "age_years": pl.Float64(),
        "sex": pl.String(),
        "weight_kg": pl.Float64(),
        "died_in_hospital": pl.Boolean(),
        "death_time": DATETIME,
    },
    nullable=frozenset({"weight_kg", "death_time"}),
)

MEASUREMENTS = TableContract(
    name="measurements",
    schema={
        "stay_id": pl.String(),
        "time": DATETIME,
        "variable": pl.String(),
        "value": pl.Float64(),
        "unit": pl.String(),
    },
    nullable=frozenset(),
)

TREATMENTS = TableContract(
    name="treatments",
    schema={
        "stay_id": pl.String(),
        "start_time": DATETIME,
        "end_time": DATETIME,
        "treatment": pl.String(),
        "amount": pl.Float64(),
        "amount_unit": pl.String(),
        "rate": pl.Float64(),
        "rate_unit": pl.String(),
    },
    nullable=frozenset({"amount", "amount_unit", "rate", "rate_unit"}),
)

TABLES: dict[str, TableContract] = {t.name: t for t in (STAYS, MEASUREMENTS, TREATMENTS)}
SEX_VALUES = ("F", "M", "U")

# Plausibility bounds used by the validator and the row models (not clinical definitions: those
# live in cohort specs). MIMIC-III shifts ages over 89 to about 300 for de-identification; an
# adapter must map them before validation.
AGE_YEARS_MAX = 130.0
