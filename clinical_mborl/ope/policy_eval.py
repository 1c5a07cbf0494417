"""`evaluate_policy`: from a policy, a cohort and the fitted clinician/dynamics models to `ope.json`.

Steps, in order:
1. the evaluation rows (`config.eval_splits`, held out from every learner by default);
2. clinician probabilities of every action on those rows -- out-of-fold where the behaviour
   model was fitted on the row, the average of its fold models elsewhere;
3. the evaluation policy's probabilities, softened: pi' = (1 - eps) pi_e + eps pi_b;
4. the Q-model of pi' (FQE), fitted on `config.q_fit_splits`, cross-fitted by patient folds
   where fit and evaluation patients overlap -> Q(s_t, a_t), V(s_t) for DR, WDR and FQE; with
   `config.fqe.n_members > 1`, M bootstrap-refitted Q-models (their average is the estimate,
   each pairs with its share of the bootstrap resamples);
5. model rollouts of pi' from each stay's first state (when a dynamics ensemble is given);
6. `evaluate_arrays`: estimates, patient-bootstrap intervals, paired differences, diagnostics.

Return bounds for HCOPE come from the cohort's reward specification: the outcome reward lies in
[min(0, death, survival), max(0, death, survival)] whatever the discount; intermediate rewards
have no a-priori bound, so the observed range of their discounted sums is added.

>>> from clinical_mborl.cohort.toy import make_toy_transitions
>>> from clinical_mborl.behavior import BehaviorConfig, fit_behavior
>>> ts = make_toy_transitions(60, seed=0)
>>> pi_b = fit_behavior(ts, BehaviorConfig(n_folds=2, hidden_sizes=(), max_epochs=2))
>>> cfg = OPEConfig(n_resamples=100, estimators=("wis", "pdwis"))
>>> rep = evaluate_policy(pi_b, ts, pi_b, config=cfg)
>>> abs(rep.estimate("wis").value - rep.clinician.value) < 1e-9  # the clinician, on-policy
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from clinical_mborl.behavior import ClinicianPolicy
from clinical_mborl.cohort import TransitionArrays, TransitionSet
from clinical_mborl.core.errors import InputError
from clinical_mborl.core.io import atomic_write_json
from clinical_mborl.core.policy import Policy
from clinical_mborl.dynamics import DynamicsEnsemble
from clinical_mborl.ope.data import OPEData, soften
from clinical_mborl.ope.evaluate import evaluate_arrays
from clinical_mborl.ope.fqe import FittedQ, FQEData, cross_fit_models, cross_fit_q
from clinical_mborl.ope.history import HistoryAdjustment, fit_history_adjustment
from clinical_mborl.ope.model_based import model_based_returns, softened_sampler
from clinical_mborl.ope.results import OPEConfig, OPEReport
from clinical_mborl.ope.sensitivity import Side, fit_sensitivity_bounds

Q_ESTIMATORS = ("dr", "wdr", "fqe")
SUBGROUPS_FILE = "subgroups.json"


def evaluate_policy(
    policy: Policy,
    transitions: TransitionSet,
    behavior: ClinicianPolicy,
    dynamics: DynamicsEnsemble | None = None,
    config: OPEConfig | None = None,
    out_dir: str | Path | None = None,
) -> OPEReport:
    """Off-policy evaluation of `policy` on the held-out split.

    With `out_dir`, writes `ope.json` and `subgroups.json` (the paired difference per sex, age band
    and severity level, same resamples; read by `clinical-mborl report` for the gate).
    """
    config = config or OPEConfig()
    history = fit_history_adjustment(transitions, behavior.config) if config.adjust_for_history else None
    data = build_ope_data(policy, transitions, behavior, dynamics, config, history)
    report = evaluate_arrays(data, config, policy=policy.name)
    steps = fqe_steps_per_iteration(transitions, config)
    if steps is not None and report.skipped.get("fqe") is None:
        report = report.model_copy(update={"fqe_steps_per_iteration": steps})
    if out_dir is not None:
        from clinical_mborl.ope.subgroups import definition_for, evaluate_subgroups

        report.write(out_dir)
        definition = definition_for(transitions.feature_names)
        subgroups = evaluate_subgroups(data, transitions, config.estimators, config, definition)
        atomic_write_json(Path(out_dir) / SUBGROUPS_FILE, [g.model_dump(mode="json") for g in subgroups])
    return report


def build_ope_data(
    policy: Policy,
    transitions: TransitionSet,
    behavior: ClinicianPolicy,
    dynamics: DynamicsEnsemble | None,
    config: OPEConfig,
    history: HistoryAdjustment | None = None,
) -> OPEData:
    """Steps 1-5 of the module recipe: the `OPEData` of `policy` on `config.eval_splits`.

    With `history` (`fit_history_adjustment` on this cohort) the clinician probabilities of the
    importance weights come from pi_b(a | s, h) and the Q-model sees (s, h); the policy still
    acts on the cohort state s, and the clinician evaluated as a policy is pi_b(a | s, h).
    """
    _check_compatible(policy, transitions, behavior)
    raw, norm = transitions.arrays(normalised=False), transitions.arrays(normalised=True)
    is_clinician = policy is behavior
    clin, clin_set, raw_c, norm_c = behavior, transitions, raw, norm
    if history is not None:
        if history.base_manifest_hash != transitions.manifest_hash:
            raise InputError("OPE: the treatment-history adjustment was fitted on another cohort build; "
                             "refit it (`fit_history_adjustment`) on this cohort.")
        clin, clin_set = history.behavior, history.transitions
        raw_c, norm_c = clin_set.arrays(normalised=False), clin_set.arrays(normalised=True)
    split = transitions.frame["split"].to_numpy()
    rows = np.flatnonzero(np.isin(split, config.eval_splits))
    if rows.size == 0:
        raise InputError(f"OPE: no rows in splits {list(config.eval_splits)}; pick splits the cohort has.")
    episode = np.unique(raw.episode[rows], return_inverse=True)[1]
    step = raw.step[rows]
    shape = (int(episode.max()) + 1, transitions.manifest.n_steps)
    mask = np.zeros(shape, dtype=bool)
    mask[episode, step] = True

    def grid(values: np.ndarray, pad: float) -> np.ndarray:
        out = np.full(shape, pad, dtype=np.float64)
        out[episode, step] = values
        return out

    patient = np.zeros(shape[0], dtype=np.int64)
    patient[episode] = raw.patient[rows]
    eps = config.soften_epsilon
    q_sa = v_s = pb_rec = q_members = v_members = sensitivity = None
    if transitions.manifest.action_space.kind == "discrete":
        p_b = _behavior_proba(clin, clin_set, raw_c, rows, config)
        # the clinician evaluated as a policy uses the same (out-of-fold where fitted) estimate
        p_e = p_b if is_clinician else np.asarray(policy.action_probabilities(raw.states[rows]),
                                                   dtype=np.float64)
        if p_e.shape != p_b.shape:
            raise InputError(f"OPE: policy '{policy.name}' gives {p_e.shape[1]} action probabilities, the "
                             f"cohort has {p_b.shape[1]} dose levels; use a policy built for this cohort.")
        taken = raw.actions[rows]
        pb, pe = p_b[np.arange(rows.size), taken], p_e[np.arange(rows.size), taken]
        pb_rec = grid(p_b[np.arange(rows.size), p_e.argmax(axis=1)], 1.0)
        if any(name in config.estimators for name in Q_ESTIMATORS):
            fit = np.flatnonzero(np.isin(split, config.q_fit_splits))
            if fit.size == 0:
                raise InputError(f"OPE: no rows in q_fit_splits {list(config.q_fit_splits)} to fit the Q-model on.")
            pb_next = clin.action_probabilities(raw_c.next_states[fit])
            pe_next = pb_next if is_clinician else policy.action_probabilities(raw.next_states[fit])
            next_policy = soften(pe_next, pb_next, eps)
            p_soft = soften(p_e, p_b, eps)

            def gridded(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # [M, rows, A] -> [M, E, T] twice
                return (np.stack([grid(qm[np.arange(rows.size), taken], 0.0) for qm in q]),
                        np.stack([grid((p_soft * qm).sum(axis=1), 0.0) for qm in q]))

            support = None
            if config.fqe.prior_where == "off_support":  # where the members' priors apply: pi_b(a | s) < threshold
                p_fit_all = _behavior_proba(clin, clin_set, raw_c, fit, config)
                support = tuple((p < config.support_threshold).astype(np.float32) for p in (p_fit_all, pb_next, p_b))
            q_members, v_members = gridded(_fitted_q(transitions, raw, norm_c, fit, rows, next_policy, config,
                                                     support))
            if len(q_members) == 1:
                q_sa, v_s = q_members[0], v_members[0]
            if config.sensitivity_lambdas and "fqe" in config.estimators:
                p_fit = _behavior_proba(clin, clin_set, raw_c, fit, config)[np.arange(fit.size), raw.actions[fit]]
                keys: list[tuple[float, Side]] = [(lam, side) for lam in config.sensitivity_lambdas
                                                  for side in ("lower", "upper")]
                bound_q = _sensitivity_q(transitions, raw, norm_c, fit, rows, next_policy, config, keys, p_fit)
                sensitivity = {(lam, str(side)): gridded(q) for (lam, side), q in zip(keys, bound_q, strict=True)}
    else:
        pb, pe = _densities(policy, clin, raw, raw_c, rows, is_clinician)
    model_returns = None
    if dynamics is not None and "model_based" in config.estimators:
        first = rows[step == 0][np.argsort(episode[step == 0])]
        sampler = softened_sampler(policy, behavior, transitions.normalizer.inverse, eps,
                                   np.random.default_rng(config.seed))
        model_returns = model_based_returns(
            dynamics, sampler, torch.as_tensor(norm.states[first]), torch.as_tensor(raw.step[first]),
            n_rollouts=config.model_rollouts, seed=config.seed,
        )
    return OPEData.create(
        rewards=grid(raw.rewards[rows], 0.0), mask=mask, patient=patient, pb=grid(pb, 1.0), pe=grid(pe, 1.0),
        gamma=transitions.manifest.gamma, return_bounds=return_bounds(transitions, raw),
        q_sa=q_sa, v_s=v_s, pb_recommended=pb_rec, model_returns=model_returns, soften_epsilon=eps,
        q_sa_members=q_members if q_sa is None else None, v_s_members=v_members if q_sa is None else None,
        sensitivity=sensitivity,
    )


def fqe_steps_per_iteration(transitions: TransitionSet, config: OPEConfig) -> int | None:
    """Adam steps each iteration's regression of the network FQE takes on this cohort (per Q-fit;
    when the fit and evaluation splits overlap, a fit sees all but one of `fqe.n_folds` folds, and
    the count is for that share of the rows). None when no network FQE runs.

    FQE's values move with this budget (docs/coverage.md, lesson 16), and with `epochs_per_iteration`
    it grows with the cohort, so `ope.json` records it.
    """
    fqe = config.fqe
    if (not any(name in config.estimators for name in Q_ESTIMATORS) or fqe.function_class != "network"
            or fqe.schedule != "iterative" or transitions.manifest.action_space.kind != "discrete"):
        return None
    n_fit = int(np.isin(transitions.frame["split"].to_numpy(), config.q_fit_splits).sum())
    if set(config.q_fit_splits) & set(config.eval_splits):
        n_fit = math.ceil(n_fit * (fqe.n_folds - 1) / fqe.n_folds)
    return fqe.iteration_steps(n_fit)


def return_bounds(transitions: TransitionSet, raw: TransitionArrays) -> tuple[float, float]:
    """A-priori outcome bounds plus the observed range of discounted intermediate rewards."""
    lo, hi = _outcome_bounds(transitions)
    disc = transitions.manifest.gamma ** raw.step
    inter = np.bincount(raw.episode, weights=disc * raw.reward_intermediate) if len(raw) else np.zeros(1)
    return lo + min(0.0, float(inter.min())), hi + max(0.0, float(inter.max()))


def value_bounds(transitions: TransitionSet, raw: TransitionArrays) -> tuple[float, float]:
    """Bounds on the return still to come from any step: the a-priori outcome bounds plus a full
    window of the most extreme intermediate reward observed (discounted), so every true Q-value
    lies inside them.

    For the FQE clamp. Unlike `return_bounds`, these cover partial sums from any step.
    """
    lo, hi = _outcome_bounds(transitions)
    inter = raw.reward_intermediate.astype(np.float64)
    horizon = float(np.sum(transitions.manifest.gamma ** np.arange(transitions.manifest.n_steps)))
    low = min(0.0, float(inter.min())) if inter.size else 0.0
    high = max(0.0, float(inter.max())) if inter.size else 0.0
    return lo + horizon * low, hi + horizon * high


def _outcome_bounds(transitions: TransitionSet) -> tuple[float, float]:
    """[min(0, death, survival), max(0, death, survival)]: where the outcome reward lies, discounted or not."""
    r = transitions.manifest.spec.reward
    return min(0.0, r.death_reward, r.survival_reward), max(0.0, r.death_reward, r.survival_reward)


def _check_compatible(policy: Policy, transitions: TransitionSet, behavior: ClinicianPolicy) -> None:
    for who, names in (("policy", policy.feature_names), ("behaviour model", behavior.feature_names)):
        if tuple(names) != transitions.feature_names:
            raise InputError(f"OPE: the {who} expects features {list(names)}, the cohort has "
                             f"{list(transitions.feature_names)}; use models trained on this cohort.")
    kind = transitions.manifest.action_space.kind
    if policy.action_kind != kind or behavior.action_kind != kind:
        raise InputError(f"OPE: the cohort has {kind} actions, the policy {policy.action_kind} and the "
                         f"behaviour model {behavior.action_kind}; they must agree.")
    if behavior.action_space != transitions.manifest.action_space or (
        behavior.cohort_manifest_hash != transitions.manifest_hash
    ):
        raise InputError("OPE: the behaviour model was fitted on another cohort build (action space or "
                         "manifest hash differ); importance weights need this cohort's clinicians. Run "
                         "`clinical-mborl train behavior` on this cohort.")


def _behavior_proba(behavior: ClinicianPolicy, transitions: TransitionSet, raw: TransitionArrays,
                    rows: np.ndarray, config: OPEConfig) -> np.ndarray:
    """pi_b(. | s) on `rows`: out-of-fold on the behaviour model's own fit rows."""
    p = np.asarray(behavior.action_probabilities(raw.states[rows]), dtype=np.float64)
    split = transitions.frame["split"].to_numpy()
    in_fit = np.isin(split, behavior.config.fit_splits)
    if in_fit[rows].any():
        oof = np.full((len(raw), p.shape[1]), np.nan)
        oof[np.flatnonzero(in_fit)] = behavior.out_of_fold_proba_for(transitions)
        use = in_fit[rows]
        p[use] = oof[rows[use]]
    return p


def _densities(policy: Policy, clin: ClinicianPolicy, raw: TransitionArrays, raw_c: TransitionArrays,
               rows: np.ndarray, is_clinician: bool) -> tuple[np.ndarray, np.ndarray]:
    log_pb = np.asarray(clin.log_density(raw_c.states[rows], raw.doses[rows]), dtype=np.float64)
    if is_clinician:
        return np.exp(log_pb), np.exp(log_pb)
    log_pe = np.asarray(policy.log_density(raw.states[rows], raw.doses[rows]), dtype=np.float64)  # type: ignore[attr-defined]
    if np.isposinf(log_pe).any():
        raise InputError(f"OPE: policy '{policy.name}' recommends exact doses (a point mass), so density "
                         "ratios are undefined; evaluate it on a dose-level (discrete) cohort or give it a "
                         "dose distribution.")
    return np.exp(log_pb), np.exp(log_pe)


def _fqe_data(transitions: TransitionSet, raw: TransitionArrays, norm_c: TransitionArrays, fit: np.ndarray,
              next_policy: np.ndarray, behavior_prob: np.ndarray | None = None,
              support: tuple[np.ndarray, ...] | None = None,
              ) -> tuple[FQEData, Callable[..., np.ndarray]]:
    """The FQE rows of `fit` and the feature map (normalised state + one-hot step) for other rows.

    `norm_c` holds the normalised states the Q-model sees (the cohort state, or (s, h));
    `next_policy` is the softened policy's probabilities at the next state of each `fit` row;
    `support` (off-support masks [n, A] at the fit rows' states and next states, for
    `FQEConfig.prior_where = "off_support"`) is appended to the features, and the feature map then
    takes the evaluation rows' mask as a third argument.
    """
    n_steps = transitions.manifest.n_steps
    eye = np.eye(n_steps, dtype=np.float32)

    def features(states: np.ndarray, steps: np.ndarray, off: np.ndarray | None = None) -> np.ndarray:
        parts = [states.astype(np.float32), eye[np.minimum(steps, n_steps - 1)]]
        return np.concatenate(parts if off is None else [*parts, off.astype(np.float32)], axis=1)

    off_fit, off_next = (None, None) if support is None else support[:2]
    data = FQEData(
        features=features(norm_c.states[fit], raw.step[fit], off_fit), actions=raw.actions[fit],
        rewards=raw.rewards[fit].astype(np.float64), end=raw.end[fit],
        next_features=features(norm_c.next_states[fit], raw.step[fit] + 1, off_next),
        next_policy=next_policy, patient=raw.patient[fit], behavior_prob=behavior_prob,
    )
    return data, features


def _fitted_q(transitions: TransitionSet, raw: TransitionArrays, norm_c: TransitionArrays, fit: np.ndarray,
              rows: np.ndarray, next_policy: np.ndarray, config: OPEConfig,
              support: tuple[np.ndarray, ...] | None = None) -> np.ndarray:
    """Cross-fitted Q [M, len(rows), A] of the softened policy (M = `config.fqe.n_members`); `support`:
    off-support masks at the fit rows' states, their next states and `rows` (see `_fqe_data`)."""
    data, features = _fqe_data(transitions, raw, norm_c, fit, next_policy, support=support)
    off_rows = None if support is None else support[2]
    return cross_fit_q(data, features(norm_c.states[rows], raw.step[rows], off_rows), raw.patient[rows],
                       transitions.n_actions, transitions.manifest.gamma, transitions.manifest.n_steps,
                       config.fqe, value_bounds(transitions, raw))


def _sensitivity_q(transitions: TransitionSet, raw: TransitionArrays, norm_c: TransitionArrays, fit: np.ndarray,
                   rows: np.ndarray, next_policy: np.ndarray, config: OPEConfig,
                   bounds: list[tuple[float, Side]], p_fit: np.ndarray) -> list[np.ndarray]:
    """`_fitted_q` of each marginal-sensitivity bound (Lambda, side) (`ope.sensitivity`), all trained
    in one network per fold; `p_fit`: pi_b of each fit row's action."""
    data, features = _fqe_data(transitions, raw, norm_c, fit, next_policy, p_fit)
    n_actions, gamma, n_steps = transitions.n_actions, transitions.manifest.gamma, transitions.manifest.n_steps
    limits = value_bounds(transitions, raw)

    def fit_models(part: FQEData) -> list[FittedQ]:
        return fit_sensitivity_bounds(part, n_actions, gamma, n_steps, bounds, config.fqe, limits)

    return cross_fit_models(data, features(norm_c.states[rows], raw.step[rows]), raw.patient[rows],
                            n_actions, config.fqe, fit_models)
