"""Per-episode discounted returns of simulated tables, computed with the cohort's own code.

The stay windows, inclusion criteria, decision grid, states (filled with the manifest's fill
values), terminal flags and rewards come from `clinical_mborl.cohort` (`timegrid`, `criteria`,
`measurements`, `features`, `rewards`), the functions `cohort build` composes; only the split,
dose levels and normalisation, which do not enter the return, are left out. The return of a stay
is sum_t gamma^t reward_t over its steps (the outcome reward sits at its last step).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from clinical_mborl.cohort import features
from clinical_mborl.cohort.criteria import apply_criteria
from clinical_mborl.cohort.measurements import scan_spec_measurements
from clinical_mborl.cohort.rewards import add_rewards
from clinical_mborl.cohort.spec import CohortSpec
from clinical_mborl.cohort.timegrid import TimeGrid, grid_decisions, stay_windows
from clinical_mborl.cohort.transitions import NEXT_PREFIX


def episode_returns(spec: CohortSpec, tables: Mapping[str, pl.DataFrame], fill_values: Mapping[str, float]) -> pl.DataFrame:
    """`stay_id`, `n_steps`, `died_in_hospital`, `return` for every stay the spec's criteria include.

    `fill_values` only matter for intermediate reward terms (missing states are filled with them).
    """
    grid = TimeGrid.from_spec(spec.time)
    windows = stay_windows(grid, tables["stays"])
    rows = scan_spec_measurements(spec, tables["measurements"],
                                  windows.select("stay_id", "stay_idx", "lb_us", "stay_end_us"), streaming=False)
    usable = rows.filter(pl.col("stay_idx").is_not_null() & ~pl.col("dup") & pl.col("in_time") & pl.col("in_range"))
    windows, _ = apply_criteria(spec, windows, usable.select("stay_idx", "feat").unique())
    included = windows.filter(pl.col("excluded_by").is_null())
    decisions = grid_decisions(grid, included)
    values = features.window_values(spec, usable, decisions)
    statics = features.static_values(spec, windows, decisions["stay_idx"])
    states = features.apply_fill(spec, features.assemble_states(spec, values, statics), dict(fill_values))
    per_row = decisions.join(included.select("stay_idx", "stay_id", "n_steps", "ends_in_window", "died_in_hospital"),
                             on="stay_idx", how="left", maintain_order="left")
    nxt = states.select(pl.all().shift(-1).name.prefix(NEXT_PREFIX))
    frame = pl.concat([per_row, states, nxt], how="horizontal").filter(pl.col("step") < pl.col("n_steps"))
    frame = add_rewards(spec, frame)
    discount = np.power(spec.gamma, frame["step"].to_numpy().astype(np.float64))
    return (
        frame.with_columns((pl.col("reward") * pl.Series(discount)).alias("discounted"))
        .group_by("stay_id", maintain_order=True)
        .agg(pl.col("n_steps").first(), pl.col("died_in_hospital").first(), pl.col("discounted").sum().alias("return"))
        .sort("stay_id")
    )
