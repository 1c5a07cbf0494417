"""Builders of report inputs for tests: a toy cohort on disk, a policy artifact, evidence, metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import torch

from clinical_mborl.cohort.manifest import CohortManifest, ExclusionStep, SplitCounts
from clinical_mborl.cohort.toy import make_toy_transitions
from clinical_mborl.cohort.transitions import TransitionSet
from clinical_mborl.core.artifacts import save_artifact
from clinical_mborl.core.io import atomic_write_text, sha256_file
from clinical_mborl.explain.contrast import action_contrast
from clinical_mborl.explain.explanation import ExplainConfig, ExplanationSummary, explain_policy
from clinical_mborl.report.collect import (
    characteristics_from_transitions,
    dose_input,
    paired_from_ope,
    trajectory_input,
)
from clinical_mborl.report.fingerprint import fingerprint_cohort, fingerprint_policy
from clinical_mborl.report.gate import (
    ExplanationEvidence,
    GateConfig,
    GateDecision,
    GateEvidence,
    OverlapEvidence,
    SubgroupEvidence,
    SupportEvidence,
    evaluate_gate,
)
from clinical_mborl.report.inputs import (
    CalibrationInput,
    CoveragePoint,
    DynamicsInput,
    HorizonPoint,
    OPEEstimate,
    ReliabilityBin,
    ReportInputs,
    ReproducibilityInput,
    SensitivityRow,
    SubgroupResult,
)

SENTINEL_STAY = "STAYSENTINEL{:04d}"
SENTINEL_PATIENT = "PATSENTINEL{:04d}"


def sentinel_cohort(n_patients: int = 60, seed: int = 0) -> TransitionSet:
    """Toy transitions whose stay and patient ids are unmistakable sentinels."""
    ts = make_toy_transitions(n_patients, seed=seed)
    f = ts.frame.with_columns(
        pl.col("stay_id").str.replace("toy-", "").cast(pl.Int64).map_elements(SENTINEL_STAY.format, return_dtype=pl.Utf8),
        pl.col("patient_key").str.replace("p", "").cast(pl.Int64).map_elements(SENTINEL_PATIENT.format, return_dtype=pl.Utf8),
    )
    return TransitionSet(f, ts.manifest)


def with_flow(manifest: CohortManifest, removed: tuple[int, ...] = (3, 25)) -> CohortManifest:
    final = sum(c.stays for c in manifest.counts.values())
    stays_in = final + sum(removed)
    steps, remaining = [], stays_in
    for i, r in enumerate(removed):
        remaining -= r
        steps.append(ExclusionStep(reason=f"criterion {i + 1}", stays_removed=r, stays_remaining=remaining))
    return manifest.model_copy(update={"stays_in": stays_in, "exclusion_flow": steps})


def write_cohort(ts: TransitionSet, path: Path) -> TransitionSet:
    """Write transitions.parquet and a manifest whose transitions sha256 matches it."""
    path.mkdir(parents=True, exist_ok=True)
    ts.frame.write_parquet(path / "transitions.parquet")
    manifest = ts.manifest.model_copy(update={"transitions_sha256": sha256_file(path / "transitions.parquet")})
    atomic_write_text(path / "manifest.json", manifest.model_dump_json(indent=2))
    return TransitionSet.load(path)


def write_policy(path: Path) -> Path:
    torch.manual_seed(0)
    save_artifact(path, kind="policy", config={"algo": "toy"}, tensors={"weights": {"w": torch.randn(4, 9)}}, seed=0)
    return path


def toy_explanation(seed: int = 0) -> ExplanationSummary:
    torch.manual_seed(seed)
    ts = make_toy_transitions(30, seed=seed)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.SiLU(), torch.nn.Linear(16, ts.n_actions))
    states = ts.frame.select(ts.feature_names).to_numpy()[:20]
    target = action_contrast(net, torch.full((20,), 4), torch.zeros(20, dtype=torch.long))
    cfg = ExplainConfig(shapley_samples=30, sanity_rows=12, gradient_shap_samples=4, sanity_repeats=2)
    return explain_policy(target, states, ts.manifest.state_features, states, cfg).summary


def ope_entries(n_patients: int, diff: float = 0.08) -> list[OPEEstimate]:
    out = []
    for est, shift in (("wdr", 0.0), ("fqe", 0.01)):
        out.append(OPEEstimate(estimator=est, value=0.55 + shift, ci_low=0.45, ci_high=0.65, n_patients=n_patients,
                               ess=73.2, diagnostics={"fraction_clipped": 0.02, "n_bootstrap": 2000, "n_clipped": 4}))
        out.append(OPEEstimate(estimator=est, target="paired_difference", value=diff + shift, ci_low=diff - 0.05,
                               ci_high=diff + 0.07, lower_bound=diff - 0.04, n_patients=n_patients, ess=73.2))
    out.append(OPEEstimate(estimator="on-policy", target="clinician", value=0.5, ci_low=0.45, ci_high=0.55,
                           n_patients=n_patients))
    return out


def subgroups(n_by_level: dict[str, dict[str, int]]) -> list[SubgroupResult]:
    return [SubgroupResult(attribute=a, level=lvl, n_patients=n, estimator="wdr", difference=0.05, ci_low=0.0,
                           ci_high=0.1, lower_bound=0.01, ess=20.0)
            for a, levels in n_by_level.items() for lvl, n in levels.items()]


def evidence(ope: list[OPEEstimate], subs: list[SubgroupResult], expl: ExplanationSummary | None,
             **overrides: object) -> GateEvidence:
    base: dict[str, object] = dict(
        split="test", level=0.95, paired=paired_from_ope(ope),
        overlap=OverlapEvidence(ess=120.0, max_weight_share=0.05),
        support=SupportEvidence(threshold=0.05, share_in_support=0.97),
        subgroups=[SubgroupEvidence(attribute=s.attribute, level=s.level, n_patients=s.n_patients,
                                    difference=s.difference, lower_bound=s.lower_bound) for s in subs],
        explanation=None if expl is None else ExplanationEvidence(
            completeness_passed=expl.completeness.passed, sanity_passed=expl.sanity.passed,
            sanity_spearman=expl.sanity.full_randomisation_spearman),
    )
    base.update(overrides)
    return GateEvidence.model_validate(base)


def default_subgroup_sizes(n: int) -> dict[str, dict[str, int]]:
    return {"sex": {"F": n // 2, "M": n - n // 2}, "age_band": {"18-64": n - n // 3, "65+": n // 3},
            "severity": {"low": n // 2, "high": n - n // 2}}


def report_inputs(ts: TransitionSet, policy_dir: Path, cohort_dir: Path, expl: ExplanationSummary,
                  gate: GateDecision | None = None, manifest: CohortManifest | None = None) -> ReportInputs:
    manifest = manifest or ts.manifest
    test = ts.split("test").arrays(normalised=False)
    rng = np.random.default_rng(0)
    policy_actions = rng.integers(0, ts.n_actions, len(test))
    n_test = manifest.counts["test"].patients
    ope = ope_entries(n_test)
    subs = subgroups(default_subgroup_sizes(n_test))
    cfg = GateConfig(min_subgroup_size=1)
    gate = gate or evaluate_gate(evidence(ope, subs, expl), cfg)
    ep = ts.split("test").episodes(normalised=False)
    traj = [trajectory_input(ep.states[i, :ep.lengths[i]], list(ts.feature_names), ep.doses[i, :ep.lengths[i]],
                             ep.doses[i, :ep.lengths[i]] * 1.5, list(ts.dose_columns), 4.0, reason, outcome="survived")
            for i, reason in ((0, "most aggressive"), (1, "most optimistic"))]
    return ReportInputs(
        policy_name="toy-morel", algorithm="morel", cohort=manifest,
        characteristics=characteristics_from_transitions(ts),
        calibration=CalibrationInput(metrics={"brier": 0.18, "ece": 0.03, "n_folds": 5},
                                     bins=[ReliabilityBin(mean_predicted=p, observed=min(1.0, p + 0.02), n=n)
                                           for p, n in ((0.1, 40), (0.3, 7), (0.5, 55), (0.8, 30))]),
        dynamics=DynamicsInput(holdout_nll=-1.23, metrics={"elites": 5, "members": 7},
                               coverage=[CoveragePoint(nominal=q, observed=q - 0.03) for q in (0.5, 0.8, 0.9, 0.95)],
                               horizon_error=[HorizonPoint(horizon=h, error=0.1 * h) for h in range(1, 6)]),
        doses=dose_input(ts.manifest.action_space, test.actions, policy_actions, split="test"),
        ope=ope, gate=gate, explanation=expl, subgroups=subs, trajectories=traj,
        sensitivity=[SensitivityRow(setting="kappa=3", seed=s, estimator="wdr", difference=0.07 + 0.01 * s,
                                    ci_low=0.0, ci_high=0.15, lower_bound=0.02, gate_status="pass") for s in range(3)],
        limitations=["Toy cohort: numbers illustrate the format only."],
        reproducibility=ReproducibilityInput(policy=fingerprint_policy(policy_dir), cohort=fingerprint_cohort(cohort_dir),
                                             configs={"policy": {"algo": "morel", "kappa": 3.0}}, seeds={"policy": 0},
                                             versions={"torch": torch.__version__}),
    )


def manifest_with_counts(manifest: CohortManifest, counts: dict[str, tuple[int, int, int, int]],
                         removed: tuple[int, ...]) -> CohortManifest:
    """A manifest with arbitrary split counts (patients, stays, transitions, deaths) and flow."""
    sc = {s: SplitCounts(patients=p, stays=st, transitions=t, deaths=d) for s, (p, st, t, d) in counts.items()}
    return with_flow(manifest.model_copy(update={"counts": sc}), removed)


def ope_report():
    """A hand-made `ope.json` (OPE stage contract): WDR defined, FQE's paired difference undefined."""
    from clinical_mborl.ope import results as r

    def est(name, value, ess=None, diag=None):
        return r.OPEEstimate(estimator=name, value=value, ci_low=value - 0.1, ci_high=value + 0.1, level=0.95,
                             method="bca", lower_bound=value - 0.08, n_patients=120, n_episodes=120, n_resamples=2000,
                             ess=ess, diagnostics=diag or {})

    weights = {"ess": 80.0, "max_weight_share": 0.04, "support_share_outside": 0.02, "n_episodes": 120}
    return r.OPEReport(
        policy="p", gamma=0.99, return_bounds=(-1.0, 1.0), n_patients=120, n_episodes=120, settings=r.OPEConfig(),
        clinician=est("clinician", 0.5), estimates=[est("wdr", 0.6, 80.0, weights), est("fqe", 0.62)],
        differences=[r.PairedDifference(estimator=n, value=v, ci_low=None if v is None else v - 0.05,
                                        ci_high=None if v is None else v + 0.05, level=0.95, method="bca",
                                        lower_bound=None if v is None else v - 0.04, n_patients=120,
                                        n_resamples=2000, n_undefined_resamples=0)
                     for n, v in (("wdr", 0.1), ("fqe", None))],
        high_confidence=r.HighConfidenceBound(lower_bound=0.3, confidence=0.95, threshold_c=5.0, n_patients_bound=114,
                                              n_patients_selection=6, truncated_share=0.01),
    )
