"""Per-episode discounted returns of simulated tables, computed with the cohort's own code.

Stay windows and the decision grid (`cohort.timegrid`), inclusion criteria (`cohort.criteria`),
states (`cohort.features.compute_states`, filled with the manifest's fill values; needed only
for intermediate reward terms) and terminal flags and rewards (`cohort.rewards.add_rewards`) are
the functions `cohort build` uses; the split, dose levels and normalisation do not enter the
return. The return of a stay is sum_t gamma^t reward_t over its steps (the outcome reward sits
at its last step).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from clinical_mborl.cohort.criteria import apply_criteria
from clinical_mborl.cohort.features import charted_state_names, compute_states
from clinical_mborl.cohort.measurements import scan_spec_measurements
from clinical_mborl.cohort.rewards import add_rewards
from clinical_mborl.cohort.spec import CohortSpec
from clinical_mborl.cohort.timegrid import TimeGrid, grid_decisions, stay_windows
from clinical_mborl.cohort.transitions import NEXT_PREFIX


def episode_returns(spec: CohortSpec, tables: Mapping[str, pl.DataFrame], fill_values: Mapping[str, float],
                    count_short_stays: bool = True) -> pl.DataFrame:
    """`stay_id`, `n_steps`, `died_in_hospital`, `return` for every stay the spec's criteria include.

    `fill_values` only matter for intermediate reward terms (missing states are filled with them).
    With `count_short_stays` (ground truth), `criteria.min_stay_hours` is not applied: it depends
    on the outcome (early deaths), so a policy could otherwise hide the deaths it causes in the
    first hours; such a stay has one step whose reward is the outcome.
    """
    if count_short_stays:
        spec = spec.model_copy(update={"criteria": spec.criteria.model_copy(update={"min_stay_hours": 0.0})})
    grid = TimeGrid.from_spec(spec.time)
    stays = tables["stays"]
    windows = stay_windows(grid, stays)
    rows = scan_spec_measurements(spec, tables["measurements"],
                                  windows.select("stay_id", "stay_idx", "lb_us", "stay_end_us"), streaming=False)
    usable = rows.filter(pl.col("stay_idx").is_not_null() & pl.col("in_time") & pl.col("in_range"))
    windows, _ = apply_criteria(spec, windows, usable.select("stay_idx", "feat").unique())
    included = windows.filter(pl.col("excluded_by").is_null())
    decisions = grid_decisions(grid, included)
    per_row = decisions.join(included.select("stay_idx", "stay_id", "n_steps", "ends_in_window", "died_in_hospital"),
                             on="stay_idx", how="left", maintain_order="left")
    if spec.reward.intermediate:
        times = per_row.select("stay_id", pl.from_epoch(pl.col("decision_us"), time_unit="us").alias("decision_time"))
        states = compute_states(spec, stays, tables["measurements"], times, fill_values).select(charted_state_names(spec))
        nxt = states.select(pl.all().shift(-1).name.prefix(NEXT_PREFIX))
        per_row = pl.concat([per_row, states, nxt], how="horizontal")
    frame = add_rewards(spec, per_row.filter(pl.col("step") < pl.col("n_steps")))
    discount = np.power(spec.gamma, frame["step"].to_numpy().astype(np.float64))
    return (
        frame.with_columns((pl.col("reward") * pl.Series(discount)).alias("discounted"))
        .group_by("stay_id", maintain_order=True)
        .agg(pl.col("n_steps").first(), pl.col("died_in_hospital").first(), pl.col("discounted").sum().alias("return"))
        .sort("stay_id")
    )
