"""The decision time grid of a cohort: one row per stay, one decision every `step_hours`.

Conventions (CONTRACTS.md §3; the temporal alignment every other cohort module follows):

- Times are handled as integer microseconds since the epoch (`*_us` columns), exact and fast.
- `t0` = admission + `window_start_hours`; `window_end` = admission + `window_end_hours`.
- The stay's *event* is the earlier of discharge and death; the stay *ends* at
  `stay_end = min(event, window_end)`. It has `T = ceil((stay_end - t0) / step)` steps.
- Step k (0 <= k < T) has its decision time `t_k = t0 + k * step`. The **state** at step k is
  built only from measurements charted strictly before `t_k` (the window `[t_k - step, t_k)`, plus
  carry-forward of older values); the **action** at step k is what is given in
  `[t_k, min(t_k + step, stay_end))`; the **next state** of step k is the state at `t_{k+1}`, and
  for the last step the state at `stay_end`, built by the same rule. So a decision never sees
  data charted at or after its own time.
- The last step is terminal (`done`) when the event falls inside the window
  (`event <= window_end`), else it is a truncation (the window ended first).

>>> import datetime as dt
>>> stays = pl.DataFrame({"stay_id": ["s1"], "admit_time": [dt.datetime(2020, 1, 1)],
...                       "discharge_time": [dt.datetime(2020, 1, 1, 9)], "death_time": [None]},
...                      schema_overrides={"death_time": pl.Datetime("us")})
>>> w = stay_windows(TimeGrid(step_hours=4, window_start_hours=0, window_end_hours=72, lookback_hours=24), stays)
>>> w.select("n_steps", "ends_in_window").row(0)
(3, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from clinical_mborl.cohort.spec import TimeSpec

US_PER_HOUR = 3_600_000_000
DECISION = "decision_us"


def hours_to_us(hours: float) -> int:
    """Hours as whole microseconds.

    >>> hours_to_us(1.5)
    5400000000
    """
    return int(round(hours * US_PER_HOUR))


def datetime_us(col: str) -> pl.Expr:
    """A datetime column as Int64 microseconds since the epoch (whatever its time unit)."""
    return pl.col(col).cast(pl.Datetime("us")).dt.epoch("us")


@dataclass(frozen=True)
class TimeGrid:
    """The time settings of a spec in microseconds.

    >>> TimeGrid(4, 0, 72, 24).step_us == 4 * US_PER_HOUR
    True
    """

    step_hours: float
    window_start_hours: float
    window_end_hours: float
    lookback_hours: float

    @classmethod
    def from_spec(cls, time: TimeSpec) -> TimeGrid:
        return cls(time.step_hours, time.window_start_hours, time.window_end_hours, time.lookback_hours)

    @property
    def step_us(self) -> int:
        return hours_to_us(self.step_hours)

    @property
    def start_us(self) -> int:
        return hours_to_us(self.window_start_hours)

    @property
    def end_us(self) -> int:
        return hours_to_us(self.window_end_hours)

    @property
    def lookback_us(self) -> int:
        return hours_to_us(self.lookback_hours)


def stay_anchors(grid: TimeGrid, stays: pl.DataFrame) -> pl.DataFrame:
    """Per stay: `stay_idx` (0.. in stay_id order), `t0_us` and `lookback_us` (earliest usable chart time).

    Needs only `stay_id` and `admit_time`, so a simulator can call it for stays still running.
    """
    admit = datetime_us("admit_time")
    return (
        stays.sort("stay_id")
        .with_row_index("stay_idx")
        .with_columns(
            (admit + grid.start_us).alias("t0_us"),
            (admit + grid.start_us - grid.lookback_us).alias("lb_us"),
        )
    )


def stay_windows(grid: TimeGrid, stays: pl.DataFrame) -> pl.DataFrame:
    """Add the window of every stay: `t0_us`, `lb_us`, `event_us`, `stay_end_us`, `n_steps`,
    `ends_in_window` (the last step is terminal, not truncated) and `stay_hours`.

    `stays` needs `stay_id`, `admit_time`, `discharge_time` and `death_time` (nullable).
    """
    anchors = stay_anchors(grid, stays)
    discharge, death = datetime_us("discharge_time"), datetime_us("death_time")
    event = pl.min_horizontal(discharge, death)  # nulls are ignored: no death -> discharge
    step = grid.step_us
    return anchors.with_columns(event.alias("event_us")).with_columns(
        pl.min_horizontal("event_us", datetime_us("admit_time") + grid.end_us).alias("stay_end_us"),
        (pl.col("event_us") <= datetime_us("admit_time") + grid.end_us).alias("ends_in_window"),
        ((pl.col("event_us") - datetime_us("admit_time")) / US_PER_HOUR).alias("stay_hours"),
    ).with_columns(
        pl.when(pl.col("stay_end_us") > pl.col("t0_us"))
        .then((pl.col("stay_end_us") - pl.col("t0_us") + step - 1) // step)
        .otherwise(0)
        .cast(pl.Int64)
        .alias("n_steps")
    )


def grid_decisions(grid: TimeGrid, windows: pl.DataFrame) -> pl.DataFrame:
    """Decision rows of every stay with steps: `stay_idx`, `step` in 0..T and `decision_us`.

    Steps 0..T-1 are the decisions of the MDP; step T is the stay's end (`stay_end_us`), whose
    state is the next state of the last transition.

    >>> w = pl.DataFrame({"stay_idx": [0], "t0_us": [0], "stay_end_us": [10], "n_steps": [3]})
    >>> grid_decisions(TimeGrid(4 / US_PER_HOUR, 0, 1, 0), w)[DECISION].to_list()
    [0, 4, 8, 10]
    """
    step = grid.step_us
    return (
        windows.filter(pl.col("n_steps") > 0)
        .select("stay_idx", "t0_us", "stay_end_us", "n_steps",
                pl.int_ranges(0, pl.col("n_steps") + 1).alias("step"))
        .explode("step")
        .with_columns(
            pl.when(pl.col("step") < pl.col("n_steps"))
            .then(pl.col("t0_us") + pl.col("step") * step)
            .otherwise(pl.col("stay_end_us"))
            .alias(DECISION)
        )
        .select("stay_idx", pl.col("step").cast(pl.Int64), DECISION)
        .sort("stay_idx", "step")
    )
