"""Inclusion/exclusion criteria and the cohort flow.

Criteria are checked in a fixed order; a stay failing several is counted once, under the first
it fails, so `stays_in = included + sum(stays_removed)`:

1. `age_years < min_age_years`, 2. `age_years > max_age_years`,
3. stay (admission to the earlier of discharge and death) shorter than `min_stay_hours`,
4. no decision step in the window (the stay ends before the window starts),
5. `weight_kg` missing (when `require_weight`),
6. per required feature: no valid value charted in [lookback start, stay end).

>>> w = pl.DataFrame({"stay_idx": [0, 1, 2], "age_years": [15.0, 60.0, 70.0], "stay_hours": [2.0, 10.0, 10.0],
...                   "n_steps": [1, 3, 3], "weight_kg": [None, 80.0, 70.0]})
>>> from clinical_mborl.cohort.measurements import _example_spec
>>> out, flow = apply_criteria(_example_spec(), w, pl.DataFrame({"stay_idx": [1], "feat": [0]}))
>>> out["excluded_by"].to_list(), [(s.reason, s.stays_removed) for s in flow][:1]
(['age_years < 18', None, None], [('age_years < 18', 1)])
"""

from __future__ import annotations

import polars as pl

from clinical_mborl.cohort.manifest import ExclusionStep
from clinical_mborl.cohort.spec import CohortSpec


def criteria_checks(spec: CohortSpec, has_feature: pl.DataFrame) -> list[tuple[str, pl.Expr]]:
    """(reason, expression true when the stay FAILS) in flow order."""
    c = spec.criteria
    checks: list[tuple[str, pl.Expr]] = []
    if c.min_age_years is not None:
        checks.append((f"age_years < {c.min_age_years:g}", pl.col("age_years") < c.min_age_years))
    if c.max_age_years is not None:
        checks.append((f"age_years > {c.max_age_years:g}", pl.col("age_years") > c.max_age_years))
    checks.append((f"stay shorter than {c.min_stay_hours:g} h", pl.col("stay_hours") < c.min_stay_hours))
    checks.append(("no decision step in the window", pl.col("n_steps") <= 0))
    if c.require_weight:
        checks.append(("weight_kg missing", pl.col("weight_kg").is_null()))
    names = [f.name for f in spec.features]
    for feature in c.require_features:
        feat = names.index(feature)
        with_it = has_feature.filter(pl.col("feat") == feat)["stay_idx"].cast(pl.Int64)
        checks.append((f"no valid {feature} in the window",
                       ~pl.col("stay_idx").cast(pl.Int64).is_in(with_it.implode())))
    return checks


def apply_criteria(
    spec: CohortSpec, windows: pl.DataFrame, has_feature: pl.DataFrame
) -> tuple[pl.DataFrame, list[ExclusionStep]]:
    """Add `excluded_by` (the first failing reason, null = included) and return the flow.

    `has_feature`: `stay_idx`, `feat` pairs with at least one usable value.
    """
    checks = criteria_checks(spec, has_feature)
    reason: pl.Expr = pl.lit(None, dtype=pl.String)
    for name, fails in reversed(checks):
        reason = pl.when(fails.fill_null(True)).then(pl.lit(name)).otherwise(reason)
    out = windows.with_columns(reason.alias("excluded_by"))
    counts = dict(out.group_by("excluded_by").len().drop_nulls("excluded_by").iter_rows())
    remaining = windows.height
    flow = []
    for name, _ in checks:
        removed = int(counts.get(name, 0))
        remaining -= removed
        flow.append(ExclusionStep(reason=name, stays_removed=removed, stays_remaining=remaining))
    return out, flow
