"""Cohort spec files and the strict YAML loader."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from clinical_mborl.cohort.build import EHRInput, build_transitions
from clinical_mborl.cohort.spec import load_cohort_spec, parse_cohort_spec
from clinical_mborl.core.errors import InputError
from tests.cohort.factories import frames, meas, stay, treat

ROOT = Path(__file__).parents[2]
COHORTS = sorted((ROOT / "cohorts").glob("*.yaml"))
MINIMAL = """
name: x
description: y
features: [{name: map_mmhg, source: map, unit: mmHg, valid_range: [10, 250]}]
actions: [{name: fluid_ml, treatments: {crystalloid: 1.0}, aggregation: amount_sum, unit: mL}]
"""


def test_the_two_sepsis_specs_exist() -> None:
    assert {p.stem for p in COHORTS} >= {"sepsis_fluids_vasopressors", "sepsis_continuous"}


@pytest.mark.parametrize("path", COHORTS, ids=lambda p: p.stem)
def test_every_cohort_yaml_loads_and_documents_itself(path: Path) -> None:
    spec = load_cohort_spec(path)
    assert spec.name == path.stem
    assert path.read_text().startswith("#")  # opens with the clinical definition as comments
    assert spec.description and spec.sources and spec.assumptions
    assert any("Komorowski" in s for s in spec.sources) and any("Sepsis-3" in s for s in spec.sources)


def test_sepsis_specs_share_the_cohort_and_differ_in_the_action_space() -> None:
    a = load_cohort_spec(ROOT / "cohorts/sepsis_fluids_vasopressors.yaml")
    b = load_cohort_spec(ROOT / "cohorts/sepsis_continuous.yaml")
    assert a.features == b.features and a.criteria == b.criteria and a.split == b.split and a.reward == b.reward
    assert (a.time.step_hours, a.time.window_start_hours, a.time.window_end_hours, a.gamma) == (4.0, 0.0, 72.0, 0.99)
    assert a.action_kind == "discrete" and b.action_kind == "continuous"
    assert [d.levels for d in a.actions] == [5, 5]
    assert a.actions[1].treatments == {"norepinephrine": 1.0, "epinephrine": 1.0, "vasopressin": 2.5,
                                       "phenylephrine": 0.1, "dopamine": 0.01}
    lactate = next(f for f in a.features if f.source == "lactate")
    assert lactate.conversions["mg/dL"].factor == 0.111


def test_unknown_and_duplicate_keys_are_errors() -> None:
    parse_cohort_spec(MINIMAL)
    with pytest.raises(InputError, match="gamma_typo"):
        parse_cohort_spec(MINIMAL + "gamma_typo: 0.9\n")
    with pytest.raises(InputError, match="duplicate key 'name'"):
        parse_cohort_spec(MINIMAL + "name: again\n")
    with pytest.raises(InputError, match="duplicate key"):
        parse_cohort_spec(MINIMAL.replace("unit: mmHg,", "unit: mmHg, unit: kPa,"))


def test_a_variable_or_treatment_feeds_one_column_only() -> None:
    two = MINIMAL.replace("valid_range: [10, 250]}]", "valid_range: [10, 250]}, "
                          "{name: map2, source: map, unit: mmHg, valid_range: [10, 250]}]")
    with pytest.raises(InputError, match="feed more than one feature"):
        parse_cohort_spec(two)
    shared = MINIMAL.replace("aggregation: amount_sum, unit: mL}]", "aggregation: amount_sum, unit: mL}, "
                             "{name: more_ml, treatments: {crystalloid: 1.0}, aggregation: amount_sum, unit: mL}]")
    with pytest.raises(InputError, match="feed more than one action dimension"):
        parse_cohort_spec(shared)


@pytest.mark.parametrize("name", ["sepsis_fluids_vasopressors", "sepsis_continuous"])
def test_sepsis_specs_build_on_every_variable_and_unit_they_name(name: str) -> None:
    spec = load_cohort_spec(ROOT / f"cohorts/{name}.yaml")
    charted = {"map": (70, "mmHg"), "heart_rate": (90, "bpm"), "spo2": (96, "%"), "resp_rate": (20, "/min"),
               "temperature": (99.1, "degF"), "lactate": (27.0, "mg/dL"), "creatinine": (130, "umol/L"),
               "bilirubin": (1.1, "mg/dL"), "platelets": (150, "10^9/L"), "wbc": (11, "10^9/L"),
               "gcs": (13, "points"), "urine_output": (120, "mL")}
    stays, rows, doses = [], [], []
    for i in range(12):
        s = stay(i, 0, 30 * 60, died=i % 4 == 0, age=70.0)
        stays.append(s)
        for h in range(0, 30, 3):
            t = s["admit_time"] + dt.timedelta(hours=h, minutes=30)
            rows += [meas(s["stay_id"], t, v, float(x), u) for v, (x, u) in charted.items()]
        t0 = s["admit_time"] + dt.timedelta(hours=1)
        doses += [treat(s["stay_id"], t0, 0, "crystalloid", 0.5 + i / 10, "L"),
                  treat(s["stay_id"], t0, 120, "colloid", 100.0 + i, "mL"),
                  treat(s["stay_id"], t0, 600, "crystalloid", rate=100.0 + i, rate_unit="mL/h"),
                  treat(s["stay_id"], t0, 300, ("norepinephrine", "epinephrine", "phenylephrine", "dopamine")[i % 4],
                        rate=0.1 + i / 100, rate_unit="ug/kg/min"),
                  treat(s["stay_id"], t0, 60, "norepinephrine", rate=8.0, rate_unit="ug/min"),
                  treat(s["stay_id"], t0, 240, "vasopressin", rate=0.04, rate_unit="units/min")]
    t = frames(stays, rows, doses)
    frame, manifest = build_transitions(spec, EHRInput(t["stays"], t["measurements"].lazy(), t["treatments"].lazy(), {}))
    assert frame.height == 12 * 8  # 30 h stays: steps at 0, 4, ..., 28 h
    first = frame.filter(pl.col("step") == 1).row(0, named=True)
    assert first["lactate_mmol_l"] == pytest.approx(2.997) and first["temperature_degc"] == pytest.approx(37.2777, abs=1e-3)
    assert first["creatinine_mg_dl"] == pytest.approx(130 / 88.4)
    if spec.action_kind == "discrete":
        assert manifest.action_space.n_actions == 25 and frame["action"].n_unique() > 1
    else:
        assert "action" not in frame.columns and frame["norepinephrine_eq_ug_kg_min"].max() > 0
    assert not any(d.count for d in manifest.dropped_rows if d.reason.startswith("out_of_valid_range"))
