"""A tiny synthetic `TransitionSet` for tests, examples and doc-strings (no EHR needed).

States follow a noisy linear system, a softmax clinician picks dose levels from the state,
and episodes end in death (reward -1), discharge (+1) or window truncation (outcome reward).

>>> ts = make_toy_transitions(n_patients=20, seed=0)
>>> sorted(set(ts.frame["split"].to_list()))
['test', 'train', 'val']
"""

from __future__ import annotations

import numpy as np
import polars as pl

from clinical_mborl.cohort.manifest import (
    ActionDimensionInfo,
    ActionSpaceInfo,
    CohortManifest,
    SplitCounts,
    StateFeatureInfo,
)
from clinical_mborl.cohort.spec import ActionDimensionSpec, CohortSpec, FeatureSpec, TimeSpec
from clinical_mborl.cohort.transitions import NEXT_PREFIX, TransitionSet
from clinical_mborl.core.io import sha256_bytes

TOY_FEATURES = ("map_mmhg", "lactate_mmol_l", "heart_rate_bpm", "creatinine_mg_dl")
TOY_MEAN = np.array([75.0, 2.5, 95.0, 1.4])
TOY_STD = np.array([12.0, 1.5, 15.0, 0.8])


def toy_spec(n_levels: int = 3, continuous: bool = False, n_steps: int = 6) -> CohortSpec:
    features = [
        FeatureSpec(name=n, source=n, unit="u", valid_range=(-1e6, 1e6)) for n in TOY_FEATURES
    ]
    binning = "continuous" if continuous else "quantile"
    actions = [
        ActionDimensionSpec(name="iv_fluid_ml", treatments={"saline": 1.0}, aggregation="amount_sum",
                            unit="mL", binning=binning, n_levels=n_levels),
        ActionDimensionSpec(name="norepinephrine_ug_kg_min", treatments={"norepinephrine": 1.0},
                            aggregation="max_rate", unit="ug/kg/min", binning=binning, n_levels=n_levels),
    ]
    return CohortSpec(name="toy", description="synthetic toy cohort", features=features, actions=actions,
                      time=TimeSpec(step_hours=4.0, window_end_hours=4.0 * n_steps))


def make_toy_transitions(
    n_patients: int = 60, seed: int = 0, n_levels: int = 3, continuous: bool = False, n_steps: int = 6
) -> TransitionSet:
    """Simulate `n_patients` toy stays (one per patient) and wrap them as a TransitionSet."""
    rng = np.random.default_rng(seed)
    spec = toy_spec(n_levels, continuous, n_steps)
    d, k = len(TOY_FEATURES), 2
    median = [0.0] + [float(500 * (i + 1)) for i in range(n_levels - 1)]
    median_ne = [0.0] + [float(0.05 * (i + 1)) for i in range(n_levels - 1)]
    rows: list[dict[str, object]] = []
    z = rng.normal(size=(n_patients, d))
    alive = np.ones(n_patients, dtype=bool)
    died = np.zeros(n_patients, dtype=bool)
    split = rng.choice(["train", "val", "test"], p=[0.6, 0.2, 0.2], size=n_patients)
    for t in range(n_steps):
        logits = np.stack([z[:, 0] * (lvl - 1) - 0.5 * lvl for lvl in range(n_levels)], axis=1)
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        lv = np.stack([(p.cumsum(1) > rng.random((n_patients, 1))).argmax(1) for _ in range(k)], axis=1)
        if continuous:
            doses = np.stack([lv[:, 0] * 500.0 * rng.uniform(0.5, 1.5, n_patients),
                              lv[:, 1] * 0.05 * rng.uniform(0.5, 1.5, n_patients)], axis=1)
            effect = np.stack([doses[:, 0] / 500.0, doses[:, 1] / 0.05], axis=1)
        else:
            doses = np.stack([np.take(median, lv[:, 0]), np.take(median_ne, lv[:, 1])], axis=1)
            effect = lv.astype(float)
        z_next = 0.9 * z + rng.normal(scale=0.3, size=z.shape)
        z_next[:, 0] += 0.3 * effect.sum(1) - 0.2
        p_death = 1 / (1 + np.exp(4.0 + 2.0 * z_next[:, 0]))
        p_dis = 1 / (1 + np.exp(3.0 - z_next[:, 0]))
        u = rng.random(n_patients)
        die_now, dis_now = u < p_death, (u >= p_death) & (u < p_death + p_dis)
        for i in np.flatnonzero(alive):
            last = t == n_steps - 1
            done = bool(die_now[i] or dis_now[i])
            reward = 0.0
            if done or last:
                reward = -1.0 if die_now[i] else 1.0
            raw, raw_next = TOY_MEAN + TOY_STD * z[i], TOY_MEAN + TOY_STD * z_next[i]
            row: dict[str, object] = {
                "stay_id": f"toy-{i:05d}", "patient_key": f"p{i:05d}", "step": t, "split": str(split[i]),
                "reward": reward, "reward_intermediate": 0.0, "done": done, "died": bool(die_now[i]), "truncated": bool(last and not done),
                "iv_fluid_ml": float(doses[i, 0]), "norepinephrine_ug_kg_min": float(doses[i, 1]),
            }
            if not continuous:
                row["action"] = int(lv[i, 0] * n_levels + lv[i, 1])
            for j, name in enumerate(TOY_FEATURES):
                row[name] = float(raw[j])
                row[NEXT_PREFIX + name] = float(raw_next[j])
            rows.append(row)
        died |= alive & die_now
        alive &= ~(die_now | dis_now)
        z = z_next
    frame = pl.DataFrame(rows).sort(["stay_id", "step"])
    feats = [StateFeatureInfo(name=n, unit="u", kind="measurement", transform="zscore",
                              mean=float(m), std=float(s)) for n, m, s in zip(TOY_FEATURES, TOY_MEAN, TOY_STD, strict=True)]
    dims = [
        ActionDimensionInfo(name="iv_fluid_ml", unit="mL", n_levels=None if continuous else n_levels,
                            median_dose=None if continuous else median, dose_max=float(max(median) * 1.5)),
        ActionDimensionInfo(name="norepinephrine_ug_kg_min", unit="ug/kg/min",
                            n_levels=None if continuous else n_levels,
                            median_dose=None if continuous else median_ne, dose_max=float(max(median_ne) * 1.5)),
    ]
    counts = {}
    for s in ("train", "val", "test"):
        sub = frame.filter(pl.col("split") == s)
        ids = set(sub["stay_id"].to_list())
        counts[s] = SplitCounts(patients=len(ids), stays=len(ids), transitions=sub.height,
                                deaths=int(sum(died[int(x[4:])] for x in ids)))
    manifest = CohortManifest(
        spec=spec, spec_hash=spec.spec_hash(), input_files={},
        transitions_sha256=sha256_bytes(frame.write_csv().encode()),
        state_features=feats,
        action_space=ActionSpaceInfo(kind="continuous" if continuous else "discrete", dimensions=dims),
        gamma=spec.gamma, step_hours=4.0, n_steps=n_steps, counts=counts, stays_in=n_patients,
        exclusion_flow=[], dropped_rows=[], missingness={n: 0.0 for n in TOY_FEATURES},
    )
    return TransitionSet(frame, manifest)
