"""Model rollouts: discounting, termination and the softened sampler, against a tabular truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clinical_mborl.core.errors import InputError
from clinical_mborl.dynamics import ModelStep
from clinical_mborl.ope.model_based import model_based_returns, softened_sampler

from .tabular import TabularMDP, random_mdp, tabular_policies, true_value


class TabularEnsemble:
    """The true tabular MDP behind the `DynamicsEnsemble.step` interface (one-hot states)."""

    def __init__(self, mdp: TabularMDP) -> None:
        self.mdp, self.device = mdp, torch.device("cpu")
        self.n_steps, self.gamma = mdp.horizon, mdp.gamma

    def step(self, states, actions, steps, generator) -> ModelStep:
        s = states.argmax(dim=1)
        p = torch.as_tensor(self.mdp.P)[s, actions]
        nxt = torch.multinomial(p, 1, generator=generator).squeeze(1)
        done = nxt == self.mdp.n_states
        truncated = (steps + 1 >= self.n_steps) & ~done
        rewards = torch.as_tensor(self.mdp.R)[s, actions].float()
        next_states = torch.nn.functional.one_hot(torch.where(done, 0, nxt), self.mdp.n_states).float()
        zeros = torch.zeros(len(s))
        return ModelStep(next_states, rewards, done, truncated, done, zeros, zeros, torch.zeros(len(s), dtype=torch.int64))


class TabularPolicy:
    """A tabular policy speaking the Policy protocol on one-hot 'clinical' states."""

    action_kind = "discrete"

    def __init__(self, name: str, probs: np.ndarray) -> None:
        self.name, self.probs = name, probs
        self.feature_names = tuple(f"s{i}" for i in range(probs.shape[0]))

    def action_probabilities(self, states: np.ndarray) -> np.ndarray:
        return self.probs[np.asarray(states).argmax(axis=1)]

    def sample_actions(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        p = self.action_probabilities(states)
        return (p.cumsum(axis=1) > rng.random((len(p), 1))).argmax(axis=1)


@pytest.mark.parametrize("epsilon", [0.0, 0.3])
def test_rollout_returns_converge_to_the_true_value_of_the_softened_policy(epsilon):
    mdp, pi_b, pi_e = tabular_policies(3.0)
    rng = np.random.default_rng(0)
    starts = rng.choice(mdp.n_states, size=4000, p=mdp.mu0)
    sampler = softened_sampler(TabularPolicy("e", pi_e), TabularPolicy("b", pi_b), lambda x: x, epsilon, rng)
    g = model_based_returns(TabularEnsemble(mdp), sampler, torch.eye(mdp.n_states)[starts],
                            torch.zeros(4000, dtype=torch.int64), n_rollouts=5, seed=1)
    truth = true_value(mdp, (1 - epsilon) * pi_e + epsilon * pi_b)
    assert g.shape == (4000,)
    assert abs(g.mean() - truth) < 4 * g.std() / np.sqrt(g.size) + 1e-3
    assert abs(g.mean() - true_value(mdp, pi_b)) > 0.2  # power: not the clinician's value


def test_model_based_refuses_zero_rollouts():
    mdp = random_mdp(0)
    with pytest.raises(InputError):
        model_based_returns(TabularEnsemble(mdp), lambda s, k: torch.zeros(len(s), dtype=torch.int64),
                            torch.eye(mdp.n_states)[:1], torch.zeros(1, dtype=torch.int64), n_rollouts=0)
