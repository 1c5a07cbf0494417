"""Batched rollouts in the learned environment (MBPO-style branched rollouts, MOReL HALT).

`rollout` starts from given (normalised) states and window steps, asks `policy(states, steps)`
for actions, and steps the ensemble `horizon` times; rows stop at death/discharge, at the window
end, or (with `halt_threshold`) when the elites disagree more than the threshold (MOReL's unknown
region: the row is `halted`, and the caller applies its HALT penalty).

>>> from clinical_mborl.cohort.toy import make_toy_transitions
>>> from clinical_mborl.dynamics import DynamicsConfig, fit_dynamics
>>> ts = make_toy_transitions(30, seed=0)
>>> ens = fit_dynamics(ts, DynamicsConfig(n_members=3, n_elites=2, hidden_sizes=(8,), max_epochs=1), quiet=True)
>>> s, t = start_states(ts.split("train"))
>>> out = rollout(ens, lambda x, k: torch.zeros(len(x), dtype=torch.int64), s, t, 3, torch.Generator().manual_seed(0))
>>> out.states.shape[0]
3
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from clinical_mborl.cohort import TransitionSet
from clinical_mborl.dynamics.ensemble import DynamicsEnsemble

PolicyFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Rollout:
    """Time-major rollout tensors [H, n, ...]; `valid[t, i]` marks transitions that happened."""

    states: Tensor  # [H, n, d]
    actions: Tensor  # [H, n] int64 or [H, n, k]
    steps: Tensor  # [H, n]
    rewards: Tensor  # [H, n]
    next_states: Tensor  # [H, n, d]
    done: Tensor  # [H, n] death or discharge
    truncated: Tensor  # [H, n] window end
    halted: Tensor  # [H, n] disagreement above the threshold (MOReL)
    disagreement: Tensor  # [H, n]
    uncertainty: Tensor  # [H, n]
    valid: Tensor  # [H, n] bool

    def flat(self) -> dict[str, Tensor]:
        """Only the valid transitions, flattened (for a replay buffer)."""
        m = self.valid
        return {k: v[m] for k, v in vars(self).items() if k != "valid"}


def start_states(transitions: TransitionSet, device: str | torch.device = "cpu") -> tuple[Tensor, Tensor]:
    """Every row's normalised state and window step: the usual pool of rollout starts."""
    a = transitions.arrays(normalised=True)
    return torch.as_tensor(a.states, device=device), torch.as_tensor(a.step, device=device)


def rollout(
    ensemble: DynamicsEnsemble,
    policy: PolicyFn,
    states: Tensor,
    steps: Tensor,
    horizon: int,
    generator: torch.Generator,
    halt_threshold: float | None = None,
) -> Rollout:
    """Roll `policy` out for up to `horizon` model steps from every start row."""
    dev = ensemble.device
    s, k = states.to(dev, torch.float32), steps.to(dev)
    alive = torch.ones(s.shape[0], dtype=torch.bool, device=dev)
    keys = ("states", "actions", "steps", "rewards", "next_states", "done", "truncated", "halted",
            "disagreement", "uncertainty", "valid")
    rec: dict[str, list[Tensor]] = {key: [] for key in keys}
    for _ in range(horizon):
        with torch.no_grad():
            a = policy(s, k)
        out = ensemble.step(s, a, k, generator)
        halted = (out.disagreement > halt_threshold) if halt_threshold is not None else torch.zeros_like(alive)
        for key, val in (("states", s), ("actions", a.to(dev)), ("steps", k), ("rewards", out.rewards),
                         ("next_states", out.next_states), ("done", out.done), ("truncated", out.truncated),
                         ("halted", halted), ("disagreement", out.disagreement),
                         ("uncertainty", out.uncertainty), ("valid", alive.clone())):
            rec[key].append(val)
        alive = alive & ~(out.done | out.truncated | halted)
        s, k = out.next_states, k + 1
        if not bool(alive.any()):
            break
    return Rollout(**{key: torch.stack(v) for key, v in rec.items()})


class LearnedEnvironment:
    """A batch of simulated patients: `reset` draws start rows, `step` advances the live ones.

    Finished rows (done, truncated) stay finished until the next `reset`.
    """

    def __init__(self, ensemble: DynamicsEnsemble, start_pool: tuple[Tensor, Tensor], generator: torch.Generator) -> None:
        self.ensemble, self.generator = ensemble, generator
        self.pool_states = start_pool[0].to(ensemble.device, torch.float32)
        self.pool_steps = start_pool[1].to(ensemble.device)
        self.states = self.pool_states[:0]
        self.steps = self.pool_steps[:0]
        self.alive = torch.zeros(0, dtype=torch.bool, device=ensemble.device)

    def reset(self, n: int) -> tuple[Tensor, Tensor]:
        """Draw `n` start rows (with replacement); returns (states, steps)."""
        idx = torch.randint(self.pool_states.shape[0], (n,), generator=self.generator, device=self.ensemble.device)
        self.states, self.steps = self.pool_states[idx], self.pool_steps[idx]
        self.alive = torch.ones(n, dtype=torch.bool, device=self.ensemble.device)
        return self.states, self.steps

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Advance; returns (next_states, rewards, done, truncated); finished rows get reward 0."""
        out = self.ensemble.step(self.states, actions, self.steps, self.generator)
        was_alive = self.alive
        rewards = torch.where(was_alive, out.rewards, torch.zeros_like(out.rewards))
        self.alive = was_alive & ~(out.done | out.truncated)
        self.states = torch.where(was_alive.unsqueeze(-1), out.next_states, self.states)
        self.steps = self.steps + was_alive.long()
        return self.states, rewards, out.done & was_alive, out.truncated & was_alive
