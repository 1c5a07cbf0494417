"""`fit_behavior`: cross-fitted, calibrated estimate of the clinician policy.

Patients of the fit splits are dealt into K folds. For each fold k a network is trained on the
other folds' patients minus an inner calibration share of them (early stopping and temperature
scaling), so the fold-k model never sees a fold-k patient: the probabilities stored for fold-k
rows are truly out-of-fold. Held-out splits (val/test) are scored with the average of the K fold
models, which saw none of those patients either.

>>> from clinical_mborl.cohort.toy import make_toy_transitions
>>> pi_b = fit_behavior(make_toy_transitions(40, seed=0), BehaviorConfig(n_folds=2, max_epochs=2))
>>> pi_b.calibration["n_folds"], sorted(pi_b.calibration["splits"])
(2, ['test', 'val'])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from clinical_mborl.behavior.calibration import continuous_calibration, discrete_calibration
from clinical_mborl.behavior.config import BehaviorConfig
from clinical_mborl.behavior.models import (
    ContinuousBehaviorNet,
    continuous_loss,
    discrete_loss,
    fit_temperature,
    fit_zero_inflated_calibration,
    inner_calibration_mask,
    patient_folds,
    train_fold_network,
    zero_inflated_log_density,
)
from clinical_mborl.behavior.policy import ClinicianPolicy, make_fold_net, rows_fingerprint
from clinical_mborl.cohort import TransitionArrays, TransitionSet
from clinical_mborl.core.errors import InputError


def fit_behavior(transitions: TransitionSet, config: BehaviorConfig | None = None) -> ClinicianPolicy:
    """Fit the K fold models on `config.fit_splits`, keep out-of-fold values, report calibration.

    Seeds torch's global generator per fold (`config.seed`), so a seed gives the same result.
    """
    config = config or BehaviorConfig()
    fit_set = transitions.split(*config.fit_splits)
    a = fit_set.arrays(normalised=True)
    n_patients = int(np.unique(a.patient).size) if len(a) else 0
    if n_patients < 2 * config.n_folds:
        raise InputError(
            f"behaviour policy: {n_patients} patient(s) in splits {list(config.fit_splits)}; expected at "
            f"least {2 * config.n_folds} (two per fold) for {config.n_folds}-fold cross-fitting. "
            "Use a larger cohort or fewer folds (--folds)."
        )
    space = transitions.manifest.action_space
    discrete = space.kind == "discrete"
    x = torch.as_tensor(a.states)
    y = torch.as_tensor(a.actions) if discrete else torch.as_tensor(a.doses, dtype=torch.float32)
    fold_of = patient_folds(a.patient, config.n_folds, config.seed)
    nets: list[torch.nn.Module] = []
    temps: list[Tensor] = []
    scales: list[Tensor] = []
    oof_ld = np.zeros(len(a), dtype=np.float64)
    oof_p = np.zeros((len(a), space.n_actions), dtype=np.float64) if discrete else None
    for k in range(config.n_folds):
        fold_seed = config.seed * 1009 + k
        train_rows = np.flatnonzero(fold_of != k)
        cal = inner_calibration_mask(a.patient[train_rows], config.calibration_fraction, fold_seed)
        fit_idx, cal_idx = torch.as_tensor(train_rows[~cal]), torch.as_tensor(train_rows[cal])
        torch.manual_seed(fold_seed)
        net = make_fold_net(config, x.shape[1], space)
        if isinstance(net, ContinuousBehaviorNet):
            _set_dose_scale(net, y[fit_idx])
        loss = discrete_loss if discrete else continuous_loss
        gen = torch.Generator().manual_seed(fold_seed)
        net = train_fold_network(net, loss, x[fit_idx], y[fit_idx], x[cal_idx], y[cal_idx], config, gen)
        with torch.no_grad():
            if discrete:
                temps.append(torch.tensor(fit_temperature(net(x[cal_idx]), y[cal_idx])))
            else:
                logit, mu, sigma = net(x[cal_idx])
                t, c = fit_zero_inflated_calibration(logit, mu, sigma, y[cal_idx])
                temps.append(t)
                scales.append(c)
        nets.append(net)
    policy = ClinicianPolicy(
        config=config, state_features=list(transitions.manifest.state_features), action_space=space,
        folds=nets, temperatures=torch.stack(temps), std_scales=torch.stack(scales) if scales else None,
        out_of_fold_log_density=oof_ld, out_of_fold_proba=oof_p,
        fit_rows_sha256=rows_fingerprint(fit_set), cohort_manifest_hash=transitions.manifest_hash,
    )
    with torch.no_grad():
        for k in range(config.n_folds):
            out_idx = torch.as_tensor(np.flatnonzero(fold_of == k))
            if discrete:
                assert oof_p is not None
                p = policy.fold_proba(x[out_idx], k).double()
                oof_p[out_idx.numpy()] = (p / p.sum(1, keepdim=True)).numpy()
                oof_ld[out_idx.numpy()] = np.log(np.clip(oof_p[out_idx.numpy(), y[out_idx].numpy()], 1e-300, None))
            else:
                params = policy.fold_params(x[out_idx], k)
                oof_ld[out_idx.numpy()] = zero_inflated_log_density(*params, y[out_idx]).double().numpy()
    policy.calibration = _calibration_summary(policy, transitions, a, fold_of, config)
    return policy


def _set_dose_scale(net: ContinuousBehaviorNet, doses: Tensor) -> None:
    """Centre and scale the log-dose head on the fit rows' positive doses (per dimension)."""
    for j in range(doses.shape[1]):
        pos = doses[:, j] > 0
        if int(pos.sum()) >= 2:
            ld = torch.log(doses[pos, j])
            net.loc[j] = ld.mean()
            net.scale[j] = ld.std().clamp_min(1e-3)


def zero_inflated_summaries(
    params: list[tuple[Tensor, Tensor, Tensor]], weights: Tensor, doses: Tensor
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mixture (weights [K, n]) of zero-inflated log-normals -> (log-density [n], P(dose>0) [n, k], PIT [n, k]).

    PIT is the mixture CDF of log-dose given treatment at the logged dose (used where dose > 0).
    """
    logit = torch.stack([p[0] for p in params]).double()
    mu = torch.stack([p[1] for p in params]).double()
    sigma = torch.stack([p[2] for p in params]).double()
    w = weights.double()[:, :, None]
    p_k = torch.sigmoid(logit)
    p_treated = (w * p_k).sum(0)
    log_d = torch.log(doses.double().clamp_min(1e-300))
    cdf_k = torch.distributions.Normal(mu, sigma).cdf(log_d)
    pit = (w * p_k * cdf_k).sum(0) / (w * p_k).sum(0).clamp_min(1e-300)
    ld_k = torch.stack([zero_inflated_log_density(*p, doses).double() for p in params])
    ld = torch.logsumexp(torch.log(weights.double().clamp_min(1e-300)) + ld_k, dim=0)
    return ld.numpy(), p_treated.numpy(), pit.numpy()


def _continuous_metrics(
    policy: ClinicianPolicy, x: Tensor, doses: Tensor, weights: Tensor, names: tuple[str, ...], n_bins: int
) -> dict[str, Any]:
    with torch.no_grad():
        params = [policy.fold_params(x, k) for k in range(policy.n_folds)]
    ld, p_treated, pit = zero_inflated_summaries(params, weights, doses)
    return continuous_calibration(ld, p_treated, pit, doses.double().numpy(), names, n_bins)


def _calibration_summary(
    policy: ClinicianPolicy, transitions: TransitionSet, fit_arrays: TransitionArrays,
    fold_of: np.ndarray, config: BehaviorConfig,
) -> dict[str, Any]:
    """Out-of-fold metrics on the fit rows and fold-average metrics on each held-out split."""
    names = transitions.dose_columns
    out: dict[str, Any] = {"action_kind": policy.action_kind, "n_folds": policy.n_folds,
                           "fit_splits": list(config.fit_splits), "splits": {}}
    if policy.action_kind == "discrete":
        assert policy.out_of_fold_proba is not None
        out["out_of_fold"] = discrete_calibration(policy.out_of_fold_proba, fit_arrays.actions, config.n_bins)
    else:
        one_hot = torch.zeros(policy.n_folds, len(fit_arrays))
        one_hot[torch.as_tensor(fold_of), torch.arange(len(fit_arrays))] = 1.0
        out["out_of_fold"] = _continuous_metrics(
            policy, torch.as_tensor(fit_arrays.states), torch.as_tensor(fit_arrays.doses, dtype=torch.float32),
            one_hot, names, config.n_bins)
    for split in config.eval_splits:
        sub = transitions.split(split)
        if len(sub) == 0:
            continue
        a = sub.arrays(normalised=True)
        x = torch.as_tensor(a.states)
        if policy.action_kind == "discrete":
            proba = policy.predict_proba_normalised(a.states)
            assert isinstance(proba, np.ndarray)
            out["splits"][split] = discrete_calibration(proba, a.actions, config.n_bins)
        else:
            uniform = torch.full((policy.n_folds, len(a)), 1.0 / policy.n_folds)
            out["splits"][split] = _continuous_metrics(
                policy, x, torch.as_tensor(a.doses, dtype=torch.float32), uniform, names, config.n_bins)
    return out
