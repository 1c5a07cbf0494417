"""Run every estimator, interval, paired difference and diagnostic on one `OPEData`.

>>> import numpy as np
>>> from clinical_mborl.ope.data import OPEData
>>> rng = np.random.default_rng(0)
>>> d = OPEData.create(rng.choice([-1.0, 1.0], size=(300, 2)), np.ones((300, 2), bool),
...                    np.arange(300), pb=np.full((300, 2), 0.5), pe=rng.uniform(size=(300, 2)),
...                    gamma=0.99, soften_epsilon=0.01)
>>> rep = evaluate_arrays(d, OPEConfig(n_resamples=200), policy="demo")
>>> [e.estimator for e in rep.estimates], sorted(rep.skipped)
(['wis', 'pdwis'], ['dr', 'fqe', 'model_based', 'wdr'])
"""

from __future__ import annotations

from clinical_mborl.core.errors import InputError
from clinical_mborl.ope.data import OPEData
from clinical_mborl.ope.diagnostics import WeightDiagnostics, weight_diagnostics
from clinical_mborl.ope.estimators import Estimator, OnPolicyValue, make_estimator
from clinical_mborl.ope.hcope import high_confidence_lower_bound
from clinical_mborl.ope.intervals import Interval, ResamplePlan, bootstrap_all
from clinical_mborl.ope.members import rubin_fqe
from clinical_mborl.ope.results import (
    HighConfidenceBound,
    OPEConfig,
    OPEEstimate,
    OPEReport,
    PairedDifference,
    SensitivityBound,
    finite_or_none,
)

#: what the patient bootstrap of a model-only estimator leaves out (the model is held fixed).
REFIT_Q_SCOPE = ("evaluation patients resampled; resample b uses Q-model member b mod {m}, each refitted on "
                 "its own patient bootstrap resample of the fit patients from its own initialisation "
                 "(bootstrapped FQE): Q-fitting variability is in the interval, Q-model bias is not")
FIXED_MODEL_SCOPE = {
    "fqe": "evaluation patients resampled; the cross-fitted Q-model is held fixed, so Q-fitting "
           "error is not in the interval",
    "model_based": "evaluation patients resampled; the dynamics ensemble is held fixed, so "
                   "model error is not in the interval",
}


def available_estimators(data: OPEData, config: OPEConfig) -> tuple[list[Estimator], dict[str, str]]:
    """The configured estimators whose inputs `data` carries, and why the others were skipped."""
    chosen, skipped = [], {}
    for name in config.estimators:
        est = make_estimator(name, config.clip)
        if name in ("dr", "wdr", "fqe") and data.q_sa is None:
            skipped[name] = "no Q-model values (q_sa, v_s) in the data"
        elif name == "model_based" and data.model_returns is None:
            skipped[name] = "no dynamics-model rollout returns in the data"
        else:
            chosen.append(est)
    return chosen, skipped


def evaluate_arrays(data: OPEData, config: OPEConfig | None = None, policy: str = "policy") -> OPEReport:
    """Estimates with patient-bootstrap intervals, paired differences, ESS and HCOPE for `data`.

    `data.pe` must already be softened with `config.soften_epsilon` (`OPEData.create` does it).
    """
    config = config or OPEConfig()
    if abs(data.soften_epsilon - config.soften_epsilon) > 1e-12:
        raise InputError(f"OPE: the data were softened with eps={data.soften_epsilon} but the config says "
                         f"{config.soften_epsilon}; build OPEData with soften_epsilon=config.soften_epsilon.")
    estimators, skipped = available_estimators(data, config)
    if config.sensitivity_lambdas and data.sensitivity is None:
        skipped["sensitivity"] = ("no sensitivity-bound Q-values in the data (they need a discrete action "
                                  "space and 'fqe' among the estimators)")
    plan = ResamplePlan(data.n_patients, config.n_resamples, config.seed)
    ref_iv, intervals, differences = bootstrap_all(
        estimators, OnPolicyValue(), data, plan, config.level, config.method
    )
    rubin: dict[str, float | int | str | None] = {}
    if config.fqe_interval == "rubin" and "fqe" in intervals and data.n_q_members >= 2:
        intervals["fqe"], differences["fqe"], rubin = rubin_fqe(data, config.level)
    weights = weight_diagnostics(data, config.clip, plan, config.level, config.support_threshold)
    hc = high_confidence_lower_bound(data, config.hcope_delta, config.hcope_selection_fraction, config.seed)
    extra = {"soften_epsilon": config.soften_epsilon, "clip": config.clip}

    clinician = _entry("clinician", ref_iv, data, float(data.n_episodes), {})
    estimates = []
    for est in estimators:
        diag: dict[str, float | int | str | None] = {}
        ess = None
        if est.uses_weights:
            diag = {**_weight_dict(weights), **extra}
            ess = weights.ess
        else:
            diag = {"interval_scope": FIXED_MODEL_SCOPE[est.name]}
        if est.uses_q:
            diag["q_members"] = max(1, data.n_q_members)
            if data.n_q_members > 1 and not est.uses_weights:
                diag["interval_scope"] = REFIT_Q_SCOPE.format(m=data.n_q_members)
        if est.name == "fqe":
            diag.update(rubin)
        estimates.append(_entry(est.name, intervals[est.name], data, ess, diag))
    return OPEReport(
        policy=policy,
        gamma=data.gamma,
        return_bounds=data.return_bounds,
        n_patients=data.n_patients,
        n_episodes=data.n_episodes,
        settings=config,
        clinician=clinician,
        estimates=estimates,
        differences=[_difference(name, iv, data) for name, iv in differences.items()],
        sensitivity=sensitivity_bounds(data, config, plan),
        high_confidence=HighConfidenceBound(
            lower_bound=hc.lower_bound, confidence=1.0 - hc.delta, threshold_c=hc.threshold_c,
            n_patients_bound=hc.n_patients_bound, n_patients_selection=hc.n_patients_selection,
            truncated_share=hc.truncated_share, valid=hc.valid, mean_weight=finite_or_none(hc.mean_weight),
        ),
        skipped=skipped,
    )


def sensitivity_bounds(data: OPEData, config: OPEConfig, plan: ResamplePlan) -> list[SensitivityBound]:
    """FQE on each marginal-sensitivity bound's Q-members carried by `data` (`ope.sensitivity`),
    with the FQE interval's resamples and member pairing and the paired difference against the
    clinician's on-policy mean. Empty when `config.sensitivity_lambdas` is."""
    if not config.sensitivity_lambdas or data.sensitivity is None:
        return []
    fqe = make_estimator("fqe")
    out = []
    for lam in config.sensitivity_lambdas:
        entries: dict[str, tuple[OPEEstimate, PairedDifference]] = {}
        for side in ("lower", "upper"):
            bound = data.with_sensitivity_bound(lam, side)
            _, intervals, differences = bootstrap_all([fqe], OnPolicyValue(), bound, plan, config.level,
                                                      config.method)
            diag: dict[str, float | int | str | None] = {
                "q_members": max(1, bound.n_q_members), "sensitivity_lambda": lam, "side": side,
                "interval_scope": REFIT_Q_SCOPE.format(m=bound.n_q_members) if bound.n_q_members > 1
                else FIXED_MODEL_SCOPE["fqe"]}
            entries[side] = (_entry(f"fqe_{side}", intervals["fqe"], bound, None, diag),
                             _difference(f"fqe_{side}", differences["fqe"], bound))
        out.append(SensitivityBound(lam=lam, lower=entries["lower"][0], upper=entries["upper"][0],
                                    lower_difference=entries["lower"][1], upper_difference=entries["upper"][1]))
    return out


def _weight_dict(w: WeightDiagnostics) -> dict[str, float | int | str | None]:
    return {k: finite_or_none(v) if isinstance(v, float) else v for k, v in w.as_dict().items()}


def _entry(name: str, iv: Interval, data: OPEData, ess: float | None,
           diagnostics: dict[str, float | int | str | None]) -> OPEEstimate:
    return OPEEstimate(
        estimator=name, value=finite_or_none(iv.value), ci_low=finite_or_none(iv.low),
        ci_high=finite_or_none(iv.high), level=iv.level, method=iv.method,
        lower_bound=finite_or_none(iv.lower_bound), n_patients=data.n_patients, n_episodes=data.n_episodes,
        n_resamples=iv.n_resamples, ess=finite_or_none(ess),
        diagnostics={**diagnostics, "n_undefined_resamples": iv.n_undefined}, **_checks(iv),
    )


def _difference(name: str, iv: Interval, data: OPEData) -> PairedDifference:
    return PairedDifference(
        estimator=name, value=finite_or_none(iv.value), ci_low=finite_or_none(iv.low),
        ci_high=finite_or_none(iv.high), level=iv.level, method=iv.method,
        lower_bound=finite_or_none(iv.lower_bound), n_patients=data.n_patients,
        n_resamples=iv.n_resamples, n_undefined_resamples=iv.n_undefined, **_checks(iv),
    )


def _checks(iv: Interval) -> dict[str, bool | int]:
    return {"value_projected": iv.value_projected, "n_projected_resamples": iv.n_projected,
            "interval_extended": iv.extended}
