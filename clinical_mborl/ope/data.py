"""`OPEData`: the padded episode arrays every off-policy estimator reads.

One row per ICU stay (episode), one column per decision step, padded to the longest stay.
Past the end of a stay the process sits in an absorbing state: reward 0, Q 0, V 0, and both
policies take the (only) action with probability 1, so the importance ratio is 1 and the
cumulative weight keeps its last value. Per-decision estimators rely on this: a stay that has
ended still counts in the step-t normaliser (it contributes reward 0), which is what keeps
them consistent when stays have different lengths.

>>> import numpy as np
>>> d = OPEData.create(rewards=np.array([[0.0, 1.0], [-1.0, 0.0]]),
...                    mask=np.array([[True, True], [True, False]]),
...                    patient=np.array([7, 9]), pb=np.full((2, 2), 0.5),
...                    pe=np.full((2, 2), 0.5), gamma=0.9)
>>> d.returns().round(3).tolist(), d.n_patients
([0.9, -1.0], 2)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from clinical_mborl.core.errors import InputError


def soften(pe: np.ndarray, pb: np.ndarray, epsilon: float) -> np.ndarray:
    """Mix the evaluation policy with the clinician: pi' = (1 - eps) * pi_e + eps * pi_b.

    Applied to the probability (or density) of one action it gives the softened policy's
    probability of that action. A deterministic policy becomes absolutely continuous with
    respect to the clinician, so every importance ratio is at least `eps`.

    >>> soften(np.array([0.0, 1.0]), np.array([0.5, 0.5]), 0.1).round(3).tolist()
    [0.05, 0.95]
    """
    if not 0.0 <= epsilon < 1.0:
        raise InputError(f"softening epsilon: expected 0 <= eps < 1, got {epsilon}.")
    return (1.0 - epsilon) * np.asarray(pe, dtype=np.float64) + epsilon * np.asarray(pb, dtype=np.float64)


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """G_i = sum_t gamma^t r_it for padded rewards [E, T] (zero on padding)."""
    return rewards @ (gamma ** np.arange(rewards.shape[1]))


@dataclass(frozen=True)
class OPEData:
    """Episodes of one evaluation policy against the clinician; build with `OPEData.create`.

    Attributes:
        rewards: [E, T] rewards, 0 on padding.
        mask: [E, T] True where step t of stay i exists (a prefix of each row).
        patient: [E] patient index 0..P-1; the bootstrap resamples patients, not stays.
        pb: [E, T] clinician (behaviour) probability or density of the action taken; 1 on padding.
        pe: [E, T] evaluation-policy probability or density of the action taken, already
            softened with `soften_epsilon`; 1 on padding.
        gamma: discount.
        return_bounds: (G_min, G_max), bounds on any discounted return (HCOPE normalisation).
        q_sa: [E, T] Q^pi_e(s_t, a_t) for DR/WDR, 0 on padding (same softened policy as `pe`).
        v_s: [E, T] V^pi_e(s_t) = sum_a pi_e(a|s_t) Q(s_t, a), 0 on padding.
        pb_recommended: [E, T] clinician probability of the evaluation policy's recommended
            action, for the support diagnostic; 1 on padding.
        model_returns: [E] mean discounted return of model rollouts from each stay's initial state.
        soften_epsilon: the epsilon `pe` was softened with (reported, not re-applied).
        q_sa_members, v_s_members: [M, E, T] the same values from each of M refitted Q-models
            (bootstrapped FQE); `q_sa`, `v_s` are then their averages. The bootstrap pairs
            resample b with member b mod M (`intervals.bootstrap_all`).
        sensitivity: (Lambda, "lower" | "upper") -> (q_sa members, v_s members) [M, E, T] of the
            marginal-sensitivity bound's Q-model (`ope.sensitivity`).
    """

    rewards: np.ndarray
    mask: np.ndarray
    patient: np.ndarray
    pb: np.ndarray
    pe: np.ndarray
    gamma: float
    return_bounds: tuple[float, float]
    q_sa: np.ndarray | None = None
    v_s: np.ndarray | None = None
    pb_recommended: np.ndarray | None = None
    model_returns: np.ndarray | None = None
    soften_epsilon: float = 0.0
    q_sa_members: np.ndarray | None = None
    v_s_members: np.ndarray | None = None
    sensitivity: dict[tuple[float, str], tuple[np.ndarray, np.ndarray]] | None = None

    @property
    def n_q_members(self) -> int:
        """How many refitted Q-models the data carry (0 without members)."""
        return 0 if self.q_sa_members is None else int(self.q_sa_members.shape[0])

    def with_q_member(self, m: int) -> OPEData:
        """These data with member m's Q-values in place of the average."""
        if self.q_sa_members is None or self.v_s_members is None:
            raise InputError("OPE: these data carry no Q-model members.")
        return replace(self, q_sa=self.q_sa_members[m], v_s=self.v_s_members[m])

    def with_sensitivity_bound(self, lam: float, side: str) -> OPEData:
        """These data with the Q-members of one sensitivity bound in place of FQE's."""
        if self.sensitivity is None or (lam, side) not in self.sensitivity:
            raise InputError(f"OPE: these data carry no {side} sensitivity bound at Lambda = {lam}.")
        qm, vm = self.sensitivity[(lam, side)]
        return replace(self, q_sa=qm.mean(axis=0), v_s=vm.mean(axis=0), q_sa_members=qm, v_s_members=vm,
                       sensitivity=None)

    @classmethod
    def create(
        cls,
        rewards: np.ndarray,
        mask: np.ndarray,
        patient: np.ndarray,
        pb: np.ndarray,
        pe: np.ndarray,
        gamma: float,
        *,
        return_bounds: tuple[float, float] | None = None,
        q_sa: np.ndarray | None = None,
        v_s: np.ndarray | None = None,
        pb_recommended: np.ndarray | None = None,
        model_returns: np.ndarray | None = None,
        soften_epsilon: float = 0.0,
        q_sa_members: np.ndarray | None = None,
        v_s_members: np.ndarray | None = None,
        sensitivity: dict[tuple[float, str], tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> OPEData:
        """Validate, relabel patients 0..P-1, zero the padding, soften `pe` with the clinician.

        `return_bounds` defaults to the range of the observed discounted returns; pass the
        a-priori bounds implied by the reward specification where they are known (the
        high-confidence bound is only valid if no return can leave them).
        """
        mask = np.asarray(mask, dtype=bool)
        if mask.ndim != 2 or mask.shape[0] == 0 or mask.shape[1] == 0:
            raise InputError(f"OPE mask: expected a non-empty [episodes, steps] array, got shape {mask.shape}.")
        shape = mask.shape
        if not mask[:, 0].all() or (mask[:, 1:] & ~mask[:, :-1]).any():
            raise InputError("OPE mask: expected every stay to start at step 0 with no gaps; "
                             "build it from `TransitionSet.episodes()`.")
        if not 0.0 < gamma <= 1.0:
            raise InputError(f"OPE gamma: expected 0 < gamma <= 1, got {gamma}.")
        r = _step_array("rewards", rewards, shape, mask, pad=0.0)
        b = _step_array("pb", pb, shape, mask, pad=1.0)
        e = _step_array("pe", pe, shape, mask, pad=1.0)
        if (b[mask] <= 0).any():
            raise InputError("OPE pb: the clinician model gives probability 0 to some action the clinician "
                             "took; expected > 0 everywhere on the data. Use a calibrated, smoothed "
                             "behaviour model.")
        if (e[mask] < 0).any():
            raise InputError("OPE pe: expected non-negative probabilities/densities.")
        patient = np.asarray(patient)
        if patient.shape != (shape[0],):
            raise InputError(f"OPE patient: expected shape ({shape[0]},), got {patient.shape}.")
        _, patient_index = np.unique(patient, return_inverse=True)
        q = None if q_sa is None else _step_array("q_sa", q_sa, shape, mask, pad=0.0)
        v = None if v_s is None else _step_array("v_s", v_s, shape, mask, pad=0.0)
        if (q is None) != (v is None):
            raise InputError("OPE q_sa/v_s: expected both (a Q-model's values) or neither.")
        qm, vm = _members(q_sa_members, v_s_members, shape, mask)
        if qm is not None and vm is not None:
            if q is not None:
                raise InputError("OPE q_sa_members: pass either q_sa/v_s or the members (averaged here), not both.")
            q, v = qm.mean(axis=0), vm.mean(axis=0)
        rec = None if pb_recommended is None else _step_array("pb_recommended", pb_recommended, shape, mask, pad=1.0)
        mret = None
        if model_returns is not None:
            mret = np.asarray(model_returns, dtype=np.float64)
            if mret.shape != (shape[0],) or not np.isfinite(mret).all():
                raise InputError(f"OPE model_returns: expected finite values of shape ({shape[0]},).")
        g = discounted_returns(r, gamma)
        lo, hi = _return_bounds(g, return_bounds)
        e = np.where(mask, soften(e, b, soften_epsilon), 1.0)
        bounds = None
        if sensitivity:
            bounds = {}
            for key, (sq, sv) in sensitivity.items():
                mq, mv = _members(sq, sv, shape, mask)
                if mq is None or mv is None:
                    raise InputError(f"OPE sensitivity {key}: expected q_sa and v_s members of shape [M, {shape[0]}, "
                                     f"{shape[1]}].")
                bounds[(float(key[0]), str(key[1]))] = (mq, mv)
        return cls(r, mask, patient_index.astype(np.int64), b, e, float(gamma), (lo, hi),
                   q, v, rec, mret, float(soften_epsilon), qm, vm, bounds)

    # ----------------------------------------------------------------- sizes
    @property
    def n_episodes(self) -> int:
        return int(self.mask.shape[0])

    @property
    def n_steps(self) -> int:
        return int(self.mask.shape[1])

    @property
    def n_patients(self) -> int:
        return int(self.patient.max()) + 1

    @property
    def discounts(self) -> np.ndarray:
        """[T] gamma^t."""
        return self.gamma ** np.arange(self.n_steps)

    # ----------------------------------------------------------------- derived arrays
    def returns(self) -> np.ndarray:
        """[E] observed discounted returns G_i."""
        return discounted_returns(self.rewards, self.gamma)

    def ratios(self) -> np.ndarray:
        """[E, T] per-step importance ratios pe / pb (1 on padding)."""
        return self.pe / self.pb

    def cumulative_weights(self, clip: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """[E, T] w_it = min(prod_{k<=t} rho_ik, clip) and [E, T] whether the cap was active.

        >>> d = OPEData.create(np.zeros((1, 3)), np.ones((1, 3), bool), np.zeros(1),
        ...                    pb=np.full((1, 3), 0.25), pe=np.ones((1, 3)), gamma=1.0)
        >>> w, c = d.cumulative_weights(clip=20.0)
        >>> w.tolist(), c.tolist()
        ([[4.0, 16.0, 20.0]], [[False, False, True]])
        """
        raw = np.cumprod(self.ratios(), axis=1)
        if clip is None:
            return raw, np.zeros(raw.shape, dtype=bool)
        if clip <= 0:
            raise InputError(f"weight clip: expected a positive cap on the cumulative ratio, got {clip}.")
        return np.minimum(raw, clip), raw > clip

    def patient_sums(self, episode_stats: np.ndarray) -> np.ndarray:
        """Sum per-episode statistics [E, K] over each patient's stays -> [P, K]."""
        out = np.zeros((self.n_patients, episode_stats.shape[1]), dtype=np.float64)
        np.add.at(out, self.patient, episode_stats)
        return out


def _step_array(name: str, values: np.ndarray, shape: tuple[int, ...], mask: np.ndarray, pad: float) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != shape:
        raise InputError(f"OPE {name}: expected shape {shape} (episodes, steps), got {arr.shape}.")
    if not np.isfinite(arr[mask]).all():
        raise InputError(f"OPE {name}: expected finite values on every observed step.")
    return np.where(mask, arr, pad)


def _members(q: np.ndarray | None, v: np.ndarray | None, shape: tuple[int, ...], mask: np.ndarray
             ) -> tuple[np.ndarray | None, np.ndarray | None]:
    if q is None and v is None:
        return None, None
    if q is None or v is None:
        raise InputError("OPE q_sa_members/v_s_members: expected both (the Q-models' values) or neither.")
    q, v = np.asarray(q, dtype=np.float64), np.asarray(v, dtype=np.float64)
    if q.ndim != 3 or q.shape[1:] != shape or v.shape != q.shape or q.shape[0] < 1:
        raise InputError(f"OPE q_sa_members/v_s_members: expected shape [M, {shape[0]}, {shape[1]}], got "
                         f"{q.shape} and {v.shape}.")
    return (np.stack([_step_array("q_sa_members", m, shape, mask, 0.0) for m in q]),
            np.stack([_step_array("v_s_members", m, shape, mask, 0.0) for m in v]))


def _return_bounds(g: np.ndarray, given: tuple[float, float] | None) -> tuple[float, float]:
    if given is None:
        lo, hi = float(g.min()), float(g.max())
        return (lo, hi) if hi > lo else (lo, lo + 1.0)
    lo, hi = float(given[0]), float(given[1])
    tol = 1e-9 * max(1.0, abs(lo), abs(hi))
    if not lo < hi or g.min() < lo - tol or g.max() > hi + tol:
        raise InputError(f"OPE return_bounds: expected G_min < G_max containing every observed discounted "
                         f"return, got ({lo}, {hi}); derive them from the reward specification.")
    return lo, hi
