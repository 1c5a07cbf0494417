"""Small tabular MDPs whose true policy values are known exactly (test helper, not a test).

Finite horizon H, discount gamma, an absorbing terminal state (index S of the next-state axis).
The true value of a policy is the solution of the linear system (I - gamma P_pi) V = r_pi over
time-augmented states (t, s), t < H; Q_t(s, a) comes from backward induction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clinical_mborl.ope.data import OPEData
from clinical_mborl.ope.fqe import FQEData


@dataclass(frozen=True)
class TabularMDP:
    """P [S, A, S+1] (last column: terminate), R [S, A] rewards, mu0 [S] initial distribution."""

    P: np.ndarray
    R: np.ndarray
    mu0: np.ndarray
    horizon: int
    gamma: float

    @property
    def n_states(self) -> int:
        return int(self.R.shape[0])

    @property
    def n_actions(self) -> int:
        return int(self.R.shape[1])


def random_mdp(seed: int, n_states: int = 4, n_actions: int = 3, horizon: int = 5, gamma: float = 0.9,
               deterministic: bool = False) -> TabularMDP:
    """A random MDP; `deterministic` gives one-hot transitions and a single initial state."""
    rng = np.random.default_rng(seed)
    if deterministic:
        nxt = rng.integers(0, n_states + 1, size=(n_states, n_actions))
        P = np.eye(n_states + 1)[nxt]
        mu0 = np.eye(n_states)[0]
    else:
        P = rng.dirichlet(np.ones(n_states), size=(n_states, n_actions))
        end = rng.uniform(0.05, 0.3, size=(n_states, n_actions, 1))
        P = np.concatenate([P * (1 - end), end], axis=2)
        mu0 = rng.dirichlet(np.ones(n_states))
    R = rng.uniform(-1, 1, size=(n_states, n_actions))
    return TabularMDP(P, R, mu0, horizon, gamma)


def random_policy(seed: int, n_states: int, n_actions: int, floor: float = 0.05, sharp: float = 1.0) -> np.ndarray:
    """[S, A] stochastic policy with every probability >= floor."""
    rng = np.random.default_rng(seed)
    logits = sharp * rng.normal(size=(n_states, n_actions))
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return floor + (1 - floor * n_actions) * p


def true_value(mdp: TabularMDP, pi: np.ndarray) -> float:
    """Expected discounted return of `pi` by one linear solve over states (t, s)."""
    s, h = mdp.n_states, mdp.horizon
    r_pi = (pi * mdp.R).sum(axis=1)
    p_pi = np.einsum("sa,sax->sx", pi, mdp.P)[:, :s]  # transitions among non-terminal states
    n = s * h
    a = np.eye(n)
    for t in range(h - 1):
        a[t * s:(t + 1) * s, (t + 1) * s:(t + 2) * s] -= mdp.gamma * p_pi
    v = np.linalg.solve(a, np.tile(r_pi, h))
    return float(mdp.mu0 @ v[:s])


def q_values(mdp: TabularMDP, pi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q [H, S, A] and V [H, S] of `pi` by backward induction."""
    h, s = mdp.horizon, mdp.n_states
    q = np.zeros((h, s, mdp.n_actions))
    v = np.zeros((h + 1, s))
    for t in reversed(range(h)):
        q[t] = mdp.R + mdp.gamma * mdp.P[:, :, :s] @ v[t + 1]
        v[t] = (pi * q[t]).sum(axis=1)
    return q, v[:h]


def return_bounds(mdp: TabularMDP) -> tuple[float, float]:
    """A-priori bounds on any discounted return (rewards in [min R, max R], at most H steps)."""
    horizon_sum = float(np.sum(mdp.gamma ** np.arange(mdp.horizon)))
    lo, hi = min(float(mdp.R.min()), 0.0), max(float(mdp.R.max()), 0.0)
    return lo * horizon_sum, hi * horizon_sum


@dataclass(frozen=True)
class Episodes:
    states: np.ndarray  # [E, H] int (0 on padding)
    actions: np.ndarray  # [E, H] int (0 on padding)
    rewards: np.ndarray  # [E, H]
    mask: np.ndarray  # [E, H]


def simulate(mdp: TabularMDP, pi: np.ndarray, n: int, rng: np.random.Generator) -> Episodes:
    """n episodes of `pi`, vectorised over episodes."""
    h, s_n = mdp.horizon, mdp.n_states
    states = np.zeros((n, h), dtype=np.int64)
    actions = np.zeros((n, h), dtype=np.int64)
    rewards = np.zeros((n, h))
    mask = np.zeros((n, h), dtype=bool)
    s = rng.choice(s_n, size=n, p=mdp.mu0)
    alive = np.ones(n, dtype=bool)
    for t in range(h):
        a = (pi[s].cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
        states[alive, t], actions[alive, t], mask[alive, t] = s[alive], a[alive], True
        rewards[alive, t] = mdp.R[s, a][alive]
        nxt = (mdp.P[s, a].cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
        alive &= nxt < s_n
        s = np.where(nxt < s_n, nxt, 0)
    return Episodes(states, actions, rewards, mask)


def tabular_policies(sharp: float) -> tuple[TabularMDP, np.ndarray, np.ndarray]:
    """The suite's usual tabular MDP (seed 0), its clinician-like pi_b (seed 1) and pi_e (seed 2, `sharp`)."""
    mdp = random_mdp(0)
    return mdp, random_policy(1, mdp.n_states, mdp.n_actions), random_policy(2, mdp.n_states, mdp.n_actions,
                                                                             sharp=sharp)


def tabular_problem(n_episodes: int, sharp: float) -> tuple[TabularMDP, np.ndarray, np.ndarray, Episodes]:
    """`tabular_policies(sharp)` and `n_episodes` of pi_b (rng seed 0)."""
    mdp, pi_b, pi_e = tabular_policies(sharp)
    return mdp, pi_b, pi_e, simulate(mdp, pi_b, n_episodes, np.random.default_rng(0))


def ope_data(mdp: TabularMDP, ep: Episodes, pi_b: np.ndarray, pi_e: np.ndarray, *, with_q: bool = True,
             patient: np.ndarray | None = None, q_scale: float = 1.0) -> OPEData:
    """OPEData of `pi_e` on episodes drawn from `pi_b`; exact Q-values (times `q_scale`)."""
    t = np.broadcast_to(np.arange(mdp.horizon), ep.states.shape)
    q_sa = v_s = None
    if with_q:
        q, v = q_values(mdp, pi_e)
        q_sa, v_s = q_scale * q[t, ep.states, ep.actions], q_scale * v[t, ep.states]
    n = ep.states.shape[0]
    return OPEData.create(
        rewards=ep.rewards, mask=ep.mask, patient=np.arange(n) if patient is None else patient,
        pb=pi_b[ep.states, ep.actions], pe=pi_e[ep.states, ep.actions], gamma=mdp.gamma,
        q_sa=q_sa, v_s=v_s, return_bounds=return_bounds(mdp), pb_recommended=pi_b[ep.states, pi_e[ep.states].argmax(axis=2)],
    )


def fqe_data(mdp: TabularMDP, ep: Episodes, pi_e: np.ndarray, with_step: bool = False) -> FQEData:
    """Flat transitions with one-hot (t, s) features: FQE on them is tabular. `with_step` appends
    the one-hot window step, as `ope.policy_eval` ends its features (for backward FQE)."""
    s_n, h = mdp.n_states, mdp.horizon
    eye = np.eye(h * s_n, dtype=np.float32)
    e_idx, t_idx = np.nonzero(ep.mask)
    nxt_exists = np.zeros_like(ep.mask)
    nxt_exists[:, :-1] = ep.mask[:, 1:]
    end = ~nxt_exists[e_idx, t_idx]
    t_next = np.minimum(t_idx + 1, h - 1)
    s_next = ep.states[e_idx, t_next]
    features = eye[t_idx * s_n + ep.states[e_idx, t_idx]]
    next_features = np.where(end[:, None], 0.0, eye[t_next * s_n + s_next]).astype(np.float32)
    if with_step:
        steps = np.eye(h, dtype=np.float32)
        features = np.concatenate([features, steps[t_idx]], axis=1)
        next_features = np.concatenate([next_features, steps[t_next]], axis=1)
    return FQEData(
        features=features, actions=ep.actions[e_idx, t_idx], rewards=ep.rewards[e_idx, t_idx], end=end,
        next_features=next_features, next_policy=pi_e[s_next], patient=e_idx,
    )


def tabular_features(mdp: TabularMDP, with_step: bool = False) -> np.ndarray:
    """[H, S, H*S] the one-hot feature of every (t, s); [H, S, H*S + H] `with_step` (see `fqe_data`)."""
    h, s_n = mdp.horizon, mdp.n_states
    feats = np.eye(h * s_n, dtype=np.float32).reshape(h, s_n, -1)
    if not with_step:
        return feats
    steps = np.broadcast_to(np.eye(h, dtype=np.float32)[:, None, :], (h, s_n, h))
    return np.concatenate([feats, steps], axis=2)


def assert_reaches_empirical_q(q: np.ndarray, mdp: TabularMDP, ep: Episodes, pi_e: np.ndarray) -> None:
    """A tabular Q [H, S, A] equals the data's count-based MDP Q (tabular FQE's fixed point) on every
    seen (t, s, a), and so lies near the true Q."""
    q_emp, counts = empirical_q(mdp, ep, pi_e)
    seen = counts > 0
    assert np.abs(q - q_emp)[seen].max() < 0.02
    # ... which is itself a sampling-noisy version of the true Q
    q_true, _ = q_values(mdp, pi_e)
    assert np.abs(q - q_true)[seen].max() < 0.3


def empirical_q(mdp: TabularMDP, ep: Episodes, pi_e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q [H, S, A] of pi_e in the count-based MDP of the data (tabular FQE's fixed point), and
    the visit counts [H, S, A]."""
    h, s_n, a_n = mdp.horizon, mdp.n_states, mdp.n_actions
    counts = np.zeros((h, s_n, a_n))
    r_sum = np.zeros((h, s_n, a_n))
    p_next = np.zeros((h, s_n, a_n, s_n))
    for t in range(h):
        m = ep.mask[:, t]
        s, a = ep.states[m, t], ep.actions[m, t]
        np.add.at(counts[t], (s, a), 1.0)
        np.add.at(r_sum[t], (s, a), ep.rewards[m, t])
        if t + 1 < h:
            cont = ep.mask[m, t + 1]
            np.add.at(p_next[t], (s[cont], a[cont], ep.states[m, t + 1][cont]), 1.0)
    safe = np.maximum(counts, 1.0)
    q = np.zeros((h, s_n, a_n))
    v_next = np.zeros(s_n)
    for t in reversed(range(h)):
        q[t] = r_sum[t] / safe[t] + mdp.gamma * (p_next[t] / safe[t][..., None]) @ v_next
        v_next = (pi_e * q[t]).sum(axis=1)
    return q, counts
