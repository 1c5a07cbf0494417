"""One replicate of a study: a fresh simulated data set and the whole estimation on it.

1. simulate `patients` stays (seed stream `REPLICATE_STREAM`, index r), no readmissions, under the
   arm's clinicians (`StudyConfig.usual_care`; `simulate_data_set`);
2. build the study cohort (the reference's study spec: fixed level edges, short stays kept);
3. refit the clinician model (cross-fitted by patient folds on the train split) and, for the
   model-based estimate, a small dynamics ensemble;
4. for every candidate (the clinician first): `build_ope_data` on the test split (the Q-model is
   fitted on the train split), `evaluate_arrays` (every estimator with its BCa patient-bootstrap
   interval, the paired difference against the clinician on the same resamples, ESS), and for
   the non-clinician candidates the subgroup differences of the gate's primary estimators and the
   gate decision (`report.gate.evaluate_gate` on `report.collect.evidence_from_ope`).

The result is a JSON-ready dict (undefined numbers are None). A replicate whose data the
pipeline refuses (an `InputError`, e.g. no treated step to fit on) is recorded with its error,
not dropped silently.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from clinical_mborl.behavior import ClinicianPolicy, fit_behavior
from clinical_mborl.cohort import TransitionSet
from clinical_mborl.cohort.build import build_cohort
from clinical_mborl.core.errors import InputError
from clinical_mborl.dynamics import DynamicsEnsemble, fit_dynamics
from clinical_mborl.ope import OPEConfig, OPEReport, build_ope_data, evaluate_arrays
from clinical_mborl.ope.data import OPEData
from clinical_mborl.ope.history import fit_history_adjustment
from clinical_mborl.ope.members import rubin_fqe
from clinical_mborl.ope.results import finite_or_none
from clinical_mborl.ope.sensitivity_entries import (
    nest_sensitivity,
    sensitivity_entry,
    sensitivity_name,
)
from clinical_mborl.ope.subgroups import first_step_labels, subgroup_differences
from clinical_mborl.report.collect import evidence_from_ope
from clinical_mborl.report.gate import evaluate_gate
from clinical_mborl.report.inputs import SubgroupResult
from clinical_mborl.simulators.sepsis import simulate_sepsis
from clinical_mborl.simulators.sepsis.ground_truth import run_closed_loop
from clinical_mborl.simulators.sepsis.simulate import write_ehr_tables
from clinical_mborl.studies.config import (
    REPLICATE_STREAM,
    StudyConfig,
    derive_seed,
)
from clinical_mborl.studies.parallel import state
from clinical_mborl.studies.reference import StudyReference

ON_POLICY = "on-policy"


def replicate_task(index: int) -> dict[str, Any]:
    """Worker entry point: replicate `index` with the worker's config and reference."""
    return run_replicate(index, state("config"), state("reference"))


def simulate_data_set(config: StudyConfig, reference: StudyReference, seed: int, out_dir: Path) -> None:
    """Write one data set's EHR tables: usual care (hourly or at-steps), or in the "markov" arm the
    closed loop in which the reference clinician model samples every step's dose level."""
    settings = config.simulator_settings(reference.spec.time.step_hours)
    if config.usual_care != "markov":
        simulate_sepsis(config.patients, seed, out_dir, config=settings)
        return
    run = run_closed_loop(reference.behavior, reference.spec, reference.manifest, n_episodes=config.patients,
                          seed=seed, config=settings)
    write_ehr_tables(run.tables, out_dir)


def run_replicate(index: int, config: StudyConfig, reference: StudyReference) -> dict[str, Any]:
    """Simulate, build, fit and evaluate replicate `index`; see the module text."""
    seed = derive_seed(config.seed, REPLICATE_STREAM, index)
    started = time.perf_counter()
    out: dict[str, Any] = {"replicate": index, "seed": seed, "fingerprint": config.fingerprint()}
    with tempfile.TemporaryDirectory(prefix="clinical_mborl_study_") as tmp:
        try:
            simulate_data_set(config, reference, seed, Path(tmp) / "ehr")
            build_cohort(reference.spec, Path(tmp) / "ehr", Path(tmp) / "cohort", progress=False, validate=False)
            transitions = TransitionSet.load(Path(tmp) / "cohort")
            out.update(estimate_all(transitions, config, reference, seed))
        except InputError as exc:
            out["error"] = str(exc)
    out["seconds"] = time.perf_counter() - started
    return out


def replicate_ope_config(config: StudyConfig, seed: int) -> OPEConfig:
    """The study's OPE settings with this replicate's bootstrap and Q-model seed."""
    return config.ope.model_copy(update={"seed": seed, "fqe": config.ope.fqe.model_copy(update={"seed": seed})})


def fit_nuisance(transitions: TransitionSet, config: StudyConfig, seed: int
                 ) -> tuple[ClinicianPolicy, DynamicsEnsemble | None]:
    """The replicate's clinician model and (if the model-based estimate is asked for) dynamics."""
    behavior = fit_behavior(transitions, config.behavior.model_copy(update={"seed": seed}))
    dynamics = None
    if config.dynamics is not None and "model_based" in config.ope.estimators:
        dynamics = fit_dynamics(transitions, config.dynamics.model_copy(update={"seed": seed}), quiet=True)
    return behavior, dynamics


def estimate_all(transitions: TransitionSet, config: StudyConfig, reference: StudyReference,
                 seed: int) -> dict[str, Any]:
    """OPE (and the gate) for every candidate on one replicate's cohort."""
    behavior, dynamics = fit_nuisance(transitions, config, seed)
    ope = replicate_ope_config(config, seed)
    history = fit_history_adjustment(transitions, behavior.config) if ope.adjust_for_history else None
    labels = first_step_labels(transitions, ope.eval_splits, config.subgroups)
    candidates: dict[str, Any] = {}
    n_patients = 0
    for name in config.candidates:
        policy = behavior if name == "clinician" else reference.candidate(
            name, transitions.feature_names, transitions.manifest.action_space)
        data = build_ope_data(policy, transitions, behavior, dynamics, ope, history)
        report = evaluate_arrays(data, ope, policy=name)
        n_patients = report.n_patients
        record = report_record(report, include_on_policy=name == "clinician")
        if "fqe" in ope.estimators and "fqe" not in report.skipped and data.n_q_members >= 2:
            record["estimates"][RUBIN] = member_record(data, ope.level)
        if name != "clinician":
            primaries = [e for e in config.gate.primary_estimators
                         if e in ope.estimators and e not in report.skipped]
            subs = subgroup_differences(data, labels, primaries, ope) if primaries else []
            results = [SubgroupResult.model_validate(s.model_dump()) for s in subs]
            decision = evaluate_gate(evidence_from_ope(report, results), config.gate)
            record["gate"] = {
                "status": decision.status,
                "failed": [c.name for c in decision.checks if c.status == "fail"],
                "inconclusive": [c.name for c in decision.checks if c.status == "inconclusive"],
            }
            record["subgroups"] = [{"attribute": s.attribute, "level": s.level, "estimator": s.estimator,
                                    "n_patients": s.n_patients, "difference": finite_or_none(s.difference),
                                    "lower_bound": finite_or_none(s.lower_bound)} for s in subs]
        candidates[name] = record
    if ope.sensitivity_lambdas and "fqe" in ope.estimators:
        for record in candidates.values():
            nest_sensitivity(record["estimates"], ope.sensitivity_lambdas)
        calibrate_sensitivity(candidates, ope.sensitivity_lambdas)
    return {"n_patients_eval": n_patients, "candidates": candidates}


def calibrate_sensitivity(candidates: dict[str, Any], lambdas: tuple[float, ...]) -> float:
    """Add `fqe_msm_cal` to every candidate: the FQE sensitivity interval at the smallest Lambda in
    (1, *lambdas) whose interval for the clinician model contains the clinicians' on-policy mean
    (a negative control: what the data say about the clinicians themselves); the largest Lambda
    when none does. Lambda = 1 is plain FQE. Returns the Lambda chosen.

    >>> row = lambda lo, hi: {"value": (lo + hi) / 2, "ci_low": lo, "ci_high": hi}
    >>> c = {"clinician": {"estimates": {ON_POLICY: {"value": 0.47}, "fqe": row(0.30, 0.45),
    ...                                  "fqe_msm1.5": row(0.25, 0.46), "fqe_msm2": row(0.2, 0.5)}},
    ...      "bc": {"estimates": {"fqe": row(0.4, 0.5), "fqe_msm1.5": row(0.3, 0.6), "fqe_msm2": row(0.2, 0.7)}}}
    >>> calibrate_sensitivity(c, (1.5, 2.0)), c["bc"]["estimates"]["fqe_msm_cal"]["ci_low"]
    (2.0, 0.2)
    """
    est = candidates["clinician"]["estimates"]
    target = est[ON_POLICY]["value"]
    names = [(1.0, "fqe"), *[(lam, sensitivity_name(lam)) for lam in sorted(lambdas)]]
    chosen = names[-1]
    for lam, name in names:
        entry = est.get(name, {})
        lo, hi = entry.get("ci_low"), entry.get("ci_high")
        if target is not None and lo is not None and hi is not None and lo <= target <= hi:
            chosen = (lam, name)
            break
    for record in candidates.values():
        if chosen[1] in record["estimates"]:
            record["estimates"]["fqe_msm_cal"] = {**record["estimates"][chosen[1]], "lambda": chosen[0]}
    return chosen[0]


RUBIN = "fqe_rubin"


def member_record(data: OPEData, level: float) -> dict[str, Any]:
    """`fqe_rubin`: bootstrapped FQE's interval by Rubin's rules over its Q-members (`ope.members`)
    instead of the patient bootstrap's percentiles: the same estimate, another interval."""
    value, diff, diag = rubin_fqe(data, level)
    return {"value": value.value, "ci_low": value.low, "ci_high": value.high, "lower_bound": value.lower_bound,
            "ess": None, "n_undefined": 0, "projected": value.value_projected, "dof": diag["rubin_dof"],
            "between_sd": diag["between_member_sd"], "within_sd": diag["within_member_sd"], "diff": diff.value,
            "diff_ci_low": diff.low, "diff_ci_high": diff.high, "diff_lower_bound": diff.lower_bound,
            "diff_n_undefined": 0}


def report_record(report: OPEReport, include_on_policy: bool = False) -> dict[str, Any]:
    """The numbers of one `OPEReport` a study aggregates (JSON-ready)."""
    estimates: dict[str, dict[str, Any]] = {}
    entries = ([report.clinician] if include_on_policy else []) + list(report.estimates)
    for e in entries:
        name = ON_POLICY if e is report.clinician else e.estimator
        estimates[name] = {"value": e.value, "ci_low": e.ci_low, "ci_high": e.ci_high,
                           "lower_bound": e.lower_bound, "ess": e.ess,
                           "n_undefined": e.diagnostics.get("n_undefined_resamples"), "projected": e.value_projected}
    for d in report.differences:
        estimates[d.estimator].update(diff=d.value, diff_ci_low=d.ci_low, diff_ci_high=d.ci_high,
                                      diff_lower_bound=d.lower_bound, diff_n_undefined=d.n_undefined_resamples)
    for sb in report.sensitivity:
        estimates[sensitivity_name(sb.lam)] = sensitivity_entry(sb)
    if include_on_policy:
        estimates[ON_POLICY].update(diff=0.0, diff_ci_low=0.0, diff_ci_high=0.0, diff_lower_bound=0.0,
                                    diff_n_undefined=0)
    weighted = next((e for e in report.estimates if e.ess is not None), None)
    diag = dict(weighted.diagnostics) if weighted is not None else {}
    return {
        "estimates": estimates,
        "skipped": dict(report.skipped),
        "hcope_lower_bound": report.high_confidence.lower_bound,
        "hcope_valid": report.high_confidence.valid,
        "overlap": {k: diag.get(k) for k in ("ess", "ess_min_step", "max_weight_share", "clipped_share",
                                              "support_share_outside")},
    }
