from datetime import datetime, timedelta
from typing import get_args

import pytest
from pydantic import ValidationError

from clinical_mborl.ehr.rows import ROW_MODELS, StayRow, TreatmentRow, ehr_json_schemas
from clinical_mborl.ehr.tables import TABLES

T0 = datetime(2031, 1, 1)


@pytest.mark.parametrize("table", list(TABLES))
def test_row_model_mirrors_table_contract(table):
    contract = TABLES[table]
    fields = ROW_MODELS[table].model_fields
    assert list(fields) == contract.columns
    for name, info in fields.items():
        optional = type(None) in get_args(info.annotation)
        assert optional == (name in contract.nullable), name
        assert info.description, f"{table}.{name} has no description"


def test_json_schemas_have_units_descriptions_and_required_columns():
    schemas = ehr_json_schemas()
    assert set(schemas) == set(TABLES)
    stays = schemas["stays"]
    assert stays["properties"]["age_years"]["unit"] == "years"
    assert stays["properties"]["weight_kg"]["unit"] == "kg"
    assert stays["properties"]["sex"]["enum"] == ["F", "M", "U"]
    assert stays["additionalProperties"] is False
    for table, schema in schemas.items():
        required = set(schema["required"])
        assert required == set(TABLES[table].columns) - TABLES[table].nullable
        assert all(p.get("description") for p in schema["properties"].values())


def _stay(**overrides):
    row = dict(stay_id="s", patient_id="p", admit_time=T0, discharge_time=T0 + timedelta(hours=1),
               age_years=50.0, sex="F", weight_kg=70.0, died_in_hospital=False, death_time=None)
    return {**row, **overrides}


def test_stay_row_accepts_valid_and_rejects_each_broken_rule():
    assert StayRow(**_stay()).sex == "F"
    broken = [
        _stay(sex="X"),
        _stay(age_years=-1.0),
        _stay(age_years=float("nan")),
        _stay(weight_kg=0.0),
        _stay(discharge_time=T0 - timedelta(hours=1)),
        _stay(died_in_hospital=True),
        _stay(extra_column=1),
    ]
    for row in broken:
        with pytest.raises(ValidationError):
            StayRow(**row)


def test_treatment_row_requires_a_dose_with_its_unit():
    base = dict(stay_id="s", start_time=T0, end_time=T0, treatment="crystalloid")
    assert TreatmentRow(**base, amount=250.0, amount_unit="mL").amount == 250.0
    for bad in ({}, {"amount": 1.0}, {"rate": 0.1}, {"amount": -1.0, "amount_unit": "mL"}):
        with pytest.raises(ValidationError):
            TreatmentRow(**base, **bad)
    with pytest.raises(ValidationError):
        TreatmentRow(**{**base, "end_time": T0 - timedelta(minutes=1)}, rate=0.1, rate_unit="mcg/kg/min")
