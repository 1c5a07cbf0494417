"""Short model rollouts branched from dataset states (MBPO, Janner et al. 2019; MOPO; MOReL; COMBO).

The learned ensemble (`clinical_mborl.dynamics.DynamicsEnsemble`) is used through the small
`DynamicsModel` protocol below. Each algorithm passes a `reward_fn` that turns one `ModelStep`
into (reward, halt): MOPO subtracts its uncertainty penalty, MOReL sends unknown state-actions to
the absorbing HALT state, COMBO keeps the model reward.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from clinical_mborl.cohort import ActionSpaceInfo, TransitionSet
from clinical_mborl.policies.buffers import Batch, concat
from clinical_mborl.policies.constraints import ClinicianPrior, ConstraintConfig, density_penalty

# (states [n, d], log pi_b [n, A] or None, generator) -> buffer actions: int64 [n] or scaled [n, k]
ActFn = Callable[[Tensor, Tensor | None, torch.Generator], Tensor]
# buffer actions -> dynamics actions (joint index, or doses in clinical units)
EnvFn = Callable[[Tensor], Tensor]
# ModelStep -> (rewards [n], halt [n] bool)
RewardFn = Callable[[Any], tuple[Tensor, Tensor]]


@runtime_checkable
class DynamicsModel(Protocol):
    """What the policy learners need from the learned dynamics ensemble."""

    feature_names: tuple[str, ...]
    action_space: ActionSpaceInfo
    n_steps: int
    gamma: float

    def step(self, states: Tensor, actions: Tensor, steps: Tensor, generator: torch.Generator) -> Any:
        """One sampled transition: next_states, rewards, done, truncated, disagreement, uncertainty."""
        ...

    def data_disagreement(self, transitions: TransitionSet) -> float:
        """The largest member disagreement seen on (s, a) pairs of the data (MOReL's scale)."""
        ...


def model_device(dynamics: Any) -> torch.device:
    """The device the ensemble computes on (CPU unless it is a module on another device)."""
    if isinstance(dynamics, nn.Module):
        for p in dynamics.parameters():
            return p.device
    device = getattr(dynamics, "device", None)
    return torch.device(device) if device is not None else torch.device("cpu")


@torch.no_grad()
def reference_uncertainty(dynamics: DynamicsModel, transitions: TransitionSet, batch_size: int = 8192) -> float:
    """Mean ensemble uncertainty u(s, a) on the data's own state-actions: the in-distribution level
    that uncertainty penalties are measured against (deterministic: u does not depend on sampling)."""
    a = transitions.arrays(normalised=True)
    if len(a) == 0:
        raise ValueError("reference_uncertainty needs at least one transition")
    device = model_device(dynamics)
    generator = torch.Generator(device=device).manual_seed(0)
    actions = torch.as_tensor(a.actions) if a.actions.ndim == 1 else torch.as_tensor(a.doses, dtype=torch.float32)
    total = 0.0
    for i in range(0, len(a), batch_size):
        sl = slice(i, i + batch_size)
        step = dynamics.step(torch.as_tensor(a.states[sl], device=device), actions[sl].to(device),
                             torch.as_tensor(a.step[sl], device=device), generator)
        total += float(step.uncertainty.double().sum())
    return total / len(a)


def excess_uncertainty(uncertainty: Tensor, reference: float) -> Tensor:
    """max(0, u / u_ref - 1): how far above the in-distribution level a state-action's uncertainty is.

    Penalising u itself, as MOPO does, costs every step; with outcome-only rewards that makes
    short stays (early death) look good. The excess form only charges leaving the data."""
    return (uncertainty / max(reference, 1e-12) - 1.0).clamp_min(0.0)


def keep_reward(step: Any) -> tuple[Tensor, Tensor]:
    """COMBO: the model's reward, no extra termination."""
    return step.rewards, torch.zeros_like(step.done, dtype=torch.bool)


@torch.no_grad()
def branch_rollouts(
    dynamics: DynamicsModel,
    act: ActFn,
    to_env: EnvFn,
    start: Batch,
    horizon: int,
    generator: torch.Generator,
    reward_fn: RewardFn,
    prior: ClinicianPrior | None = None,
    constraint: ConstraintConfig | None = None,
) -> Batch:
    """Roll the current policy `horizon` steps in the model from the states of `start`.

    Trajectories stop at the model's death/discharge/window end or at `halt`. Returns every
    generated transition (`is_real` False) on the model's device. Discrete rollouts carry
    log pi_b of each state; continuous ones subtract the clinician support penalty from rewards.
    """
    if start.steps is None:
        raise ValueError("rollout starts need their step index in the window")
    device = model_device(dynamics)
    s, steps = start.states.to(device), start.steps.to(device)
    log_pb = None if start.log_pb is None else start.log_pb.to(device)
    discrete = dynamics.action_space.kind == "discrete"
    out: list[Batch] = []
    for _ in range(horizon):
        if s.shape[0] == 0:
            break
        actions = act(s, log_pb, generator).to(device)
        env_actions = to_env(actions).to(device)
        step = dynamics.step(s, env_actions, steps, generator)
        rewards, halt = reward_fn(step)
        rewards = rewards.to(device=device, dtype=torch.float32)
        end = step.done.bool() | step.truncated.bool() | halt.bool()
        if not discrete and prior is not None and constraint is not None:
            rewards = rewards - density_penalty(prior.log_density_scaled(s, env_actions), constraint)
        next_s = step.next_states.to(device=device, dtype=torch.float32)
        next_log_pb = prior.log_proba(next_s) if (discrete and prior is not None) else None
        out.append(Batch(states=s, actions=actions, rewards=rewards, next_states=next_s, end=end,
                         is_real=torch.zeros_like(end), log_pb=log_pb, next_log_pb=next_log_pb))
        alive = ~end
        s, steps = next_s[alive], steps[alive] + 1
        log_pb = None if next_log_pb is None else next_log_pb[alive]
    if not out:
        raise ValueError("no rollout started: the start batch is empty")
    return concat(out)
