"""Linear fitted Q evaluation, each iteration's regression solved exactly (ridge least squares).

The network FQE of `ope.fqe` stops each iteration's regression after a fixed number of Adam steps,
and its values move with that budget (docs/coverage.md, lesson 16). Here the regression has a
closed form, so there is no optimisation budget at all: with features x (the same model inputs,
plus a constant), the Q-model is

    Q(s, a) = x(s) . (theta_shared + theta_a),

one linear Q shared by every dose level plus each level's own deviation, and iteration k solves

    min  sum_i w_i (Q(s_i, a_i) - y_i)^2 + shared_penalty |theta_shared|^2 + action_penalty sum_a |theta_a|^2

exactly, for y_i = r_i + gamma * (1 - end_i) * sum_a pi_e(a | s'_i) Q_{k-1}(s'_i, a) (Q_0 = 0), over
`n_iterations` (default: window length + 1) iterations (linear FQE; Duan, Jia & Wang, ICML 2020).
The penalty on the deviations is what a rarely given dose level meets: with few rows its Q is
pulled toward the shared one (the value of "a dose like the others here"), not extrapolated
from a handful of rows. The normal equations' matrix depends only on the rows and the weights,
so it is factorised once per member and each iteration is one back-substitution. It is d (A + 1)
wide for d inputs and A dose levels (about 1,000 for the sepsis cohorts, well under a second to
factorise); a much larger action grid makes the factorisation the cost, growing as its cube.

Bootstrapped members (`FQEConfig.n_members`) use the Bayesian-bootstrap patient weights of the
network version (`ope.fqe_batches.member_weights`); the result is a `FittedQ` over a linear
`QNetwork`, so cross-fitting, DR/WDR and Rubin's interval use it unchanged.

>>> rng = np.random.default_rng(0)
>>> n = 64
>>> data = FQEData(features=np.eye(2, dtype=np.float32)[rng.integers(0, 2, n)],
...                actions=rng.integers(0, 2, n), rewards=np.ones(n), end=np.ones(n, bool),
...                next_features=np.zeros((n, 2), np.float32), next_policy=np.full((n, 2), 0.5),
...                patient=np.arange(n))
>>> q = fit_linear_fqe(data, n_actions=2, gamma=0.9, horizon=1, config=FQEConfig(
...     function_class="linear", hidden_sizes=(), n_members=1, shared_penalty=1e-6, action_penalty=1e-6))
>>> bool(np.allclose(q.q_values(data.features), 1.0, atol=1e-4))
True
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.linalg import cho_factor, cho_solve

from clinical_mborl.ope.fqe import FittedQ, FQEConfig, FQEData, QNetwork, check_fit_inputs
from clinical_mborl.ope.fqe_batches import member_weights


def _with_constant(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    return np.concatenate([x, np.ones((len(x), 1))], axis=1)


def normal_matrix(x: np.ndarray, actions: np.ndarray, weight: np.ndarray, n_actions: int,
                  shared_penalty: float, action_penalty: float) -> np.ndarray:
    """The ridge normal-equations matrix over (theta_shared, theta_0, ..., theta_{A-1}), each block
    d = x.shape[1] wide: sum_i w_i phi_i phi_i^T + the penalties, phi_i = [x_i, x_i at block a_i].

    >>> x = np.array([[1.0], [2.0]]); m = normal_matrix(x, np.array([0, 1]), np.ones(2), 2, 0.5, 0.25)
    >>> m.tolist()
    [[5.5, 1.0, 4.0], [1.0, 1.25, 0.0], [4.0, 0.0, 4.25]]
    """
    d = x.shape[1]
    m = np.zeros((d * (n_actions + 1), d * (n_actions + 1)))
    xw = x * weight[:, None]
    m[:d, :d] = xw.T @ x + shared_penalty * np.eye(d)
    for a in range(n_actions):
        rows = actions == a
        block = xw[rows].T @ x[rows]
        s = slice(d * (a + 1), d * (a + 2))
        m[:d, s] = m[s, :d] = block
        m[s, s] = block + action_penalty * np.eye(d)
    return m


def _right_side(x: np.ndarray, actions: np.ndarray, weight: np.ndarray, y: np.ndarray, n_actions: int) -> np.ndarray:
    d = x.shape[1]
    xy = x * (weight * y)[:, None]
    per_action = np.zeros((n_actions, d))
    np.add.at(per_action, actions, xy)
    return np.concatenate([xy.sum(axis=0), per_action.ravel()])


def _coefficients(theta: np.ndarray, d: int, n_actions: int) -> np.ndarray:
    """[d, A]: column a = theta_shared + theta_a."""
    return theta[:d, None] + theta[d:].reshape(n_actions, d).T


def fit_linear_fqe(data: FQEData, n_actions: int, gamma: float, horizon: int, config: FQEConfig,
                   value_bounds: tuple[float, float] | None = None) -> FittedQ:
    """Linear FQE on all rows of `data`, each iteration solved exactly; one member per bootstrap
    weight vector. `value_bounds` as in `ope.fqe.fit_fqe`."""
    check_fit_inputs(data, n_actions, value_bounds)
    bounds = value_bounds if config.clip_to_value_bounds else None
    x, x_next = _with_constant(data.features), _with_constant(data.next_features)
    d, actions = x.shape[1], np.asarray(data.actions, dtype=np.int64)
    rewards, live = np.asarray(data.rewards, dtype=np.float64), ~np.asarray(data.end, dtype=bool)
    pi_next = np.asarray(data.next_policy, dtype=np.float64)
    weights = member_weights(data.patient, config.n_members, config.seed)  # [n, M]
    members = []
    for m in range(weights.shape[1]):
        factor = cho_factor(normal_matrix(x, actions, weights[:, m], n_actions, config.shared_penalty,
                                          config.action_penalty))
        coef = np.zeros((d, n_actions))
        for _ in range(config.n_iterations or horizon + 1):
            v_next = ((x_next @ coef) * pi_next).sum(axis=1)
            if bounds is not None:
                v_next = np.clip(v_next, *bounds)
            y = rewards + gamma * live * v_next
            coef = _coefficients(cho_solve(factor, _right_side(x, actions, weights[:, m], y, n_actions)),
                                 d, n_actions)
        members.append(coef)
    net = QNetwork(d - 1, n_actions, (), len(members))
    with torch.no_grad():
        stacked = torch.as_tensor(np.stack(members), dtype=torch.float32)  # [M, d, A]
        net.weights[0].copy_(stacked[:, :-1])
        net.biases[0].copy_(stacked[:, -1:])
    return FittedQ(net.eval(), 1.0, bounds, n_actions)
