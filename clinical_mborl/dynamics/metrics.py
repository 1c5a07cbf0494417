"""Quality of a fitted ensemble on its holdout patients.

Per state feature (normalised units) and for the intermediate reward: NLL, RMSE and the coverage
of the central 50%/90% intervals of the elites' moment-matched Gaussian (mean of means; variance =
mean of (var + mean^2) - mean^2). Termination head: accuracy and one-vs-rest AUROC of death and
discharge. Outcome head: AUROC and Brier score on truncated rows. Error against rollout horizon:
open-loop rollouts from every holdout row with the logged actions, elite-mean predictions fed
back, RMSE against the observed state h = 1..H steps later (while the stay continues).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from clinical_mborl.cohort import TransitionArrays
from clinical_mborl.dynamics.datamodule import (
    DEATH,
    DISCHARGE,
    outcome_death_labels,
    termination_labels,
)
from clinical_mborl.dynamics.ensemble import DynamicsEnsemble

Z50, Z90 = float(norm.ppf(0.75)), float(norm.ppf(0.95))


def _mixture(mean: torch.Tensor, std: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Moment-matched Gaussian of an equal-weight mixture over the leading (member) dimension."""
    m = mean.double().mean(0)
    var = (std.double().square() + mean.double().square()).mean(0) - m.square()
    return m.numpy(), np.sqrt(np.clip(var.numpy(), 1e-12, None))


def gaussian_scores(mean: np.ndarray, std: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """NLL, RMSE and central-interval coverage of Normal(mean, std) for 1-D arrays."""
    if target.size == 0:
        return {"n": 0}
    z = np.abs(target - mean) / std
    nll = 0.5 * (np.log(2 * np.pi) + 2 * np.log(std) + z**2)
    return {
        "n": int(target.size),
        "nll": float(nll.mean()),
        "rmse": float(np.sqrt(np.mean((target - mean) ** 2))),
        "coverage_50": float((z <= Z50).mean()),
        "coverage_90": float((z <= Z90).mean()),
    }


def _auroc(label: np.ndarray, score: np.ndarray) -> float | None:
    return float(roc_auc_score(label, score)) if 0 < label.sum() < label.size else None


def _predict(ens: DynamicsEnsemble, a: TransitionArrays, rows: np.ndarray, batch: int = 8192) -> dict[str, torch.Tensor]:
    """Elite predictions on `rows`, concatenated over batches (CPU tensors)."""
    parts: dict[str, list[torch.Tensor]] = {}
    elites = torch.as_tensor(ens.elites, device=ens.device)
    with torch.no_grad():
        for i in range(0, rows.size, batch):
            r = rows[i : i + batch]
            p = ens.predict(torch.as_tensor(a.states[r]), torch.as_tensor(a.actions[r]), torch.as_tensor(a.step[r]),
                            exact_history=False)
            for name, t in vars(p).items():
                parts.setdefault(name, []).append(t[elites].cpu())
    return {k: torch.cat(v, dim=1) for k, v in parts.items()}


def horizon_rmse(ens: DynamicsEnsemble, a: TransitionArrays, rows: np.ndarray, max_h: int) -> list[dict[str, Any]]:
    """Open-loop RMSE (all features, normalised units) at h = 1..max_h from every start row."""
    rows = rows[np.lexsort((a.step[rows], a.episode[rows]))]
    ep, step, done = a.episode[rows], a.step[rows], a.done[rows]
    n = rows.size
    elites = torch.as_tensor(ens.elites, device=ens.device)
    current = torch.as_tensor(a.states[rows], device=ens.device)
    alive = np.ones(n, dtype=bool)
    out: list[dict[str, Any]] = []
    for h in range(1, max_h + 1):
        j = np.arange(n) + h - 1  # the logged row used at this horizon
        ok = j < n
        jj = np.where(ok, j, 0)
        alive &= ok & (ep[jj] == ep) & (step[jj] == step + h - 1) & ~done[jj]
        if not alive.any():
            out.append({"h": h, "n": 0, "rmse": None})
            break
        with torch.no_grad():
            pred = ens.predict(current, torch.as_tensor(a.actions[rows[jj]]), torch.as_tensor(a.step[rows[jj]]),
                               exact_history=False)
            current = pred.next_mean[elites].mean(0)
        err = current.cpu().numpy()[alive] - a.next_states[rows[jj[alive]]]
        out.append({"h": h, "n": int(alive.sum()), "rmse": float(np.sqrt(np.mean(err**2)))})
    return out


def evaluate_holdout(ens: DynamicsEnsemble, a: TransitionArrays, rows: np.ndarray, death_reward: float) -> dict[str, Any]:
    """All holdout quality metrics of `ens` on `rows` of the fit arrays `a` (a JSON-ready dict)."""
    p = _predict(ens, a, rows)
    state_rows = (np.ones(rows.size, dtype=bool) if ens.config.state_loss_on_terminal else ~a.done[rows])
    mean, std = _mixture(p["next_mean"], p["next_std"])
    target = a.next_states[rows]
    per_feature = {
        name: gaussian_scores(mean[state_rows, i], std[state_rows, i], target[state_rows, i].astype(np.float64))
        for i, name in enumerate(ens.feature_names)
    }
    r_mean, r_std = _mixture(p["reward_mean"], p["reward_std"])
    if ens.scaling.reward_modelled:
        reward = gaussian_scores(r_mean, r_std, a.reward_intermediate[rows].astype(np.float64))
    else:
        reward = {"n": int(rows.size), "modelled": False, "constant": float(ens.scaling.reward_mean)}
    term_p = torch.softmax(p["term_logits"].double(), -1).mean(0).numpy()
    label = termination_labels(a)[rows]
    termination = {
        "n": int(rows.size),
        "accuracy": float((term_p.argmax(1) == label).mean()),
        "auroc_death": _auroc(label == DEATH, term_p[:, DEATH]),
        "auroc_discharge": _auroc(label == DISCHARGE, term_p[:, DISCHARGE]),
        "class_counts": np.bincount(label, minlength=3).tolist(),
    }
    trunc = a.truncated[rows]
    p_death = torch.sigmoid(p["outcome_death_logit"].double()).mean(0).numpy()[trunc]
    y = outcome_death_labels(a, death_reward)[rows][trunc]
    outcome = {"n": int(trunc.sum()), "auroc": _auroc(y, p_death),
               "brier": float(np.mean((p_death - y) ** 2)) if y.size else None}
    all_nll = [v["nll"] for v in per_feature.values() if v.get("n")]
    return {
        "state_nll_mean": float(np.mean(all_nll)) if all_nll else math.nan,
        "per_feature": per_feature,
        "reward": reward,
        "termination": termination,
        "outcome": outcome,
        "horizon_rmse": horizon_rmse(ens, a, rows, ens.config.max_horizon),
    }
