"""Small hyper-parameter grids per algorithm, searched offline (`selection.py`).

Published values vary 10-50x across datasets (FIELD_NOTES), so each algorithm ships a few
settings around the paper's choices rather than one default:

* CQL: alpha in {0.5, 1, 5} (Kumar et al. 2020 use 0.5-5 on discrete tasks).
* MOPO: lambda in {0.5, 2} x h in {1, 5} (lambda in reward-range units per unit of excess
  relative uncertainty; the paper's h in {1, 5}).
* MOReL: kappa in {1, 2, 3} up to the official 3.0 (thresholds are multiples of the largest
  disagreement on the data, so larger kappas rarely halt).
* COMBO: beta in {0.5, 1, 5} x h in {1, 5} (the paper's grid).
* BC: a single setting.

>>> from clinical_mborl.policies.cql import CqlConfig
>>> [c.alpha for c in grid_configs("cql", CqlConfig())]
[0.5, 1.0, 5.0]
"""

from __future__ import annotations

from itertools import product
from typing import Any

from clinical_mborl.core.errors import InputError
from clinical_mborl.policies.config import LearnerConfig

GRIDS: dict[str, tuple[dict[str, Any], ...]] = {
    "bc": ({},),
    "cql": tuple({"alpha": a} for a in (0.5, 1.0, 5.0)),
    "mopo": tuple({"lam": lam, "horizon": h} for lam, h in product((0.5, 2.0), (1, 5))),
    "morel": tuple({"kappa": k} for k in (1.0, 2.0, 3.0)),
    "combo": tuple({"beta": b, "horizon": h} for b, h in product((0.5, 1.0, 5.0), (1, 5))),
}


def grid_configs(algo: str, base: LearnerConfig, grid: tuple[dict[str, Any], ...] | None = None) -> list[LearnerConfig]:
    """`base` with each point of the grid applied (the algorithm's default grid unless given)."""
    if grid is None:
        if algo not in GRIDS:
            raise InputError(f"unknown algorithm '{algo}'; expected one of {sorted(GRIDS)}.")
        grid = GRIDS[algo]
    return [base.replace(**point) for point in grid]

