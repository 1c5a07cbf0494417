"""`report_from_artifacts`: the library call behind `clinical-mborl report`.

Reads the cohort, the clinician (behaviour) artifact, the policy, `ope.json` and, when given,
the dynamics artifact, the explanation folder, subgroup results and a pre-registered gate
configuration; evaluates the gate, builds the report and writes it with its audit-log entry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from clinical_mborl.core.artifacts import git_sha, library_versions, read_manifest
from clinical_mborl.core.errors import InputError
from clinical_mborl.report.build import build_audit_report
from clinical_mborl.report.collect import (
    characteristics_from_transitions,
    evidence_from_ope,
    ope_inputs,
)
from clinical_mborl.report.fingerprint import (
    PolicyFingerprint,
    fingerprint_cohort,
    fingerprint_policy,
)
from clinical_mborl.report.gate import GateConfig, evaluate_gate
from clinical_mborl.report.inputs import ReportInputs, ReproducibilityInput, SubgroupResult
from clinical_mborl.report.render import ReportPaths, write_report
from clinical_mborl.report.sources import (
    calibration_from_behavior,
    dynamics_from_metrics,
    policy_doses,
    review_trajectories,
)
from clinical_mborl.report.text import fqe_budget_limitation, fqe_prior_limitation


def _read_structured(path: Path, what: str) -> Any:
    if not path.is_file():
        raise InputError(f"{what} {path}: not found.")
    try:
        return yaml.safe_load(path.read_text()) if path.suffix in (".yaml", ".yml") else json.loads(path.read_text())
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise InputError(f"{what} {path}: not valid {'YAML' if path.suffix in ('.yaml', '.yml') else 'JSON'} "
                         f"({exc.__class__.__name__}).") from None

def load_gate_config(path: str | Path | None) -> GateConfig:
    """A pre-registered gate configuration (YAML or JSON); defaults when `path` is None."""
    if path is None:
        return GateConfig()
    data = _read_structured(Path(path), "gate config")
    try:
        return GateConfig.model_validate(data or {})
    except ValueError as exc:
        raise InputError(f"gate config {path}: {exc}") from None

def report_from_artifacts(policy: str, cohort: str | Path, behavior: str | Path, ope: str | Path,
                          out: str | Path, *, dynamics: str | Path | None = None,
                          explanation: str | Path | None = None, subgroups: str | Path | None = None,
                          gate_config: str | Path | None = None, audit_log: str | Path | None = None) -> ReportPaths:
    """Build and write the audit report of `policy` on `cohort` (see module docstring)."""
    from clinical_mborl.behavior import ClinicianPolicy
    from clinical_mborl.cohort import TransitionSet
    from clinical_mborl.explain.explanation import load_explanation
    from clinical_mborl.ope.results import OPE_FILE, OPEReport
    from clinical_mborl.policies import load_policy

    ts = TransitionSet.load(cohort)
    clinician = ClinicianPolicy.load(behavior)
    target = load_policy(policy, ts, clinician)
    ope_path = Path(ope) / OPE_FILE if Path(ope).is_dir() else Path(ope)
    ope_report = OPEReport.model_validate_json(_read_text(ope_path, "ope.json"))
    summary = load_explanation(explanation).summary if explanation is not None else None
    if subgroups is None and (ope_path.parent / "subgroups.json").is_file():
        subgroups = ope_path.parent / "subgroups.json"  # written by `evaluate` beside ope.json
    subs = [SubgroupResult.model_validate(s) for s in _read_structured(Path(subgroups), "subgroups")] if subgroups else []
    cfg = load_gate_config(gate_config)
    decision = evaluate_gate(evidence_from_ope(ope_report, subs, summary), cfg)
    dyn = None
    if dynamics is not None:
        from clinical_mborl.dynamics import DynamicsEnsemble

        dyn = dynamics_from_metrics(DynamicsEnsemble.load(dynamics).metrics)
    policy_path = Path(policy)
    seeds: dict[str, int] = {"ope": ope_report.settings.seed}
    if policy_path.is_dir():
        policy_seed = read_manifest(policy_path).seed
        if policy_seed is not None:
            seeds["policy"] = policy_seed
    split = ope_report.settings.eval_splits[0]
    fqe_limits = [text for text in (fqe_budget_limitation(ope_report.fqe_steps_per_iteration),
                                    fqe_prior_limitation(ope_report.settings.fqe.prior_spread,
                                                         ope_report.settings.fqe.prior_where)) if text]
    inputs = ReportInputs(
        policy_name=getattr(target, "name", policy), algorithm=getattr(target, "algo", policy),
        cohort=ts.manifest, calibration=calibration_from_behavior(clinician.calibration), dynamics=dyn,
        doses=policy_doses(target, ts, split), ope=ope_inputs(ope_report), gate=decision, explanation=summary,
        subgroups=subs, subgroup_split=split, trajectories=review_trajectories(target, ts, split),
        characteristics=characteristics_from_transitions(ts),
        limitations=fqe_limits,
        reproducibility=ReproducibilityInput(
            policy=fingerprint_policy(policy_path) if policy_path.exists()
            else PolicyFingerprint(kind="named", files={policy: ""}),
            cohort=fingerprint_cohort(cohort),
            configs={"ope": ope_report.settings.model_dump(mode="json"), "gate": cfg.model_dump(mode="json"),
                     **({"explain": summary.config.model_dump(mode="json")} if summary else {})},
            seeds=seeds, versions=library_versions(), git_sha=git_sha()),
    )
    ids = [str(x) for col in ("stay_id", "patient_key") for x in ts.frame[col].unique().to_list()]
    return write_report(build_audit_report(inputs), out, identifiers=ids, audit_log=audit_log)

def _read_text(path: Path, what: str) -> str:
    if not path.is_file():
        raise InputError(f"{what} {path}: not found; run `clinical-mborl evaluate` first.")
    return path.read_text()

