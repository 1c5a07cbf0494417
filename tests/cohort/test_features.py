"""State featurisation: the temporal rule, aggregation, carry-forward, units and valid ranges."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinical_mborl.cohort.features import ChartIndex, compute_states, state_names
from clinical_mborl.core.errors import InputError, ValidationFailed
from tests.cohort.factories import BASE, ehr_tables, frames, meas, small_spec, stay
from tests.cohort.oracles import oracle_state, us, valid_rows

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def at(hours: float) -> dt.datetime:
    return BASE + dt.timedelta(hours=hours)


def decisions(hours: list[float], stay_id: str = "s000") -> pl.DataFrame:
    return pl.DataFrame({"stay_id": [stay_id] * len(hours), "decision_time": [at(h) for h in hours]})


def one_stay_states(rows: list[dict], hours: list[float], **stay_kw: object) -> pl.DataFrame:
    t = frames([stay(0, 0, 20 * 60, **stay_kw)], rows, [])
    return compute_states(small_spec(), t["stays"], t["measurements"], decisions(hours))


def test_state_uses_only_data_charted_strictly_before_the_decision() -> None:
    # step 2 h, MAP mean over [d - 2 h, d), carried at most 3 h.
    rows = [meas("s000", at(0.5), "map", 60.0, "mmHg"), meas("s000", at(1.99), "abp_mean", 70.0, "mmHg"),
            meas("s000", at(2.0), "map", 100.0, "mmHg"), meas("s000", at(5.0), "map", 80.0, "mmHg")]
    states = one_stay_states(rows, [0, 2, 4, 6, 8, 10])
    # at 2 h: 60 and 70 (the value charted at exactly 2 h is not seen); at 8 h: carried 3 h; at 10 h: 5 h old.
    assert states["map_mmhg"].to_list() == [None, 65.0, 100.0, 80.0, 80.0, None]
    assert states["map_mmhg_missing"].to_list() == [1.0, 0.0, 0.0, 0.0, 0.0, 1.0]


def test_carry_forward_limit_is_inclusive_and_older_is_missing() -> None:
    t = frames([stay(0, 0, 20 * 60)], [meas("s000", at(1.0), "lactate", 2.0, "mmol/L")], [])  # carry <= 5 h
    times = [at(1.0), at(1.5), at(6.0), at(6.0) + dt.timedelta(microseconds=1), at(7.0)]
    dec = pl.DataFrame({"stay_id": ["s000"] * len(times), "decision_time": times})
    states = compute_states(small_spec(), t["stays"], t["measurements"], dec)
    assert states["lactate_mmol_l"].to_list() == [None, 2.0, 2.0, None, None]


def test_carried_window_is_aggregated_as_a_whole() -> None:
    # Heart-rate max, carried at most 2.5 h. Windows are counted back from each decision time.
    rows = [meas("s000", at(0.2), "heart_rate", 130.0, "bpm"), meas("s000", at(1.5), "heart_rate", 100.0, "bpm"),
            meas("s000", at(0.7), "heart_rate", 90.0, "bpm")]
    states = one_stay_states(rows, [2.0, 3.0, 4.0, 4.2])
    # 2.0: [0, 2) -> 130; 3.0: [1, 3) -> 100; 4.0: latest value 2.5 h old, its window [0, 2) -> 130;
    # 4.2: latest value 2.7 h old -> missing.
    assert states["hr_max_bpm"].to_list() == [130.0, 100.0, 130.0, None]


def test_sum_count_min_and_last_with_ties() -> None:
    rows = [meas("s000", at(0.5), "urine", 50.0, "mL"), meas("s000", at(1.0), "urine", 70.0, "mL"),
            meas("s000", at(1.0), "temperature", 99.5, "degF"), meas("s000", at(1.5), "temperature", 37.0, "degC"),
            meas("s000", at(0.5), "gcs", 15.0, "points"), meas("s000", at(1.9), "gcs", 9.0, "points"),
            meas("s000", at(1.0), "lactate", 2.0, "mmol/L"), meas("s000", at(1.0), "lactate", 4.5, "mmol/L")]
    s = one_stay_states(rows, [2.0, 4.0]).row(0, named=True)
    assert s["urine_ml"] == 120.0 and s["temp_count"] == 2.0 and s["gcs_points"] == 9.0
    assert s["lactate_mmol_l"] == 4.5  # ties at one time: the larger value is the last


def test_unit_conversion_to_the_spec_unit() -> None:
    rows = [meas("s000", at(1.0), "lactate", 18.0, "mg/dL"), meas("s000", at(3.0), "temperature", 98.6, "degF")]
    states = one_stay_states(rows, [2.0])
    assert states["lactate_mmol_l"][0] == pytest.approx(1.998)
    t = frames([stay(0, 0, 20 * 60)], rows, [])
    spec = small_spec(features=[{"name": "temp_c", "source": "temperature", "unit": "degC",
                                 "conversions": {"degF": {"factor": 5 / 9, "offset": -160 / 9}},
                                 "valid_range": [25, 45]}], criteria={}, reward={})
    out = compute_states(spec, t["stays"], t["measurements"], decisions([4.0]))
    assert out["temp_c"][0] == pytest.approx(37.0)


def test_out_of_range_values_are_not_used() -> None:
    rows = [meas("s000", at(1.0), "map", 5.0, "mmHg"), meas("s000", at(1.5), "map", 300.0, "mmHg")]
    assert one_stay_states(rows, [2.0])["map_mmhg"].to_list() == [None]


def test_lookback_bounds_the_data_before_the_window() -> None:
    rows = [meas("s000", at(-4.5), "lactate", 3.0, "mmol/L"), meas("s000", at(-3.5), "gcs", 9.0, "points")]
    s = one_stay_states(rows, [0.0]).row(0, named=True)
    assert s["lactate_mmol_l"] is None  # charted before the 4 h lookback
    assert s["gcs_points"] == 9.0  # 3.5 h old, carried (limit 4 h)


def test_static_features_and_fill_values() -> None:
    t = frames([stay(0, 0, 600, sex="U", weight=None, age=70.0)], [], [])
    spec = small_spec()
    raw = compute_states(spec, t["stays"], t["measurements"], decisions([2.0]))
    assert raw.select("age_years", "sex_female", "weight_kg", "weight_kg_missing").row(0) == (70.0, None, None, 1.0)
    fills = {n: 1.0 for n in ["map_mmhg", "lactate_mmol_l", "urine_ml", "gcs_points", "hr_max_bpm",
                              "temp_count", "age_years", "sex_female", "weight_kg"]}
    filled = compute_states(spec, t["stays"], t["measurements"], decisions([2.0]), fill_values=fills)
    assert filled["weight_kg"][0] == 1.0 and filled["map_mmhg_missing"][0] == 1.0
    assert filled.columns == ["stay_id", "decision_time", *state_names(spec)]
    with pytest.raises(InputError, match="fill values missing"):
        compute_states(spec, t["stays"], t["measurements"], decisions([2.0]), fill_values={"map_mmhg": 1.0})


def test_unknown_stay_and_unconvertible_unit_are_input_errors() -> None:
    t = frames([stay(0, 0, 600)], [meas("s000", at(1), "lactate", 123.456, "furlong")], [])
    with pytest.raises(InputError, match="not in stays"):
        compute_states(small_spec(), t["stays"], t["measurements"], decisions([2.0], stay_id="nope"))
    with pytest.raises(ValidationFailed) as err:
        compute_states(small_spec(), t["stays"], t["measurements"], decisions([2.0]))
    assert err.value.reasons == {"unconvertible_unit"} and "123.456" not in str(err.value)


@SETTINGS
@given(tables=ehr_tables(), data=st.data())
def test_compute_states_matches_the_row_by_row_oracle(tables: dict[str, pl.DataFrame], data: st.DataObject) -> None:
    spec = small_spec()
    ids = tables["stays"]["stay_id"].to_list()
    n = data.draw(st.integers(1, 12))
    picks = [(data.draw(st.sampled_from(ids)), data.draw(st.integers(-300, 1000))) for _ in range(n)]
    admit = dict(zip(ids, tables["stays"]["admit_time"].to_list(), strict=True))
    dec = pl.DataFrame({"stay_id": [s for s, _ in picks],
                        "decision_time": [admit[s] + dt.timedelta(minutes=m) for s, m in picks]})
    got = compute_states(spec, tables["stays"], tables["measurements"], dec)
    rows = valid_rows(spec, tables)
    names = [f.name for f in spec.features]
    for r, (stay_id, d) in zip(got.iter_rows(named=True), dec.iter_rows(), strict=True):
        want = oracle_state(spec, rows, stay_id, us(d))
        for name, w in zip(names, want, strict=True):
            assert (r[name] is None) == (w is None), (name, r[name], w)
            if w is not None:
                assert r[name] == pytest.approx(w, rel=1e-12, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(times=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1), st.integers(0, 50)), min_size=1, max_size=30),
       queries=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1), st.integers(-5, 60)), min_size=1, max_size=20),
       huge=st.booleans())
def test_chart_index_counts_rows_strictly_before_a_time_in_both_encodings(
    times: list[tuple[int, int, int]], queries: list[tuple[int, int, int]], huge: bool
) -> None:
    scale = 2**57 if huge else 1  # huge time ranges switch the keys to time ranks
    rows = pl.DataFrame({"stay_idx": [s for s, _, _ in times], "feat": [f for _, f, _ in times],
                         "conv_id": [0] * len(times), "time_us": [t * scale for _, _, t in times],
                         "value": [float(t % 3) for _, _, t in times]})
    chart = ChartIndex.build(rows, np.zeros(2, dtype=np.int64), n_feat=2)
    assert (chart.distinct_times is not None) == (4 * (max(t for *_, t in times) * scale + 2) >= 2**62)
    unique = sorted({(s, f, t, t % 3) for s, f, t in times})
    assert chart.n_duplicates == len(times) - len(unique)
    assert chart.time_at(np.arange(len(unique))).tolist() == [r[2] * scale for r in unique]
    assert chart.values.tolist() == [float(r[3]) for r in unique] + [0.0]  # + the sentinel
    for s, f, t in queries:
        got = chart.query(np.array([s]), np.array([f]), np.array([t * scale]))[0]
        assert got == sum(1 for r in unique if (r[0], r[1]) < (s, f) or ((r[0], r[1]) == (s, f) and r[2] < t))
