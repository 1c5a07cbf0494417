"""OPE per subgroup: the paired difference (policy - clinician) within each level of sex, age band
and severity, with the same patient resamples as the overall estimate.

Labels come from each stay's FIRST decision step in the transitions (state features in clinical
units, in the cohort's feature order) -- never from identifiers:

- ``sex``: ``sex_female`` (1 -> "female", 0 -> "male", anything else -> "unknown");
- ``age_band``: ``age_years`` cut at `SubgroupDefinition.age_edges` (default 18-49, 50-64, 65-79, 80+);
- ``severity``: "severe" when the first-step lactate is >= 4 mmol/L or the first-step MAP is
  < 65 mmHg (a septic-shock-like presentation; Singer et al., JAMA 2016), "not severe" otherwise.
  A value only counts when it was observed: where the cohort has a ``<feature>_missing``
  indicator, a filled (imputed) value never makes a stay severe.

Restriction: for a level g, every estimator's per-stay statistics are set to zero outside g and
summed per patient; the estimator is then the same function of (resampled) patient sums as in
`estimators.py`. A resample's sums therefore hold only the in-group stays of the drawn patients,
every self-normalising denominator is the in-group one, and the group size varies across
resamples as it should (domain estimation). The resamples are those of the overall analysis
(`ResamplePlan(n_patients, n_resamples, seed)` of the `OPEConfig`), so the subgroup and overall
intervals are paired too. The BCa jackknife leaves out one in-group patient at a time. With
`OPEConfig.fqe_interval = "rubin"`, FQE's subgroup differences use Rubin's rules over the Q-members
restricted to the group's stays (`ope.members`), as its overall interval does (no FQE bootstrap is
computed then).
Resamples that draw no in-group stay give an undefined estimate and are dropped (counted).

`SubgroupDifference` has the fields of `clinical_mborl.report.inputs.SubgroupResult` (the report
layer is above this one): ``SubgroupResult.model_validate(d.model_dump())`` converts it.

>>> rng = np.random.default_rng(0)
>>> n = 200
>>> d = OPEData.create(rng.choice([-1.0, 1.0], size=(n, 2)), np.ones((n, 2), bool), np.arange(n),
...                    pb=np.full((n, 2), 0.5), pe=np.full((n, 2), 0.5), gamma=1.0)
>>> labels = {"sex": np.where(np.arange(n) % 2 == 0, "female", "male")}
>>> res = subgroup_differences(d, labels, ("wis",), OPEConfig(n_resamples=200, soften_epsilon=0.0))
>>> [(r.level, r.n_patients, round(r.difference, 9)) for r in res]  # on-policy: no difference
[('female', 100, 0.0), ('male', 100, 0.0)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import Field, model_validator

from clinical_mborl.cohort import TransitionSet
from clinical_mborl.core.errors import InputError
from clinical_mborl.core.models import StrictModel
from clinical_mborl.ope.data import OPEData
from clinical_mborl.ope.diagnostics import kish_ess
from clinical_mborl.ope.estimators import Estimator, OnPolicyValue
from clinical_mborl.ope.evaluate import available_estimators
from clinical_mborl.ope.intervals import (
    Replicates,
    ResamplePlan,
    bootstrap_sums,
    member_bootstrap_sums,
)
from clinical_mborl.ope.members import as_interval, member_intervals
from clinical_mborl.ope.results import OPEConfig

ATTRIBUTES = ("sex", "age_band", "severity")


class SubgroupDefinition(StrictModel):
    """How stays are labelled from their first-step state (clinical units)."""

    attributes: tuple[str, ...] = Field(ATTRIBUTES, description="Attributes to label, among sex, age_band, severity.")
    sex_feature: str = Field("sex_female", description="1 = female, 0 = male.")
    age_feature: str = Field("age_years", description="Age at admission in years.")
    age_edges: tuple[float, ...] = Field((50.0, 65.0, 80.0), description="Band lower edges after the first "
                                         "band: (50, 65, 80) gives 18-49, 50-64, 65-79, 80+.")
    lactate_feature: str = Field("lactate_mmol_l", description="Severity: lactate in mmol/L.")
    lactate_threshold: float = Field(4.0, description="Severe when the observed first lactate >= this.")
    map_feature: str = Field("map_mmhg", description="Severity: mean arterial pressure in mmHg.")
    map_threshold: float = Field(65.0, description="Severe when the observed first MAP < this.")

    @model_validator(mode="after")
    def _valid(self) -> SubgroupDefinition:
        unknown = [a for a in self.attributes if a not in ATTRIBUTES]
        if unknown:
            raise ValueError(f"unknown subgroup attribute(s) {unknown}; expected some of {list(ATTRIBUTES)}")
        if list(self.age_edges) != sorted(set(self.age_edges)) or (self.age_edges and self.age_edges[0] <= 18):
            raise ValueError(f"age_edges must be strictly increasing and above 18, got {list(self.age_edges)}")
        return self


def definition_for(feature_names: Sequence[str], base: SubgroupDefinition | None = None) -> SubgroupDefinition:
    """`base` restricted to the attributes whose state features the cohort has.

    An attribute left out here is missing evidence, which the gate reports as a failed check.
    """
    base = base or SubgroupDefinition()
    names = set(feature_names)
    needs = {"sex": (base.sex_feature,), "age_band": (base.age_feature,),
             "severity": (base.lactate_feature, base.map_feature)}
    kept = tuple(a for a in base.attributes if all(f in names for f in needs[a]))
    return base.model_copy(update={"attributes": kept})


class SubgroupDifference(StrictModel):
    """Paired difference (policy - clinician) of one estimator within one subgroup level.

    Same fields as `report.inputs.SubgroupResult`; undefined numbers (no in-group weight) are NaN.
    """

    attribute: str
    level: str
    n_patients: int = Field(ge=0, description="Patients with at least one in-group stay.")
    estimator: str
    difference: float
    ci_low: float
    ci_high: float
    lower_bound: float = Field(description="One-sided lower bound at the OPEConfig level.")
    ess: float | None = Field(None, description="Kish ESS of the in-group trajectory weights.")


def _age_labels(age: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    bounds = [18.0, *edges]
    names = [f"{int(lo)}-{int(hi) - 1}" for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    names.append(f"{int(bounds[-1])}+")
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), age, side="right")
    out = np.asarray(names, dtype=object)[idx]
    return np.where(np.isfinite(age), out, "unknown").astype(str)


def label_stays(first_states: np.ndarray, feature_names: Sequence[str],
                definition: SubgroupDefinition | None = None) -> dict[str, np.ndarray]:
    """Subgroup labels [n] per attribute from first-step states [n, d] (clinical units).

    >>> x = np.array([[1.0, 70.0, 5.0, 80.0], [0.0, 40.0, 1.0, 60.0], [0.0, 90.0, 1.0, 80.0]])
    >>> lab = label_stays(x, ["sex_female", "age_years", "lactate_mmol_l", "map_mmhg"])
    >>> [lab[a].tolist() for a in ("sex", "age_band", "severity")]
    [['female', 'male', 'male'], ['65-79', '18-49', '80+'], ['severe', 'severe', 'not severe']]
    """
    d = definition or SubgroupDefinition()
    names = list(feature_names)
    x = np.asarray(first_states, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise InputError(f"subgroups: first-step states must be [n, {len(names)}], got shape {x.shape}.")

    def column(feature: str, attribute: str) -> np.ndarray:
        if feature not in names:
            raise InputError(f"subgroups: attribute '{attribute}' needs the state feature '{feature}', which "
                             f"the cohort does not have; add it to the spec or drop '{attribute}'.")
        return x[:, names.index(feature)]

    def observed(feature: str) -> np.ndarray:
        flag = f"{feature}_missing"
        return x[:, names.index(flag)] < 0.5 if flag in names else np.ones(x.shape[0], dtype=bool)

    out: dict[str, np.ndarray] = {}
    for attr in d.attributes:
        if attr == "sex":
            s = column(d.sex_feature, attr)
            out[attr] = np.where(s == 1.0, "female", np.where(s == 0.0, "male", "unknown")).astype(str)
        elif attr == "age_band":
            out[attr] = _age_labels(column(d.age_feature, attr), d.age_edges)
        else:
            lac, bp = column(d.lactate_feature, attr), column(d.map_feature, attr)
            severe = ((lac >= d.lactate_threshold) & observed(d.lactate_feature)) | (
                (bp < d.map_threshold) & observed(d.map_feature))
            out[attr] = np.where(severe, "severe", "not severe").astype(str)
    return out


def first_step_labels(transitions: TransitionSet, eval_splits: Sequence[str],
                      definition: SubgroupDefinition | None = None) -> dict[str, np.ndarray]:
    """Labels per evaluation stay, in the episode order `build_ope_data` uses for `eval_splits`."""
    raw = transitions.arrays(normalised=False)
    split = transitions.frame["split"].to_numpy()
    rows = np.flatnonzero(np.isin(split, list(eval_splits)))
    if rows.size == 0:
        raise InputError(f"subgroups: no rows in splits {list(eval_splits)}; pick splits the cohort has.")
    episode = np.unique(raw.episode[rows], return_inverse=True)[1]
    first = raw.step[rows] == 0
    states = np.full((int(episode.max()) + 1, raw.states.shape[1]), np.nan)
    states[episode[first]] = raw.states[rows[first]]
    if np.isnan(states).all(axis=1).any():
        raise InputError("subgroups: some evaluation stay has no step 0; rebuild the cohort.")
    return label_stays(states, transitions.feature_names, definition)


def subgroup_differences(data: OPEData, labels: Mapping[str, np.ndarray], estimators: Sequence[str],
                         config: OPEConfig) -> list[SubgroupDifference]:
    """Paired difference vs the clinician per subgroup level and estimator (see the module text).

    `labels` maps an attribute to one label per episode of `data`; estimators whose inputs the
    data lack (e.g. DR without Q-values) raise an InputError.
    """
    chosen, skipped = available_estimators(data, config.model_copy(update={"estimators": tuple(estimators)}))
    if skipped:
        raise InputError(f"subgroups: estimator(s) {sorted(skipped)} cannot run on these data "
                         f"({'; '.join(skipped.values())}).")
    for attr, lab in labels.items():
        if np.asarray(lab).shape != (data.n_episodes,):
            raise InputError(f"subgroups: labels of '{attr}' must have one entry per episode "
                             f"({data.n_episodes}), got shape {np.asarray(lab).shape}.")
    reference = OnPolicyValue()
    rubin = config.fqe_interval == "rubin" and data.n_q_members >= 2
    by_rubin = [e for e in chosen if rubin and e.name == "fqe"]  # no bootstrap for these
    everyone = [reference, *(e for e in chosen if e not in by_rubin)]
    episode_stats = [e.episode_stats(data) for e in everyone]
    widths = [s.shape[1] for s in episode_stats]
    groups: list[tuple[str, str, np.ndarray]] = [
        (attr, str(level), np.asarray(lab) == level) for attr, lab in labels.items()
        for level in sorted(set(np.asarray(lab).tolist()))
    ]
    block = sum(widths)
    stats = np.concatenate([data.patient_sums(s * in_g[:, None]) for _, _, in_g in groups for s in episode_stats],
                           axis=1) if groups else np.zeros((data.n_patients, 0))
    plan = ResamplePlan(data.n_patients, config.n_resamples, config.seed)
    boot, total = bootstrap_sums(plan, stats), stats.sum(axis=0)
    _pair_q_members(boot, data, everyone, groups, widths, plan)
    traj_w = data.cumulative_weights(config.clip)[0][:, -1]
    edges = np.cumsum([0, *widths])
    out = []
    for g, (attr, level, in_g) in enumerate(groups):
        members = np.unique(data.patient[in_g])
        cut = slice(g * block, (g + 1) * block)
        jack = total[cut] - stats[members, cut]
        def rep(k: int, t: np.ndarray = total[cut], b: np.ndarray = boot[:, cut], jk: np.ndarray = jack
                ) -> Replicates:
            cols = slice(edges[k], edges[k + 1])  # estimator k's columns within the group's block
            return Replicates.of(everyone[k], t[cols], b[:, cols], jk[:, cols], data.return_bounds)

        ref = rep(0)
        for est in chosen:
            if est in by_rubin:
                _, diff = member_intervals(est, data, config.level, reference, episodes=in_g)
                assert diff is not None
                iv = as_interval(diff)
            else:
                iv = rep(everyone.index(est)).minus(ref).summarise(config.level, config.method)
            out.append(SubgroupDifference(
                attribute=attr, level=level, n_patients=int(members.size), estimator=est.name,
                difference=iv.value, ci_low=iv.low, ci_high=iv.high, lower_bound=iv.lower_bound,
                ess=float(kish_ess(traj_w[in_g])) if est.uses_weights else None,
            ))
    return out


def _pair_q_members(boot: np.ndarray, data: OPEData, everyone: Sequence[Estimator],
                    groups: Sequence[tuple[str, str, np.ndarray]], widths: Sequence[int], plan: ResamplePlan) -> None:
    """With refitted Q-members, resample b of a Q-based estimator uses member b mod M (as overall)."""
    refitted = [j for j, e in enumerate(everyone) if e.uses_q]
    if not data.n_q_members or not refitted or not groups:
        return
    edges, block = np.cumsum([0, *widths]), sum(widths)
    cols = np.concatenate([np.arange(g * block + edges[j], g * block + edges[j + 1])
                           for g in range(len(groups)) for j in refitted])

    def member_stats(m: int) -> np.ndarray:
        member = data.with_q_member(m)
        per_stay = [everyone[j].episode_stats(member) for j in refitted]
        return np.concatenate([member.patient_sums(s * in_g[:, None]) for _, _, in_g in groups for s in per_stay],
                              axis=1)

    boot[:, cols] = member_bootstrap_sums(plan, data.n_q_members, member_stats)


def evaluate_subgroups(data: OPEData, transitions: TransitionSet, estimators: Sequence[str], config: OPEConfig,
                       definition: SubgroupDefinition | None = None) -> list[SubgroupDifference]:
    """`subgroup_differences` with labels from `transitions` (the cohort `data` was built from).

    `data` must come from `build_ope_data(policy, transitions, behavior, dynamics, config)`.
    """
    labels = first_step_labels(transitions, config.eval_splits, definition)
    n = next(iter(labels.values())).shape[0] if labels else data.n_episodes
    if n != data.n_episodes:
        raise InputError(f"subgroups: the cohort has {n} evaluation stays in {list(config.eval_splits)}, the OPE "
                         f"data {data.n_episodes}; build both from the same cohort and OPEConfig.")
    return subgroup_differences(data, labels, estimators, config)


__all__ = [
    "ATTRIBUTES",
    "SubgroupDefinition",
    "SubgroupDifference",
    "definition_for",
    "evaluate_subgroups",
    "first_step_labels",
    "label_stays",
    "subgroup_differences",
]
