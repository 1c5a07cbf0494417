"""Terminal flags and rewards of each transition.

- The last step of a stay (`step == n_steps - 1`) is either terminal (`done`: the stay's death
  or discharge fell inside the window) or a truncation (`truncated`: the window ended first);
  every other step is neither. So each stay has exactly one terminal or truncation.
- `died` = `done` and the outcome (`died_in_hospital`) is death: the episode ended and its
  outcome reward is the death reward. (A patient discharged from the ICU who died later in the
  hospital ends `done` with `died`, since the outcome is hospital mortality.)
- Outcome reward at the last step: `death_reward` if the outcome is death else
  `survival_reward`, at a truncation only if `outcome_on_truncation`.
- Intermediate terms (`reward.intermediate`) on the clinical-unit (filled) states:
  `delta` = next - current; `below`/`above` = 1 if the next state is below/above `threshold`;
  each times its weight. `reward_intermediate` is their sum; `reward` adds the outcome part.

>>> from clinical_mborl.cohort.measurements import _example_spec
>>> t = pl.DataFrame({"step": [0, 1], "n_steps": [2, 2], "ends_in_window": [True, True],
...                   "died_in_hospital": [True, True]})
>>> add_rewards(_example_spec(), t).select("reward", "done", "died", "truncated").rows()
[(0.0, False, False, False), (-1.0, True, True, False)]
"""

from __future__ import annotations

import polars as pl

from clinical_mborl.cohort.spec import CohortSpec
from clinical_mborl.cohort.transitions import NEXT_PREFIX


def add_rewards(spec: CohortSpec, transitions: pl.DataFrame) -> pl.DataFrame:
    """Add `done`, `died`, `truncated`, `reward_intermediate` and `reward`.

    Needs `step`, `n_steps`, `ends_in_window`, `died_in_hospital` and, for intermediate terms,
    the state and `next_` state columns they name.
    """
    r = spec.reward
    last = pl.col("step") == pl.col("n_steps") - 1
    done = last & pl.col("ends_in_window")
    truncated = last & ~pl.col("ends_in_window")
    outcome_value = pl.when(pl.col("died_in_hospital")).then(r.death_reward).otherwise(r.survival_reward)
    gets_outcome = done | (truncated & pl.lit(r.outcome_on_truncation))
    outcome = pl.when(gets_outcome).then(outcome_value).otherwise(0.0)
    terms: list[pl.Expr] = []
    for term in r.intermediate:
        now, nxt = pl.col(term.feature), pl.col(NEXT_PREFIX + term.feature)
        if term.kind == "delta":
            value = nxt - now
        elif term.kind == "below":
            value = (nxt < term.threshold).cast(pl.Float64)
        else:
            value = (nxt > term.threshold).cast(pl.Float64)
        terms.append(term.weight * value)
    intermediate = pl.sum_horizontal(terms) if terms else pl.lit(0.0)
    return transitions.with_columns(
        done.alias("done"),
        (done & pl.col("died_in_hospital")).alias("died"),
        truncated.alias("truncated"),
        intermediate.cast(pl.Float64).alias("reward_intermediate"),
    ).with_columns((pl.col("reward_intermediate") + outcome).alias("reward"))
