"""Benchmark: patient bootstrap of WIS and WDR, vectorised versus a loop over resamples.

The vectorised path is what `evaluate` runs: patient statistics S [P, K], count matrix C [B, P]
generated chunk by chunk, replicates f(C @ S), BCa with the leave-one-patient-out jackknife,
and paired differences against the clinician. The reference path loops over the same
resamples, gathers each resample's stays and recomputes WIS and WDR from scratch with
plain formulas written here independently of the package, projected onto the return range as the
package's estimates are. Both must agree.

With `--q-members M`, WDR's Q-values come from M refitted Q-models and resample b uses member
b mod M (bootstrapped FQE), in both paths.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ope.py [--patients 5000 --steps 18 --resamples 2000]
     [--q-members 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from clinical_mborl.ope import (
    OnPolicyValue,
    OPEData,
    ResamplePlan,
    WeightedDoublyRobust,
    WeightedImportanceSampling,
    bootstrap_all,
    kish_ess,
)
from clinical_mborl.ope.intervals import replicates

BUDGET_S = 10.0


def synthetic(n_patients: int, n_steps: int, seed: int, q_members: int = 1) -> OPEData:
    """Sepsis-like shapes: stays of 1..T steps, terminal +-1 outcome (80% survive), a softened
    deterministic policy that agrees with the clinician on 70% of steps, a roughly right Q (with
    `q_members` > 1: that many refitted Q-models, each off by its own noise)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, n_steps + 1, size=n_patients)
    mask = np.arange(n_steps)[None, :] < lengths[:, None]
    shape = (n_patients, n_steps)
    last = np.arange(n_steps)[None, :] == (lengths - 1)[:, None]
    rewards = np.where(last, rng.choice([-1.0, 1.0], size=(n_patients, 1), p=[0.2, 0.8]), 0.0)
    pb = rng.beta(4.0, 2.0, size=shape)  # clinician probability of the action taken
    pe = (rng.random(shape) < 0.7).astype(float)  # deterministic policy: 1 if it agrees, else 0
    to_go = (lengths[:, None] - 1 - np.arange(n_steps)[None, :]).clip(min=0)
    q = 0.6 * 0.99**to_go + rng.normal(0.0, 0.1, size=shape)
    v = q + rng.normal(0.0, 0.05, size=shape)
    if q_members > 1:
        shift = rng.normal(0.0, 0.05, size=(q_members, 1, 1))
        members = dict(q_sa_members=q + shift, v_s_members=v + shift)
        return OPEData.create(rewards, mask, np.arange(n_patients), pb=pb, pe=pe, gamma=0.99,
                              return_bounds=(-1.0, 1.0), soften_epsilon=0.01, **members)
    return OPEData.create(rewards, mask, np.arange(n_patients), pb=pb, pe=pe, gamma=0.99, q_sa=q, v_s=v,
                          return_bounds=(-1.0, 1.0), soften_epsilon=0.01)


def wis_naive(r: np.ndarray, pb: np.ndarray, pe: np.ndarray, gamma: float) -> float:
    big_w = np.prod(pe / pb, axis=1)
    g = (r * gamma ** np.arange(r.shape[1])).sum(axis=1)
    return float((big_w * g).sum() / big_w.sum())


def wdr_naive(r: np.ndarray, pb: np.ndarray, pe: np.ndarray, q: np.ndarray, v: np.ndarray, gamma: float) -> float:
    w = np.cumprod(pe / pb, axis=1)
    total = 0.0
    for t in range(r.shape[1]):
        w_prev = w[:, t - 1] if t > 0 else np.ones(r.shape[0])
        total += gamma**t * ((w[:, t] * (r[:, t] - q[:, t])).sum() / w[:, t].sum()
                             + (w_prev * v[:, t]).sum() / w_prev.sum())
    return total


def loop_bootstrap(data: OPEData, plan: ResamplePlan) -> tuple[np.ndarray, np.ndarray]:
    assert data.q_sa is not None and data.v_s is not None
    wis, wdr = [], []
    b = 0
    for chunk in plan.chunks():
        for counts in chunk:
            idx = np.repeat(np.arange(data.n_episodes), counts[data.patient])  # a patient's stays together
            r, pb, pe = data.rewards[idx], data.pb[idx], data.pe[idx]
            q, v = data.q_sa, data.v_s
            if data.q_sa_members is not None and data.v_s_members is not None:  # resample b: member b mod M
                q, v = data.q_sa_members[b % data.n_q_members], data.v_s_members[b % data.n_q_members]
            wis.append(wis_naive(r, pb, pe, data.gamma))
            wdr.append(wdr_naive(r, pb, pe, q[idx], v[idx], data.gamma))
            b += 1
    # every estimate is projected onto the return range (no value can lie outside it)
    return np.clip(wis, *data.return_bounds), np.clip(wdr, *data.return_bounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--steps", type=int, default=18)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--q-members", type=int, default=1, help="Refitted Q-models paired with resamples.")
    args = parser.parse_args()

    data = synthetic(args.patients, args.steps, args.seed, args.q_members)
    plan = ResamplePlan(data.n_patients, args.resamples, seed=args.seed)
    ests = [WeightedImportanceSampling(), WeightedDoublyRobust()]

    t0 = time.perf_counter()
    _, intervals, diffs = bootstrap_all(ests, OnPolicyValue(), data, plan, 0.95, "bca")
    t_vec = time.perf_counter() - t0
    t0 = time.perf_counter()
    wis_loop, wdr_loop = loop_bootstrap(data, plan)
    t_loop = time.perf_counter() - t0

    wis_vec, wdr_vec = (replicates(e, data, plan).boot for e in ests)
    err = max(np.abs(wis_vec - wis_loop).max(), np.abs(wdr_vec - wdr_loop).max())
    ess = kish_ess(data.cumulative_weights()[0][:, -1])
    print(f"data: {data.n_patients} patients x {data.n_steps} steps, {data.mask.sum()} transitions, "
          f"Kish ESS {ess:.0f}, B = {plan.n_resamples}, Q-members {max(1, data.n_q_members)}")
    for name, iv in intervals.items():
        d = diffs[name]
        print(f"  {name:>4}: {iv.value:+.4f}  95% BCa [{iv.low:+.4f}, {iv.high:+.4f}]  "
              f"minus clinician {d.value:+.4f} [{d.low:+.4f}, {d.high:+.4f}]")
    print(f"vectorised (WIS + WDR + clinician + paired differences, BCa): {t_vec:.2f} s")
    print(f"loop over resamples (WIS + WDR only, no BCa):                 {t_loop:.2f} s")
    print(f"speed-up: {t_loop / t_vec:.1f}x; max |vectorised - loop| over replicates: {err:.2e}; "
          f"resamples projected onto the return range: WIS {intervals['wis'].n_projected}, "
          f"WDR {intervals['wdr'].n_projected}")
    ok = err < 1e-8 and t_vec <= BUDGET_S
    print("PASS" if ok else "FAIL", f"(budget {BUDGET_S:.0f} s, agreement 1e-8)")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
