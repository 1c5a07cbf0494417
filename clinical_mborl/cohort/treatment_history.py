"""Treatment-history state features: the doses given in the window before each decision.

A `treatment_features` entry of the cohort spec reads one action dimension's doses (the same
per-step doses the action columns hold, in clinical units): `previous` is the dose of the step
before the decision, `cumulative` the sum over every earlier step of the window; both are 0 at
the first step. A dose of step k is given in `[t_k, t_k + step)`, before decision k + 1, so the
features use only what was given before the decision (the temporal rule of `features`).

`cohort build` computes them from the cohort's doses, and a simulator's closed loop from the
doses it applied, with this one function. A dynamics ensemble predicts them like any other
state column, or sets them exactly from the chosen dose with `DynamicsConfig.exact_treatment_history`
(`dynamics.history`; off by default, measured worse).

>>> from clinical_mborl.cohort.spec import CohortSpec
>>> spec = CohortSpec.model_validate({
...     "name": "t", "description": "d",
...     "features": [{"name": "map_mmhg", "source": "map", "unit": "mmHg", "valid_range": [10, 250]}],
...     "actions": [{"name": "iv_fluid_ml", "treatments": {"crystalloid": 1.0}, "aggregation": "amount_sum",
...                  "unit": "mL"}],
...     "treatment_features": [{"name": "fluid_previous_ml", "action": "iv_fluid_ml", "kind": "previous"},
...                            {"name": "fluid_total_ml", "action": "iv_fluid_ml", "kind": "cumulative"}]})
>>> doses = pl.DataFrame({"stay_idx": [0, 0, 0], "step": [0, 1, 2], "iv_fluid_ml": [500.0, 0.0, 250.0]})
>>> decisions = pl.DataFrame({"stay_idx": [0, 0, 0, 0], "step": [0, 1, 2, 3]})
>>> treatment_history(spec, doses, decisions).rows()
[(0.0, 0.0), (500.0, 500.0), (0.0, 500.0), (250.0, 750.0)]
"""

from __future__ import annotations

import polars as pl

from clinical_mborl.cohort.spec import CohortSpec
from clinical_mborl.core.errors import InputError

_CUMULATIVE = "__cumulative_"


def treatment_names(spec: CohortSpec) -> list[str]:
    """The treatment-history state columns, in spec order."""
    return [t.name for t in spec.treatment_features]


def treatment_history(spec: CohortSpec, doses: pl.DataFrame, decisions: pl.DataFrame,
                      key: str = "stay_idx") -> pl.DataFrame:
    """The spec's treatment features for each row of `decisions` (`key`, `step`), in its order.

    `doses`: `key`, `step` and one column per action dimension the features read, for every step
    before each decision (InputError naming the rows otherwise; a decision at step 0 needs none).
    """
    used = sorted({t.action for t in spec.treatment_features})
    if not used:
        return pl.DataFrame()  # no columns: callers add nothing
    steps = pl.col("step").cast(pl.Int64)
    ordered = doses.with_row_index("__row").select("__row", key, steps, *used).sort(key, "step")
    broken = ordered.filter(pl.col("step") != pl.int_range(pl.len()).over(key))
    if broken.height:  # a missing or repeated step would make a running sum silently wrong
        raise InputError(f"treatment history: the doses must hold steps 0, 1, 2, ... of each stay once; "
                         f"rows {broken['__row'].head(5).to_list()} ({broken.height} in all) break the sequence.")
    shifted = ordered.with_columns(
        *[pl.col(a).cum_sum().over(key).alias(_CUMULATIVE + a) for a in used],
        (pl.col("step") + 1).alias("step"),  # the doses of step k are history at decision k + 1
    ).with_columns(pl.lit(True).alias("__found"))
    joined = decisions.select(key, steps).join(shifted, on=[key, "step"], how="left", maintain_order="left")
    gap = (joined["step"] > 0) & joined["__found"].is_null()
    if gap.any():
        rows = joined.with_row_index("row").filter(gap)["row"].head(5).to_list()
        raise InputError(f"treatment history: no doses for the step before decision row(s) {rows} "
                         f"({int(gap.sum())} in all); every step before a decision needs its doses.")
    return joined.select(
        (pl.col(t.action) if t.kind == "previous" else pl.col(_CUMULATIVE + t.action))
        .fill_null(0.0).cast(pl.Float64).alias(t.name)
        for t in spec.treatment_features
    )
