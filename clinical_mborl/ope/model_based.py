"""Model-based value estimate: roll the (softened) policy out in the learned dynamics ensemble.

From each evaluation stay's initial state, `n_rollouts` simulated stays are drawn (a random elite
per step, termination and outcome from the ensemble's heads) until death, discharge or the
window end; the stay's model return is the mean discounted return of its rollouts. The
estimate is the mean over stays (`estimators.ModelBasedEstimate`); its patient-bootstrap
interval treats the ensemble as fixed, so it omits model-fitting error -- read it beside the
ensemble's holdout calibration and disagreement.

>>> import torch
>>> from clinical_mborl.cohort.toy import make_toy_transitions
>>> from clinical_mborl.dynamics import DynamicsConfig, fit_dynamics
>>> ts = make_toy_transitions(30, seed=0)
>>> ens = fit_dynamics(ts, DynamicsConfig(n_members=3, n_elites=2, hidden_sizes=(8,), max_epochs=1), quiet=True)
>>> zero = lambda s, k: torch.zeros(len(s), dtype=torch.int64)
>>> g = model_based_returns(ens, zero, torch.zeros(5, 4), torch.zeros(5, dtype=torch.int64), n_rollouts=3, seed=0)
>>> g.shape
(5,)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from clinical_mborl.core.errors import InputError
from clinical_mborl.core.policy import Policy
from clinical_mborl.dynamics import DynamicsEnsemble, rollout

PolicyFn = Callable[[Tensor, Tensor], Tensor]


def model_based_returns(
    dynamics: DynamicsEnsemble,
    policy_fn: PolicyFn,
    start_states: Tensor,
    start_steps: Tensor,
    n_rollouts: int = 10,
    seed: int = 0,
    horizon: int | None = None,
) -> np.ndarray:
    """[E] mean discounted return of `n_rollouts` model rollouts from each (normalised) start state."""
    if n_rollouts < 1:
        raise InputError(f"model-based OPE: expected n_rollouts >= 1, got {n_rollouts}.")
    n = start_states.shape[0]
    states = start_states.repeat_interleave(n_rollouts, dim=0)
    steps = start_steps.repeat_interleave(n_rollouts, dim=0)
    gen = torch.Generator(device=dynamics.device).manual_seed(seed)
    out = rollout(dynamics, policy_fn, states, steps, horizon or dynamics.n_steps, gen)
    valid = out.valid.to(torch.float64)
    discount = dynamics.gamma ** torch.arange(valid.shape[0], dtype=torch.float64, device=valid.device)
    g = (discount[:, None] * out.rewards.to(torch.float64) * valid).sum(dim=0)
    return g.view(n, n_rollouts).mean(dim=1).cpu().numpy()


def softened_sampler(
    policy: Policy,
    behavior: Policy,
    inverse_normalise: Callable[[np.ndarray], np.ndarray],
    epsilon: float,
    rng: np.random.Generator,
) -> PolicyFn:
    """Sample from pi' = (1 - eps) pi_e + eps pi_b on normalised model states.

    States are mapped back to clinical units for the `Policy` protocol; a row follows the
    clinician with probability eps, so the evaluated policy is the same softened one the
    importance-sampling estimators use.
    """

    def act(states: Tensor, steps: Tensor) -> Tensor:
        raw = inverse_normalise(states.detach().cpu().numpy())
        actions = np.asarray(policy.sample_actions(raw, rng))
        if epsilon > 0:
            use_b = np.asarray(rng.random(raw.shape[0])) < epsilon
            if use_b.any():
                actions[use_b] = np.asarray(behavior.sample_actions(raw[use_b], rng))
        return torch.as_tensor(actions, device=states.device)

    return act
