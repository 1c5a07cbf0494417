"""`build_cohort` outputs: files, manifest, determinism, atomicity, bad input and the CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from clinical_mborl.cli.app import app
from clinical_mborl.cohort import build as build_module
from clinical_mborl.cohort.build import EHRInput, build_cohort, build_transitions
from clinical_mborl.cohort.features import ChartIndex
from clinical_mborl.cohort.transitions import TransitionSet
from clinical_mborl.core.errors import InputError, ValidationFailed
from tests.cohort.factories import BASE, frames, meas, small_spec, stay, treat, write_tables


def at(hours: float) -> dt.datetime:
    return BASE + dt.timedelta(hours=hours)


def cohort_tables(n: int = 12) -> dict[str, pl.DataFrame]:
    """n adult stays of 3-14 h (a third die), each with MAP, lactate and some doses."""
    stays, rows, doses = [], [], []
    for i in range(n):
        s = stay(i, i * 60 * 24, 180 + 60 * i, died=i % 3 == 0, weight=None if i == 4 else 60.0 + i)
        stays.append(s)
        a = s["admit_time"]
        for h in range(-1, 14, 1):
            rows.append(meas(s["stay_id"], a + dt.timedelta(minutes=60 * h + 10), "map", 60.0 + (i + h) % 25, "mmHg"))
        rows.append(meas(s["stay_id"], a + dt.timedelta(minutes=30), "lactate", 1.0 + i / 4, "mmol/L"))
        doses.append(treat(s["stay_id"], a + dt.timedelta(minutes=20), 0, "crystalloid", 250.0 * (1 + i % 4), "mL"))
        doses.append(treat(s["stay_id"], a + dt.timedelta(minutes=100), 90, "norepinephrine", rate=3.0 + i, rate_unit="ug/min"))
    return frames(stays, rows, doses)


def in_memory(tables: dict[str, pl.DataFrame]) -> EHRInput:
    return EHRInput(tables["stays"], tables["measurements"].lazy(), tables["treatments"].lazy(), {})


def test_outputs_follow_the_contract(tmp_path: Path) -> None:
    tables = cohort_tables()
    manifest = build_cohort(small_spec(), write_tables(tables, tmp_path / "ehr"), tmp_path / "out", progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["manifest.json", "transitions.parquet"]
    ts = TransitionSet.load(tmp_path / "out")
    f = ts.frame
    assert f.columns[:4] == ["stay_id", "patient_key", "step", "split"]
    assert f["action"].dtype == pl.Int64 and f["action"].max() < ts.n_actions
    assert set(manifest.input_files) == {"stays.parquet", "measurements.parquet", "treatments.parquet"}
    assert sum(c.transitions for c in manifest.counts.values()) == f.height
    assert sum(c.deaths for c in manifest.counts.values()) == 4
    assert all(0.0 <= v <= 1.0 for v in manifest.missingness.values())
    train = f.filter(pl.col("split") == "train")
    info = {s.name: s for s in manifest.state_features}
    assert info["map_mmhg"].mean == pytest.approx(train["map_mmhg"].mean())  # fitted on train only
    assert info["lactate_mmol_l"].mean == pytest.approx(np.log1p(train["lactate_mmol_l"].to_numpy()).mean())
    assert info["map_mmhg_missing"].transform == "none"
    batch = ts.split("train").arrays()
    assert batch.states.shape == (train.height, len(ts.feature_names))
    # stay s004 has no weight: its ug/min rate is divided by the train-median weight
    weights = tables["stays"].join(f.filter(pl.col("split") == "train").select("stay_id").unique(), on="stay_id")
    median_w = weights["weight_kg"].drop_nulls().median()
    s4 = f.filter((pl.col("stay_id") == "s004") & (pl.col("pressor_ug_kg_min") > 0))
    assert s4["pressor_ug_kg_min"][0] == pytest.approx(7.0 / median_w)
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["spec_hash"] == small_spec().spec_hash()


def test_same_input_gives_byte_identical_outputs(tmp_path: Path) -> None:
    tables = cohort_tables(40)
    rng = np.random.default_rng(0)  # many overlapping infusions: sums whose order must not vary
    extra = [treat(f"s{i % 40:03d}", at(i % 40 * 24 + rng.uniform(0, 10)), int(rng.integers(1, 300)), "crystalloid",
                   float(rng.uniform(1, 999)), "mL") for i in range(600)]
    tables["treatments"] = pl.concat([tables["treatments"], pl.DataFrame(extra, schema=tables["treatments"].schema)])
    ehr = write_tables(tables, tmp_path / "ehr")
    for name in ("a", "b", "c"):
        build_cohort(small_spec(), ehr, tmp_path / name, progress=False)
    for file in ("transitions.parquet", "manifest.json"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "c" / file).read_bytes()


def test_streaming_validation_builds_the_same_cohort_and_refuses_the_same_bad_input(tmp_path: Path) -> None:
    ehr = write_tables(cohort_tables(), tmp_path / "ehr")
    build_cohort(small_spec(), ehr, tmp_path / "eager", progress=False)
    build_cohort(small_spec(), ehr, tmp_path / "scan", progress=False, streaming_validation=True)
    for file in ("transitions.parquet", "manifest.json"):
        assert (tmp_path / "eager" / file).read_bytes() == (tmp_path / "scan" / file).read_bytes()
    bad = cohort_tables()
    bad["measurements"] = bad["measurements"].with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(float("nan")).otherwise(pl.col("value")).alias("value"))
    ehr_bad = write_tables(bad, tmp_path / "bad")
    errors = []
    for streaming in (False, True):
        with pytest.raises(ValidationFailed) as err:
            build_cohort(small_spec(), ehr_bad, tmp_path / f"never{streaming}", progress=False,
                         streaming_validation=streaming)
        errors.append(str(err.value))
        assert not (tmp_path / f"never{streaming}").exists()
    assert errors[0] == errors[1] and "measurements.value" in errors[1]


def test_failure_leaves_no_partial_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ehr = write_tables(cohort_tables(), tmp_path / "ehr")
    build_cohort(small_spec(), ehr, tmp_path / "out", progress=False)
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(build_module, "atomic_write_text", broken)
    with pytest.raises(OSError):
        build_cohort(small_spec(zero_fill=True), ehr, tmp_path / "out", progress=False)
    with pytest.raises(OSError):
        build_cohort(small_spec(), ehr, tmp_path / "fresh", progress=False)
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before  # old cohort intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ehr", "out"]  # no temp or partial folders


def test_refuses_to_replace_a_folder_that_is_not_a_cohort(tmp_path: Path) -> None:
    ehr = write_tables(cohort_tables(), tmp_path / "ehr")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not a cohort folder"):
        build_cohort(small_spec(), ehr, tmp_path / "mine", progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_unconvertible_units_name_table_column_and_rows_never_values() -> None:
    tables = cohort_tables()
    bad = pl.DataFrame([meas("s001", at(25), "lactate", 123.456, "furlong")], schema=tables["measurements"].schema)
    t = {**tables, "measurements": pl.concat([tables["measurements"], bad])}
    with pytest.raises(ValidationFailed) as err:
        build_transitions(small_spec(), in_memory(t))
    v = err.value.violations[0]
    assert (v.table, v.column, v.reason, v.example_rows) == ("measurements", "unit", "unconvertible_unit",
                                                             (tables["measurements"].height,))
    assert err.value.exit_code == 2 and "123.456" not in str(err.value) and "furlong" not in str(err.value)
    bad_t = pl.DataFrame([treat("s001", at(25), 60, "norepinephrine", rate=0.777, rate_unit="mg/h")],
                         schema=tables["treatments"].schema)
    with pytest.raises(ValidationFailed) as err:
        build_transitions(small_spec(), in_memory({**tables, "treatments": pl.concat([tables["treatments"], bad_t])}))
    v = err.value.violations[0]
    assert (v.table, v.column, v.reason) == ("treatments", "rate_unit", "unconvertible_unit")
    assert "0.777" not in str(err.value)


def test_every_measurement_row_is_used_or_counted_once() -> None:
    tables = cohort_tables()
    extra = [meas("s001", at(26), "map", 400.0, "mmHg"),  # out of range
             meas("s001", at(30), "sodium", 140.0, "mmol/L"),  # not in the spec
             meas("s001", at(24 + 40), "map", 70.0, "mmHg"),  # after the stay
             meas("nobody", at(25), "map", 70.0, "mmHg")]  # unknown stay
    m = pl.concat([tables["measurements"], pl.DataFrame(extra, schema=tables["measurements"].schema),
                   tables["measurements"].filter(pl.col("stay_id") == "s001").head(3)])  # 3 exact duplicates
    spec = small_spec(criteria={"min_age_years": 18.0, "max_age_years": 100.0, "min_stay_hours": 4.0})
    _, manifest = build_transitions(spec, in_memory({**tables, "measurements": m}))
    dropped = {d.reason: d.count for d in manifest.dropped_rows if d.table == "measurements"}
    assert dropped["variable_not_in_spec"] == 1 and dropped["unknown_stay"] == 1
    assert dropped["exact_duplicate"] == 3 and dropped["out_of_valid_range:map_mmhg"] == 1
    assert dropped["excluded_stay"] == 16  # s000 is 3 h long: its 15 MAP rows and lactate
    windows = build_module.stay_windows(build_module.TimeGrid.from_spec(spec.time), tables["stays"])
    rows = build_module.scan_spec_measurements(spec, m.lazy(), windows.select("stay_id", "stay_idx", "lb_us", "stay_end_us"))
    excluded = (windows["stay_id"] == "s000").to_numpy()
    counted, usable = build_module.count_dropped(spec, rows, m.height, excluded)
    chart = ChartIndex.build(usable, windows["lb_us"].to_numpy(), len(spec.features))
    assert sum(c for _, _, c in counted) + chart.n_duplicates + chart.keys.size == m.height


def test_duplicates_error_policy() -> None:
    tables = cohort_tables()
    t = {**tables, "measurements": pl.concat([tables["measurements"], tables["measurements"].head(1)])}
    with pytest.raises(InputError, match="duplicates: error"):
        build_transitions(small_spec(duplicates="error"), in_memory(t))
    build_transitions(small_spec(duplicates="error"), in_memory(tables))


def test_quantile_bins_are_fitted_on_the_train_split_only() -> None:
    spec = small_spec(actions=[{"name": "fluid_ml", "treatments": {"crystalloid": 1.0}, "aggregation": "amount_sum",
                                "unit": "mL", "binning": "quantile", "n_levels": 4}])
    tables = cohort_tables(30)
    frame, manifest = build_transitions(spec, in_memory(tables))
    train = frame.filter(pl.col("split") == "train")["fluid_ml"].to_numpy()
    dim = manifest.action_space.dimensions[0]
    assert dim.bin_edges == pytest.approx(np.quantile(train[train > 0], [1 / 3, 2 / 3]).tolist())
    held_out = frame.filter(pl.col("split") != "train")["stay_id"].unique()
    bigger = tables["treatments"].with_columns(
        pl.when(pl.col("stay_id").is_in(held_out.implode())).then(pl.col("amount") * 7).otherwise(pl.col("amount"))
        .alias("amount"))
    _, again = build_transitions(spec, in_memory({**tables, "treatments": bigger}))
    assert again.action_space.dimensions[0].bin_edges == dim.bin_edges
    assert again.action_space.dimensions[0].dose_max == dim.dose_max  # also train only
    level0 = frame.filter(pl.col("fluid_ml") == 0)["action"]
    assert (level0 == 0).all() and (frame.filter(pl.col("fluid_ml") > 0)["action"] > 0).all()


def test_continuous_spec_keeps_doses_and_has_no_action_index() -> None:
    actions = [{"name": "fluid_ml", "treatments": {"crystalloid": 1.0}, "aggregation": "amount_sum",
                "unit": "mL", "binning": "continuous"}]
    frame, manifest = build_transitions(small_spec(actions=actions), in_memory(cohort_tables()))
    assert "action" not in frame.columns and manifest.action_space.kind == "continuous"
    assert manifest.action_space.dimensions[0].n_levels is None
    assert sorted(frame.filter(pl.col("fluid_ml") > 0)["fluid_ml"].unique().to_list())[:2] == [250.0, 500.0]


def test_cli_build_exit_codes(tmp_path: Path) -> None:
    ehr = write_tables(cohort_tables(), tmp_path / "ehr")
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(json.dumps(small_spec().model_dump(mode="json")))  # JSON is YAML
    runner = CliRunner()
    ok = runner.invoke(app, ["--quiet", "cohort", "build", str(spec_file), "--ehr", str(ehr), "--out", str(tmp_path / "o")])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "o" / "transitions.parquet").is_file()
    bad = cohort_tables()
    bad["measurements"] = bad["measurements"].with_columns(
        pl.when(pl.col("variable") == "lactate").then(pl.lit("g/L")).otherwise(pl.col("unit")).alias("unit"))
    write_tables(bad, tmp_path / "bad")
    res = runner.invoke(app, ["--quiet", "cohort", "build", str(spec_file), "--ehr", str(tmp_path / "bad"),
                              "--out", str(tmp_path / "o2")])
    assert res.exit_code == 2
    assert "measurements.unit" in res.output and "unconvertible_unit" in res.output and "g/L" not in res.output
    assert not (tmp_path / "o2").exists()
