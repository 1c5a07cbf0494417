"""Simulation: could Q-members that share patient resamples give FQE a tighter, still valid interval?

Rubin's rules over M independent refits (`clinical_mborl.ope.members`) count each refit's optimisation
noise as if it were sampling uncertainty. The bagged estimate's error needs only

    r^2 (1 + 1/K) + o^2 / (K J)

for K resamples with J initialisations each (r: resampling sd, o: optimisation sd). Members in pairs
that share a resample (J = 2) estimate o^2 within pairs (S_opt) and r^2 + o^2 / J from the pair means
(S_g). Three intervals for the bag's mean, M = K J = 10 members, 95% nominal, no evaluation-patient
noise (the part every variant treats alike):

- `plain`: Rubin's rules over all 10 as independent draws: (1 + 1/M) B, t with M - 1 dof;
- `subtract`: (1 + 1/K) S_g - S_opt / J (floored at S_g / K), t with Satterthwaite's dof -- unbiased
  for the variance, but the difference of two noisy terms makes the interval too short too often;
- `group means`: Rubin's rules over the K pair means: (1 + 1/K) S_g, t with K - 1 dof -- always
  conservative, counting o^2 / J instead of o^2.

    .venv/bin/python benchmarks/rubin_grouped_members.py            # ~20 s
"""

from __future__ import annotations

import numpy as np
from scipy.stats import t

K, J, REPS = 5, 2, 6000
CASES = ((0.03, 0.0), (0.03, 0.1), (0.05, 0.05), (0.01, 0.1))  # (r, o)


def covered(members: np.ndarray, variance: float, dof: float, truth: float = 0.0) -> bool:
    return bool(abs(members.mean() - truth) <= t.ppf(0.975, dof) * np.sqrt(variance))


def main() -> None:
    rng = np.random.default_rng(5)
    print("| r | o | plain | subtract | group means |")
    print("|---|---|---|---|---|")
    for r, o in CASES:
        hits = {"plain": 0, "subtract": 0, "group means": 0}
        for _ in range(REPS):
            theta = rng.normal(0, r) + np.repeat(rng.normal(0, r, size=K), J) + rng.normal(0, o, size=K * J)
            groups = theta.reshape(K, J)
            s_opt, s_g = groups.var(axis=1, ddof=1).mean(), groups.mean(axis=1).var(ddof=1)
            hits["plain"] += covered(theta, (1 + 1 / (K * J)) * theta.var(ddof=1), K * J - 1)
            added = (1 + 1 / K) * s_g - s_opt / J
            if added > s_g / K:
                dof = added**2 / (((1 + 1 / K) * s_g) ** 2 / (K - 1) + (s_opt / J) ** 2 / (K * (J - 1)))
            else:
                added, dof = s_g / K, K - 1
            hits["subtract"] += covered(theta, added, dof)
            hits["group means"] += covered(theta, (1 + 1 / K) * s_g, K - 1)
        print(f"| {r} | {o} | " + " | ".join(f"{hits[k] / REPS:.1%}" for k in hits) + " |")


if __name__ == "__main__":
    main()
