"""Dose levels: fit bin edges on the train split, bin raw doses, map levels back to doses.

Level 0 is exactly zero dose. Non-zero doses fall in levels 1..L-1 by right-closed bins with
`bin_edges` = the upper edges of levels 1..L-2 (level L-1 is open-ended):
`level = 1 + #(edges < dose)`. Quantile binning puts the edges at the 1/(L-1), ..., (L-2)/(L-1)
quantiles of the non-zero train doses (AI Clinician: quartiles for 5 levels). `median_dose[l]`
is the median train dose of level l (0 for level 0) and is what a recommendation shows.
The joint action index is row-major over dimensions (`ActionSpaceInfo.joint_index`).

>>> from clinical_mborl.cohort.spec import ActionDimensionSpec
>>> spec = ActionDimensionSpec(name="fluid_ml", treatments={"x": 1.0}, aggregation="amount_sum",
...                            unit="mL", n_levels=3)
>>> info = fit_dimension(spec, np.array([0.0, 100.0, 200.0, 300.0, 400.0]))
>>> info.bin_edges, info.median_dose
([250.0], [0.0, 150.0, 350.0])
>>> dose_levels(info, np.array([0.0, 1.0, 250.0, 251.0])).tolist()
[0, 1, 1, 2]
"""

from __future__ import annotations

import numpy as np

from clinical_mborl.cohort.manifest import ActionDimensionInfo, ActionSpaceInfo
from clinical_mborl.cohort.spec import ActionDimensionSpec
from clinical_mborl.core.errors import InputError


def fit_dimension(spec: ActionDimensionSpec, train_doses: np.ndarray) -> ActionDimensionInfo:
    """Bin edges and per-level median dose from the train split's doses of one dimension.

    Continuous dimensions record only the observed dose range.
    """
    doses = np.asarray(train_doses, dtype=np.float64)
    lo = float(doses.min()) if doses.size else 0.0
    hi = float(doses.max()) if doses.size else 0.0
    if spec.binning == "continuous":
        return ActionDimensionInfo(name=spec.name, unit=spec.unit, dose_min=lo, dose_max=hi)
    nonzero = np.sort(doses[doses > 0])
    if spec.binning == "edges":
        assert spec.edges is not None
        edges = np.asarray(spec.edges, dtype=np.float64)
    else:
        if nonzero.size == 0:
            raise InputError(
                f"action dimension {spec.name}: no non-zero dose in the train split, so quantile "
                "bins cannot be fitted; expected some treated steps. Use `binning: edges` or check "
                "the treatment names and units of the spec."
            )
        q = np.arange(1, spec.n_levels - 1) / (spec.n_levels - 1)
        edges = np.quantile(nonzero, q, method="linear")
    levels = _levels(edges, nonzero)
    medians = [0.0]
    uppers = [*edges.tolist(), float("nan")]
    lowers = [0.0, *edges.tolist()]
    for level in range(1, spec.levels):
        members = nonzero[levels == level]
        if members.size:
            medians.append(float(np.median(members)))
        elif level < spec.levels - 1:  # empty bin: the middle of its edges
            medians.append(float((lowers[level - 1] + uppers[level - 1]) / 2))
        else:  # empty open-ended top bin: its lower edge
            medians.append(float(lowers[level - 1]))
    return ActionDimensionInfo(
        name=spec.name, unit=spec.unit, n_levels=spec.levels,
        bin_edges=[float(e) for e in edges], median_dose=medians, dose_min=lo, dose_max=hi,
    )


def _levels(edges: np.ndarray, doses: np.ndarray) -> np.ndarray:
    level = 1 + np.searchsorted(edges, doses, side="left")
    return np.where(doses > 0, level, 0).astype(np.int64)


def dose_levels(info: ActionDimensionInfo, doses: np.ndarray) -> np.ndarray:
    """Raw doses (clinical units) of one dimension -> level indices with a fitted `info`."""
    if info.n_levels is None:
        raise TypeError(f"dimension {info.name} is continuous: it has no levels")
    return _levels(np.asarray(info.bin_edges or [], dtype=np.float64), np.asarray(doses, dtype=np.float64))


def bin_doses(action_space: ActionSpaceInfo, doses: np.ndarray) -> np.ndarray:
    """Raw doses [n, n_dims] (clinical units, manifest dimension order) -> joint action index [n].

    >>> from clinical_mborl.cohort.manifest import ActionDimensionInfo, ActionSpaceInfo
    >>> dims = [ActionDimensionInfo(name=n, unit="u", n_levels=3, bin_edges=[1.0], median_dose=[0, .5, 2])
    ...         for n in ("a", "b")]
    >>> bin_doses(ActionSpaceInfo(kind="discrete", dimensions=dims), np.array([[0.0, 3.0], [0.7, 0.0]])).tolist()
    [2, 3]
    """
    doses = np.atleast_2d(np.asarray(doses, dtype=np.float64))
    if doses.shape[1] != len(action_space.dimensions):
        raise InputError(
            f"doses have {doses.shape[1]} column(s); expected one per action dimension "
            f"{[d.name for d in action_space.dimensions]}"
        )
    levels = np.stack([dose_levels(d, doses[:, j]) for j, d in enumerate(action_space.dimensions)], axis=1)
    return action_space.joint_index(levels)


def doses_of_action(action_space: ActionSpaceInfo, joint: np.ndarray) -> np.ndarray:
    """Joint action index [n] -> representative (median train) dose per dimension [n, n_dims].

    >>> from clinical_mborl.cohort.manifest import ActionDimensionInfo, ActionSpaceInfo
    >>> dims = [ActionDimensionInfo(name="a", unit="u", n_levels=2, bin_edges=[], median_dose=[0, 4.0])]
    >>> doses_of_action(ActionSpaceInfo(kind="discrete", dimensions=dims), np.array([1, 0])).tolist()
    [[4.0], [0.0]]
    """
    if action_space.kind != "discrete":
        raise TypeError("continuous action spaces have no dose levels")
    return action_space.doses_of(np.asarray(joint, dtype=np.int64))
