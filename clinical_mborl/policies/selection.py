"""Offline hyper-parameter selection, without the simulator's ground truth.

Each grid point is trained on the train split and scored by a pessimistic **model-based value on
the held-out val split**: from every val stay's first state, the policy acts in the learned
ensemble until death, discharge or the window end. Pessimism is a soft version of MOReL's HALT:
at each step the rollout leaves the trusted model with probability
p = 1 - exp(-uncertainty_penalty * max(0, u(s, a) / u_data - 1)), where u is the ensemble's
uncertainty and u_data its mean on the train data's own state-actions, and from then on earns
the worst return a stay can have. The expected value is computed exactly along each rollout.
Unlike a per-step penalty (MOPO), this never makes early death look good: the worst return is
no better than death. Returns are averaged per stay over `n_repeats` rollouts, and

    score = mean over stays - se_multiplier * standard error over stays

(a one-sided lower bound with patients as the unit). All candidates share the same random
numbers, so differences are not seed noise. The ensemble was fitted on train only, so the val
states are held out from every model involved. This is a stand-in: once `clinical_mborl.ope`
lands, an OPE lower bound will replace it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from clinical_mborl.cohort import TransitionSet
from clinical_mborl.core.errors import InputError
from clinical_mborl.core.policy import Policy
from clinical_mborl.policies.config import LearnerConfig
from clinical_mborl.policies.grids import GRIDS, grid_configs
from clinical_mborl.policies.learned import LearnedPolicy
from clinical_mborl.policies.morel import halt_reward
from clinical_mborl.policies.rollouts import (
    DynamicsModel,
    excess_uncertainty,
    model_device,
    reference_uncertainty,
)
from clinical_mborl.policies.train import default_config, train_policy


@dataclass(frozen=True)
class SelectionConfig:
    """How candidates are scored."""

    split: str = "val"
    """Held-out split whose first states start the evaluation rollouts."""

    uncertainty_penalty: float = 0.5
    """lambda in the per-step probability 1 - exp(-lambda max(0, u / u_data - 1)) of leaving the
    trusted model (then: the worst return). 0 gives the plain model-based value."""

    se_multiplier: float = 1.0
    """z in score = mean - z * se; 1.645 gives a one-sided 95% normal lower bound."""

    n_repeats: int = 4
    """Model rollouts per held-out starting state."""

    seed: int = 0
    """Seeds the rollouts (shared by every candidate: common random numbers)."""


@dataclass(frozen=True)
class ModelValue:
    """A policy's pessimistic model-based value on the held-out split."""

    mean: float
    se: float
    score: float
    n_stays: int
    mean_uncertainty: float  # raw u(s, a) along the rollouts
    mean_excess: float  # max(0, u / u_data - 1) along the rollouts
    trusted: float  # expected share of rollout mass still in the trusted model at the end

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "se": self.se, "score": self.score, "n_stays": self.n_stays,
                "mean_uncertainty": self.mean_uncertainty, "mean_excess": self.mean_excess,
                "trusted": self.trusted}


def model_based_value(policy: Policy, transitions: TransitionSet, dynamics: DynamicsModel,
                      config: SelectionConfig | None = None, reference: float | None = None) -> ModelValue:
    """Pessimistic discounted return of `policy` in the ensemble from held-out first states.

    `reference` is u_data (`reference_uncertainty` on the train split; computed when omitted)."""
    config = config or SelectionConfig()
    train = transitions.split("train")
    if reference is None:
        reference = reference_uncertainty(dynamics, train)
    t = train.arrays(normalised=False)
    worst = halt_reward(torch.as_tensor(t.rewards), torch.as_tensor(t.end), float(dynamics.gamma),
                        int(dynamics.n_steps), 0.0)
    held = transitions.split(config.split)
    a = held.arrays(normalised=True)
    order = np.lexsort((a.step, a.episode))  # first row of each stay, whatever the row order
    starts = order[np.r_[True, np.diff(a.episode[order]) != 0]] if len(a) else np.array([], dtype=int)
    if starts.size == 0:
        raise InputError(f"selection: the '{config.split}' split has no stays; expected held-out patients.")
    device = model_device(dynamics)
    n_stays, reps = starts.size, config.n_repeats
    states = torch.as_tensor(np.repeat(a.states[starts], reps, axis=0), device=device)
    steps = torch.as_tensor(np.repeat(a.step[starts], reps), device=device)
    rng = np.random.default_rng(config.seed)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    returns = np.zeros(n_stays * reps)
    trusted = np.ones(n_stays * reps)  # probability the rollout is still in the trusted model
    alive = np.ones(n_stays * reps, dtype=bool)
    uncertainty: list[float] = []
    excess: list[float] = []
    discount = 1.0
    normalizer = transitions.normalizer
    for _ in range(int(dynamics.n_steps)):
        idx = np.flatnonzero(alive)
        if idx.size == 0:
            break
        s = states[idx]
        raw = normalizer.inverse(s.cpu().numpy())
        act = policy.sample_actions(raw, rng)
        actions = torch.as_tensor(np.asarray(act), device=device)
        actions = actions.long() if actions.ndim == 1 else actions.float()
        step = dynamics.step(s, actions, steps[idx], generator)
        u = step.uncertainty.detach().cpu().double()
        ex = excess_uncertainty(u, reference).numpy()
        r = step.rewards.detach().cpu().numpy().astype(np.float64)
        leave = 1.0 - np.exp(-config.uncertainty_penalty * ex)
        returns[idx] += discount * trusted[idx] * ((1.0 - leave) * r + leave * worst)
        trusted[idx] *= 1.0 - leave
        uncertainty.append(float(u.mean()))
        excess.append(float(ex.mean()))
        end = (step.done | step.truncated).cpu().numpy().astype(bool)
        alive[idx[end]] = False
        keep = torch.as_tensor(~end, device=device)
        states[idx[~end]] = step.next_states[keep].to(states.dtype)
        steps[idx[~end]] = steps[idx[~end]] + 1
        discount *= float(dynamics.gamma)
    per_stay = returns.reshape(n_stays, reps).mean(1)
    mean = float(per_stay.mean())
    se = float(per_stay.std(ddof=1) / np.sqrt(n_stays)) if n_stays > 1 else 0.0
    return ModelValue(mean, se, mean - config.se_multiplier * se, n_stays,
                      float(np.mean(uncertainty)) if uncertainty else 0.0,
                      float(np.mean(excess)) if excess else 0.0, float(trusted.mean()))


@dataclass(frozen=True)
class Selection:
    """The chosen policy and the scored grid (one row per candidate, in grid order)."""

    policy: LearnedPolicy
    best_index: int
    table: list[dict[str, Any]]


Scorer = Callable[[LearnedPolicy], dict[str, float]]
"""A policy -> a dict with at least "score" (higher is better); e.g. an OPE lower bound."""


def select_policy(algo: str, transitions: TransitionSet, behavior: Any, dynamics: DynamicsModel | None,
                  base: LearnerConfig | None = None, grid: tuple[dict[str, Any], ...] | None = None,
                  config: SelectionConfig | None = None, scorer: Scorer | None = None,
                  criterion: str = "model_based_value") -> Selection:
    """Train every grid point of `algo` and keep the one with the best held-out score.

    `scorer` replaces the model-based value (e.g. an OPE lower bound on the val split, supplied
    by a stage above this one: `policies` cannot import `ope`); name it with `criterion`.
    """
    config = config or SelectionConfig()
    if scorer is None:
        if dynamics is None:
            raise InputError("selection: the model-based held-out value needs the dynamics ensemble; "
                             "pass it (`--dynamics DIR`).")
        reference = reference_uncertainty(dynamics, transitions.split("train"))
        ensemble = dynamics

        def scorer(policy: LearnedPolicy) -> dict[str, float]:
            return model_based_value(policy, transitions, ensemble, config, reference).to_dict()

    candidates = grid_configs(algo, base or default_config(algo), grid)
    points = grid if grid is not None else GRIDS[algo]
    table: list[dict[str, Any]] = []
    best: tuple[float, int, LearnedPolicy] | None = None
    for i, cfg in enumerate(candidates):
        policy = train_policy(algo, transitions, behavior, dynamics, cfg)
        scored = scorer(policy)
        if "score" not in scored:
            raise InputError(f"selection: the scorer must return a dict with 'score'; got keys {sorted(scored)}.")
        table.append({"index": i, "settings": dict(points[i]), **scored})
        if best is None or scored["score"] > best[0]:
            best = (float(scored["score"]), i, policy)
    assert best is not None
    chosen = best[2]
    chosen.config["selection"] = {"criterion": criterion, "settings": asdict(config),
                                  "table": table, "best_index": best[1]}
    return Selection(chosen, best[1], table)
