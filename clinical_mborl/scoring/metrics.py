"""Per-candidate numbers beside the OPE estimates: clinician agreement and MOReL's HALT rate.

- Agreement (dose-level cohorts): on the evaluation rows, the share of steps where the
  candidate's greedy action (argmax of its probabilities; ties to the lowest joint index) equals
  the logged action, and the mean probability the candidate gives the logged action. The
  candidate is used as it is, not softened.
- HALT rate (MOReL artifacts): the candidate is rolled out in the dynamics ensemble from each
  evaluation stay's first state (`OPEConfig.model_rollouts` rollouts each, the window's length,
  seeded by `OPEConfig.seed`) and a model step hits HALT where the elites' disagreement exceeds
  the `halt_threshold` stored in the artifact (`ModelStep.disagreement`, as in training). The
  rate is the share of rollout steps that hit HALT. The threshold was computed on the ensemble
  the policy was trained with; pass that ensemble as `dynamics`.

>>> from clinical_mborl.cohort.toy import make_toy_transitions
>>> from clinical_mborl.policies import NoTreatmentPolicy
>>> ts = make_toy_transitions(40, seed=0)
>>> a = clinician_agreement(NoTreatmentPolicy(ts.feature_names, ts.manifest.action_space), ts, ("test",))
>>> 0.0 <= a.agreement <= 1.0, a.mean_probability_logged == a.agreement  # one-hot policy
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from clinical_mborl.cohort import TransitionSet
from clinical_mborl.core.errors import InputError
from clinical_mborl.core.policy import Policy
from clinical_mborl.dynamics import DynamicsEnsemble, rollout
from clinical_mborl.ope.model_based import softened_sampler


@dataclass(frozen=True)
class Agreement:
    """Agreement with the logged (clinician) actions; None with a note where undefined."""

    agreement: float | None
    mean_probability_logged: float | None
    note: str | None = None


@dataclass(frozen=True)
class HaltRate:
    """Share of model rollout steps that hit HALT; None with a note where not measurable."""

    rate: float | None
    note: str | None = None


def evaluation_rows(transitions: TransitionSet, splits: tuple[str, ...]) -> np.ndarray:
    """Row indices of the evaluation splits (InputError if there are none)."""
    rows = np.flatnonzero(np.isin(transitions.frame["split"].to_numpy(), splits))
    if rows.size == 0:
        raise InputError(f"score: no rows in splits {list(splits)}; pick splits the cohort has.")
    return rows


def clinician_agreement(policy: Policy, transitions: TransitionSet, splits: tuple[str, ...]) -> Agreement:
    """Greedy-action agreement and mean probability of the logged action on `splits`."""
    if transitions.manifest.action_space.kind != "discrete":
        return Agreement(None, None, "agreement not computed: continuous doses have no logged dose level")
    rows = evaluation_rows(transitions, splits)
    raw = transitions.arrays(normalised=False)
    p = np.asarray(policy.action_probabilities(raw.states[rows]), dtype=np.float64)
    taken = raw.actions[rows]
    if p.shape != (rows.size, transitions.n_actions):
        raise InputError(f"score: policy '{policy.name}' gives {p.shape[-1]} action probabilities, the "
                         f"cohort has {transitions.n_actions} dose levels; use a policy built for this cohort.")
    return Agreement(agreement=float((p.argmax(axis=1) == taken).mean()),
                     mean_probability_logged=float(p[np.arange(rows.size), taken].mean()))


def halt_threshold(policy: Any) -> float | None:
    """The HALT disagreement threshold stored in a MOReL artifact's config, if any."""
    if getattr(policy, "algo", None) != "morel":
        return None
    value = (getattr(policy, "config", None) or {}).get("halt_threshold")
    return float(value) if isinstance(value, int | float) else None


def halt_rate(policy: Policy, transitions: TransitionSet, dynamics: DynamicsEnsemble | None,
              splits: tuple[str, ...], n_rollouts: int, seed: int) -> HaltRate:
    """HALT rate of a MOReL candidate's own rollouts in `dynamics` (see the module docstring)."""
    if getattr(policy, "algo", None) != "morel":
        return HaltRate(None, "no HALT rate: not a MOReL artifact")
    threshold = halt_threshold(policy)
    if threshold is None:
        return HaltRate(None, "no HALT rate: the MOReL artifact stores no halt_threshold")
    if dynamics is None:
        return HaltRate(None, "no HALT rate: no dynamics ensemble given (--dynamics)")
    rows = evaluation_rows(transitions, splits)
    norm = transitions.arrays(normalised=True)
    first = rows[norm.step[rows] == 0]
    states = torch.as_tensor(norm.states[first]).repeat_interleave(n_rollouts, dim=0)
    steps = torch.as_tensor(norm.step[first]).repeat_interleave(n_rollouts, dim=0)
    sampler = softened_sampler(policy, policy, transitions.normalizer.inverse, 0.0, np.random.default_rng(seed))
    gen = torch.Generator(device=dynamics.device).manual_seed(seed)
    out = rollout(dynamics, sampler, states, steps, int(dynamics.n_steps), gen, halt_threshold=threshold)
    valid = out.valid
    if not bool(valid.any()):
        return HaltRate(None, "no HALT rate: no model rollout step was taken")
    return HaltRate(float(out.halted[valid].float().mean()))
