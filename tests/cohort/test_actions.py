"""Doses per step: pro-rating, boluses on step boundaries, rates, per-kg and equivalence factors."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from clinical_mborl.cohort.actions import spec_treatment_rows, step_doses
from clinical_mborl.cohort.build import EHRInput, build_transitions
from clinical_mborl.core.errors import ValidationFailed
from tests.cohort.factories import BASE, frames, meas, small_spec, stay, treat
from tests.cohort.oracles import us


def at(hours: float) -> dt.datetime:
    return BASE + dt.timedelta(hours=hours)


def doses(treatments: list[dict], los_hours: float = 9.0, weight: float | None = 50.0, **spec_kw: object):
    """Build one 9 h stay (steps at 0, 2, 4, 6, 8 h; the last is 1 h long) and return its frame."""
    t = frames([stay(0, 0, int(los_hours * 60), weight=weight)], [meas("s000", at(0.5), "map", 70.0, "mmHg")],
               treatments)
    frame, manifest = build_transitions(small_spec(zero_fill=True, **spec_kw),
                                        EHRInput(t["stays"], t["measurements"].lazy(), t["treatments"].lazy(), {}))
    return frame, manifest


def test_infusion_amount_is_pro_rated_over_the_steps_it_overlaps() -> None:
    frame, _ = doses([treat("s000", at(1.0), 240, "crystalloid", 1200.0, "mL")])  # 1..5 h
    assert frame["fluid_ml"].to_list() == pytest.approx([300.0, 600.0, 300.0, 0.0, 0.0])


def test_rate_only_infusion_and_litres_and_colloid_factor() -> None:
    frame, _ = doses([treat("s000", at(7.0), 180, "crystalloid", rate=100.0, rate_unit="mL/h"),  # 7..10 h
                      treat("s000", at(0.0), 0, "crystalloid", 0.5, "L"),
                      treat("s000", at(2.5), 0, "colloid", 200.0, "mL")])
    # the stay ends at 9 h: the last step [8, 9) gets one hour of the rate, nothing after the stay
    assert frame["fluid_ml"].to_list() == pytest.approx([500.0, 300.0, 0.0, 100.0, 100.0])


def test_bolus_on_a_decision_time_belongs_to_the_step_it_starts() -> None:
    frame, _ = doses([treat("s000", at(2.0), 0, "crystalloid", 250.0, "mL"),
                      treat("s000", at(2.0) - dt.timedelta(microseconds=1), 0, "crystalloid", 100.0, "mL")])
    assert frame["fluid_ml"].to_list()[:3] == [100.0, 250.0, 0.0]


def test_a_steps_dose_is_bit_identical_whatever_other_rows_exist() -> None:
    # hypothesis found it: 250 mL over 3 h 34 min in a 3 h 18 min stay; step 1 got 250 * 78/214 by a
    # reciprocal multiply (polars divides by a constant column that way) unless another row was there
    spread = treat("s000", at(0.0), 214, "crystalloid", 250.0, "mL")
    alone, _ = doses([spread], los_hours=3.3)
    beside, _ = doses([spread, treat("s000", at(1.0), 0, "crystalloid", 1999.0, "mL")], los_hours=3.3)
    assert alone["fluid_ml"][1] == beside["fluid_ml"][1] == 250.0 * 78 / 214
    assert beside["fluid_ml"][0] - alone["fluid_ml"][0] == pytest.approx(1999.0)


def test_max_rate_with_per_kg_units_and_equivalence() -> None:
    frame, manifest = doses([treat("s000", at(0.5), 60, "norepinephrine", rate=10.0, rate_unit="ug/min"),  # /50 kg
                             treat("s000", at(1.0), 30, "norepinephrine", rate=0.05, rate_unit="ug/kg/min"),
                             treat("s000", at(3.0), 120, "vasopressin", rate=0.04, rate_unit="units/min"),
                             treat("s000", at(6.0), 0, "norepinephrine", rate=1.0, rate_unit="ug/kg/min")])
    # step 0: max(10 ug/min / 50 kg, 0.05); steps 1-2: vasopressin 0.04 U/min x 2.5
    assert frame["pressor_ug_kg_min"].to_list() == pytest.approx([0.2, 0.1, 0.1, 0.0, 0.0])
    # joint = fluid level (4 levels) * 3 + pressor level (edge 0.1: 0.2 -> 2, 0.1 -> 1)
    assert frame["action"].to_list()[:2] == [0 * 3 + 2, 0 * 3 + 1]
    dropped = {d.reason: d.count for d in manifest.dropped_rows if d.table == "treatments"}
    assert dropped["no_usable_dose"] == 1  # a rate without duration gives no dose


def test_rows_outside_the_stay_or_not_in_the_spec_are_counted() -> None:
    _, manifest = doses([treat("s000", at(-3.0), 60, "crystalloid", 100.0, "mL"),
                         treat("s000", at(9.0), 0, "crystalloid", 100.0, "mL"),
                         treat("s000", at(1.0), 60, "insulin", rate=2.0, rate_unit="units/h"),
                         treat("s000", at(1.0), 0, "crystalloid", 100.0, "mL"),
                         treat("s000", at(1.0), 0, "crystalloid", 100.0, "mL")])
    dropped = {d.reason: d.count for d in manifest.dropped_rows if d.table == "treatments"}
    assert dropped == {"treatment_not_in_spec": 1, "unknown_stay": 0, "excluded_stay": 0,
                       "exact_duplicate": 1, "no_usable_dose": 0, "outside_window": 2}


def test_dose_above_max_dose_is_an_input_error_naming_rows() -> None:
    actions = [{"name": "fluid_ml", "treatments": {"crystalloid": 1.0}, "aggregation": "amount_sum",
                "unit": "mL", "binning": "continuous", "max_dose": 5000.0}]
    with pytest.raises(ValidationFailed) as err:
        doses([treat("s000", at(1.0), 0, "crystalloid", 250.0, "mL"),
               treat("s000", at(1.0), 0, "crystalloid", 9999.0, "mL")], actions=actions)
    v = err.value.violations[0]
    assert (v.table, v.reason, v.example_rows) == ("treatments", "dose_above_max", (0, 1))  # rows of the step
    assert "9999" not in str(err.value)


def test_terminal_and_truncation_flags_and_rewards() -> None:
    died, _ = doses([], los_hours=9.0)
    assert died["done"].to_list() == [False] * 4 + [True] and not died["truncated"].any()
    long, _ = doses([], los_hours=30.0)
    assert long.height == 5 and long["truncated"].to_list() == [False] * 4 + [True] and not long["done"].any()
    assert long["reward"][-1] == 1.0 + long["reward_intermediate"][-1]
    no_outcome, _ = doses([], los_hours=30.0, reward={"outcome_on_truncation": False})
    assert no_outcome["reward"].to_list() == pytest.approx(no_outcome["reward_intermediate"].to_list())
    frame = pl.concat([died, long])
    assert (frame["reward"] - frame["reward_intermediate"]).filter(~(frame["done"] | frame["truncated"])).abs().max() == 0


def test_dose_sums_do_not_depend_on_the_order_rows_arrive_in() -> None:
    # Joins may hand rows over in any order (multi-threaded); float sums must not notice.
    rng = np.random.default_rng(1)
    many = [treat("s000", at(float(rng.uniform(0, 8))), int(rng.integers(1, 200)), "crystalloid",
                  float(rng.uniform(0.1, 999.9)), "mL") for _ in range(400)]
    spec = small_spec(zero_fill=True)
    t = frames([stay(0, 0, 9 * 60)], [meas("s000", at(0.5), "map", 70.0, "mmHg")], many)
    rows = spec_treatment_rows(spec, t["treatments"]).with_columns(
        stay_idx=pl.lit(0, dtype=pl.Int64), t0_us=pl.lit(us(at(0))), stay_end_us=pl.lit(us(at(9))),
        weight=pl.lit(80.0))
    windows = pl.DataFrame({"stay_idx": [0], "n_steps": [5]})
    reference = step_doses(spec, rows, windows)
    for seed in range(5):
        shuffled = rows.sample(fraction=1.0, shuffle=True, seed=seed)
        assert step_doses(spec, shuffled, windows).equals(reference)


def test_action_timing_counts_orders_charted_an_hour_or_more_into_their_step() -> None:
    # 2-hour steps: 0.5 h and 4.0 h are in their step's first hour; 1.0 h, 3.5 h and 7.9 h are not;
    # the infusion started before the window (at -1 h) counts from the window start (0 h: early)
    _, manifest = doses([treat("s000", at(0.5), 0, "crystalloid", 100.0, "mL"),
                         treat("s000", at(1.0), 0, "crystalloid", 100.0, "mL"),
                         treat("s000", at(3.5), 0, "crystalloid", 100.0, "mL"),
                         treat("s000", at(4.0), 0, "crystalloid", 100.0, "mL"),
                         treat("s000", at(7.9), 0, "crystalloid", 100.0, "mL"),
                         treat("s000", at(-1.0), 120, "crystalloid", rate=50.0, rate_unit="mL/h"),
                         treat("s000", at(20.0), 0, "crystalloid", 100.0, "mL")])  # after the stay: not counted
    timing = {t.dimension: (t.orders, t.share_after_first_hour) for t in manifest.action_timing}
    assert timing["fluid_ml"] == (6, pytest.approx(3 / 6))
    assert [t.dimension for t in manifest.action_timing] == [a.name for a in manifest.spec.actions]
    assert all(t.orders == 0 and t.share_after_first_hour == 0.0 for t in manifest.action_timing[1:])
