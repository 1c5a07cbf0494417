"""The simulated tables follow the canonical contract and hold what real extracts hold."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from clinical_mborl.ehr.tables import TABLES
from clinical_mborl.ehr.validate import validate_folder

EXPECTED_UNITS = {
    "map": {"mmHg"}, "heart_rate": {"bpm"}, "spo2": {"%"}, "resp_rate": {"/min"}, "temperature": {"degC", "degF"},
    "gcs": {"points"}, "urine_output": {"mL"}, "lactate": {"mmol/L", "mg/dL"}, "creatinine": {"mg/dL", "umol/L"},
    "bilirubin": {"mg/dL"}, "platelets": {"10^9/L"}, "wbc": {"10^9/L"},
}


def test_schemas_match_the_contract(ehr_tables: dict[str, pl.DataFrame]) -> None:
    for name, frame in ehr_tables.items():
        assert frame.schema == pl.Schema(TABLES[name].schema), name


def test_validator_accepts_the_folder(ehr_dir: Path) -> None:
    report = validate_folder(ehr_dir)
    assert report.ok, report.describe()


def test_variables_units_and_duplicates(ehr_tables: dict[str, pl.DataFrame]) -> None:
    m = ehr_tables["measurements"]
    units = {v: set(g["unit"].to_list()) for (v,), g in m.group_by("variable")}
    assert units == EXPECTED_UNITS
    share = m.is_duplicated().sum() / 2 / m.height
    assert 0.002 < share < 0.01
    assert m.filter(pl.col("variable") == "temperature")["unit"].value_counts().height == 2


def test_treatments_boluses_infusions_and_units(ehr_tables: dict[str, pl.DataFrame]) -> None:
    t = ehr_tables["treatments"]
    bolus = t.filter(pl.col("amount").is_not_null())
    assert (bolus["start_time"] == bolus["end_time"]).all() and set(bolus["amount_unit"]) == {"mL"}
    infusion = t.filter(pl.col("rate").is_not_null())
    assert (infusion["end_time"] > infusion["start_time"]).all()
    assert infusion["amount"].null_count() == infusion.height
    rate_units = {(a, u) for a, u in infusion.select("treatment", "rate_unit").unique().iter_rows()}
    assert {("crystalloid", "mL/h"), ("norepinephrine", "ug/kg/min"), ("norepinephrine", "ug/min")} <= rate_units
    assert (t["amount"].fill_null(0) >= 0).all() and (t["rate"].fill_null(0) >= 0).all()


def test_times_are_consistent_with_the_stay(ehr_tables: dict[str, pl.DataFrame]) -> None:
    s = ehr_tables["stays"]
    assert ((s["death_time"].is_not_null()) == s["died_in_hospital"]).all()
    assert (s["discharge_time"] >= s["admit_time"]).all()
    died = s.filter(pl.col("died_in_hospital"))
    assert (died["death_time"] >= died["discharge_time"]).all()
    window = s.select("stay_id", "admit_time", "discharge_time")
    m = ehr_tables["measurements"].join(window, on="stay_id")
    assert (m["time"] < m["discharge_time"]).all()
    assert m.select((pl.col("time") >= pl.col("admit_time") - pl.duration(hours=3)).all()).item()
    t = ehr_tables["treatments"].join(window, on="stay_id")
    assert ((t["start_time"] >= t["admit_time"]) & (t["end_time"] <= t["discharge_time"])).all()
    assert s["weight_kg"].null_count() < s.height * 0.2
