"""`score_candidates`: load, evaluate off-policy and gate-check many candidate policies; rank them.

Per candidate (`score_candidate`, the same function in a worker process or in this one):
1. `load_policy(spec, transitions, behavior)`; a failure becomes a row with status "error";
2. `evaluate_policy` with `ScoringConfig.ope` -- identical settings and seed for every candidate,
   hence the same patient resample plan, so paired differences are comparable across rows;
3. the gate: `report.collect.evidence_from_ope` -> `report.gate.evaluate_gate` with
   `ScoringConfig.gate`;
4. clinician agreement and (MOReL artifacts) the HALT rate (`scoring.metrics`).

The `clinician` candidate is the reference itself: its paired differences are 0 by definition
(zero-width intervals), in the table and in its gate evidence. Its value columns keep each
estimator's own estimate of the clinician's value, so an estimator's gap to `clinician_value`
on that row shows its error on a policy whose value is known.

Workers are spawned processes with one torch thread each; the serial path also runs with one
torch thread, so a parallel run gives the same numbers as a serial one.

Outputs under `out_dir`: `scores.csv`, `scores.html` (both atomic), `ope/<NN>_<label>/ope.json`
per scored candidate, and one `gate_decision` entry per scored candidate in the hash-chained
audit log (default `out_dir/audit_log.jsonl`).

>>> table = score_candidates(["clinician", "runs/morel"], ts, clinician, ensemble,
...                          ScoringConfig(), "out/scores")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from clinical_mborl.behavior import ClinicianPolicy
from clinical_mborl.cohort import TransitionSet
from clinical_mborl.core.errors import ClinicalMBORLError, InputError
from clinical_mborl.core.io import atomic_write_text, sha256_bytes
from clinical_mborl.core.parallel import one_torch_thread, worker_pool
from clinical_mborl.dynamics import DynamicsEnsemble
from clinical_mborl.ope import OPEReport, evaluate_policy
from clinical_mborl.ope.sensitivity_entries import (
    nest_sensitivity,
    sensitivity_entry,
    sensitivity_name,
)
from clinical_mborl.policies import load_policy
from clinical_mborl.report.audit_log import append_entry
from clinical_mborl.report.collect import evidence_from_ope
from clinical_mborl.report.gate import GateDecision, evaluate_gate
from clinical_mborl.scoring.candidates import Candidate, candidate_labels, slug
from clinical_mborl.scoring.config import ScoringConfig
from clinical_mborl.scoring.metrics import clinician_agreement, halt_rate
from clinical_mborl.scoring.render import render_scores_html
from clinical_mborl.scoring.table import EstimatorScore, ScoreRow, ScoreTable, rank_rows

SCORES_CSV = "scores.csv"
SCORES_HTML = "scores.html"
AUDIT_LOG = "audit_log.jsonl"
OPE_DIR = "ope"
REFERENCE_NOTE = ("clinician reference: paired differences are 0 by definition; each value column is that "
                  "estimator's estimate of the clinician's value (compare with clinician_value)")


@dataclass(frozen=True)
class CandidateResult:
    """What scoring one candidate gives: its row (unranked), and when scored its OPE report and gate."""

    row: ScoreRow
    report: OPEReport | None = None
    decision: GateDecision | None = None


def as_reference(report: OPEReport) -> OPEReport:
    """`report` with every paired difference set to exactly 0 (the clinician against itself)."""
    zero = {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0, "lower_bound": 0.0, "n_undefined_resamples": 0}
    return report.model_copy(update={"differences": [d.model_copy(update=zero) for d in report.differences]})


def _estimator_scores(report: OPEReport, estimators: Sequence[str]) -> list[EstimatorScore]:
    by_name = {e.estimator: e for e in report.estimates}
    diffs = {d.estimator: d for d in report.differences}
    out = []
    for name in estimators:
        e, d = by_name.get(name), diffs.get(name)
        if e is None:
            out.append(EstimatorScore(estimator=name, skipped=report.skipped.get(name, "not run")))
            continue
        out.append(EstimatorScore(
            estimator=name, value=e.value, ci_low=e.ci_low, ci_high=e.ci_high,
            diff=d.value if d else None, diff_ci_low=d.ci_low if d else None,
            diff_ci_high=d.ci_high if d else None, diff_lower_bound=d.lower_bound if d else None))
    return out


def _sensitivity_scores(report: OPEReport, fqe: EstimatorScore | None, reference: bool) -> list[EstimatorScore]:
    """FQE's sensitivity intervals, nested in Lambda around FQE's own (`ope.sensitivity_entries`);
    no paired difference on the reference row, whose difference with itself is 0 by definition."""
    lambdas = tuple(sorted(b.lam for b in report.sensitivity))
    if not lambdas or fqe is None:
        return []
    entries: dict[str, dict[str, Any]] = {"fqe": fqe.model_dump()}
    entries.update({sensitivity_name(b.lam): sensitivity_entry(b) for b in report.sensitivity})
    nest_sensitivity(entries, lambdas)
    fields = ("value", "ci_low", "ci_high") + (() if reference else ("diff", "diff_ci_low", "diff_ci_high",
                                                                    "diff_lower_bound"))
    return [EstimatorScore(estimator=sensitivity_name(lam),
                           **{f: entries[sensitivity_name(lam)].get(f) for f in fields}) for lam in lambdas]


def _overlap_numbers(report: OPEReport) -> tuple[float | None, float | None]:
    """(Kish ESS, out-of-support share) from the first importance-weighted estimator."""
    weighted = next((e for e in report.estimates if e.ess is not None), None)
    if weighted is None:
        return None, None
    outside = weighted.diagnostics.get("support_share_outside")
    return weighted.ess, float(outside) if isinstance(outside, int | float) else None


def gate_reasons(decision: GateDecision) -> list[str]:
    """One line per check that did not pass, with its observed number and threshold."""
    out = []
    for c in decision.checks:
        if c.status in ("fail", "inconclusive"):
            numbers = "; ".join(f"{k} {v}" for k, v in (("observed", c.observed), ("threshold", c.threshold))
                                if v is not None)
            out.append(f"{c.name}: {c.status} ({numbers + '; ' if numbers else ''}{c.detail})")
    return out


def _error_row(c: Candidate, exc: BaseException) -> CandidateResult:
    reason = str(exc) if isinstance(exc, ClinicalMBORLError) else f"internal error ({type(exc).__name__}: {exc})"
    return CandidateResult(ScoreRow(candidate=c.label, kind=c.kind, status="error", reasons=[reason]))


def score_candidate(candidate: Candidate, transitions: TransitionSet, behavior: ClinicianPolicy,
                    dynamics: DynamicsEnsemble | None, config: ScoringConfig,
                    report: OPEReport | None = None) -> CandidateResult:
    """Steps 1-4 of the module recipe for one candidate; never raises for a bad candidate.

    `report`: this candidate's `evaluate_policy` result with `config.ope`, already computed by the
    caller (step 2 is then skipped; see `score_candidates`)."""
    try:
        policy = load_policy(candidate.spec, transitions, behavior)
    except Exception as exc:  # noqa: BLE001 - any load failure is this candidate's error row
        return _error_row(candidate, exc)
    try:
        ope = config.ope
        if report is None:
            report = evaluate_policy(policy, transitions, behavior, dynamics, ope)
        reference = policy is behavior
        gated = as_reference(report) if reference else report
        decision = evaluate_gate(evidence_from_ope(gated), config.gate)
        agree = clinician_agreement(policy, transitions, ope.eval_splits)
        halt = halt_rate(policy, transitions, dynamics, ope.eval_splits, ope.model_rollouts, ope.seed)
    except Exception as exc:  # noqa: BLE001 - a failing candidate must not sink the batch
        return _error_row(candidate, exc)
    ess, outside = _overlap_numbers(report)
    scores = _estimator_scores(gated, ope.estimators)
    fqe = next((e for e in scores if e.estimator == "fqe" and e.skipped is None), None)
    notes = [REFERENCE_NOTE] if reference else []
    notes += [f"{name} skipped: {why}" for name, why in sorted(report.skipped.items())]
    notes += [n for n in (agree.note, halt.note) if n]
    notes += [f"{e.estimator}: estimate outside the return range {report.return_bounds}, projected onto it"
              for e in report.estimates if e.value_projected]
    row = ScoreRow(
        candidate=candidate.label, kind=candidate.kind, status=decision.status,
        clinician_value=report.clinician.value, estimates=scores + _sensitivity_scores(report, fqe, reference),
        ess=ess, agreement=agree.agreement, mean_prob_logged=agree.mean_probability_logged,
        out_of_support_rate=outside, halt_rate=halt.rate, reasons=gate_reasons(decision), notes=notes,
    )
    return CandidateResult(row, report, decision)


# ---------------------------------------------------------------------------- parallel plumbing

_WORKER: dict[str, Any] = {}


def _init_worker(transitions: TransitionSet, behavior: ClinicianPolicy, dynamics: DynamicsEnsemble | None,
                 config: ScoringConfig) -> None:
    _WORKER.update(transitions=transitions, behavior=behavior, dynamics=dynamics, config=config)


def _score_in_worker(candidate: Candidate, report: OPEReport | None) -> CandidateResult:
    return score_candidate(candidate, **_WORKER, report=report)


def _n_jobs(config: ScoringConfig, n: int) -> int:
    return max(1, min(n, config.jobs if config.jobs is not None else (os.cpu_count() or 1)))


def _run_all(candidates: list[Candidate], transitions: TransitionSet, behavior: ClinicianPolicy,
             dynamics: DynamicsEnsemble | None, config: ScoringConfig, progress: bool,
             reports: Mapping[str, OPEReport]) -> list[CandidateResult]:
    jobs = _n_jobs(config, sum(c.spec not in reports for c in candidates))  # reused reports need no worker
    bar = tqdm(total=len(candidates), desc="score", unit="candidate", disable=not progress, file=sys.stderr)
    results: list[CandidateResult | None] = [None] * len(candidates)
    try:
        if jobs == 1:
            with one_torch_thread():
                for c in candidates:
                    results[c.index] = score_candidate(c, transitions, behavior, dynamics, config, reports.get(c.spec))
                    bar.update()
        else:
            with worker_pool(jobs, _init_worker, (transitions, behavior, dynamics, config)) as pool:
                futures = {pool.submit(_score_in_worker, c, reports.get(c.spec)): c for c in candidates}
                for fut in as_completed(futures):
                    results[futures[fut].index] = fut.result()
                    bar.update()
    except BrokenProcessPool as exc:
        raise ClinicalMBORLError(
            "score: a worker process died before finishing (out of memory, or a script without an "
            "`if __name__ == \"__main__\":` guard, which spawned workers re-import). Run with jobs=1 "
            "(--jobs 1) or guard the calling script.") from exc
    finally:
        bar.close()
    return [r for r in results if r is not None]


# ---------------------------------------------------------------------------- entry point


def score_candidates(
    candidates: list[str],
    transitions: TransitionSet,
    behavior: ClinicianPolicy,
    dynamics: DynamicsEnsemble | None,
    config: ScoringConfig,
    out_dir: str | Path,
    progress: bool = True,
    *,
    audit_log: str | Path | None = None,
    reports: Mapping[str, OPEReport] | None = None,
) -> ScoreTable:
    """Score every candidate (see the module docstring), write the outputs, return the ranked table.

    Candidates that cannot be loaded or evaluated get a row with status "error" and the reason;
    the table is written whatever happens to individual candidates.

    `reports` maps a candidate (as given in `candidates`) to the `evaluate_policy` report the caller
    has just computed for that same policy, transitions, behaviour and dynamics with `config.ope`
    (the pipeline's evaluate step); it is reused instead of evaluating again (the same numbers: OPE is
    deterministic given its settings). A report with other settings is refused.
    """
    reports = dict(reports or {})
    for spec, rep in reports.items():
        if spec not in candidates:
            raise InputError(f"score: a precomputed OPE report for {spec!r}, which is not among the candidates.")
        if rep.settings != config.ope:
            raise InputError(f"score: the precomputed OPE report for {spec!r} was made with other settings than "
                             "the scoring config's `ope`; evaluate again or pass the same OPEConfig.")
    ids = [x for col in ("stay_id", "patient_key") for x in transitions.frame[col].unique().to_list()]
    labelled = candidate_labels(candidates, ids)
    results = _run_all(labelled, transitions, behavior, dynamics, config, progress, reports)
    rows = rank_rows([r.row for r in results], config.primary_estimator)
    table = ScoreTable(rows=rows, config=config, cohort_manifest_hash=transitions.manifest_hash,
                       notes=_table_notes(config))
    out = Path(out_dir)
    csv_text = table.to_csv()
    for c, r in zip(labelled, results, strict=True):
        if r.report is not None:
            r.report.write(out / OPE_DIR / f"{c.index + 1:02d}_{slug(c.label)}")
    atomic_write_text(out / SCORES_CSV, csv_text)
    atomic_write_text(out / SCORES_HTML, render_scores_html(table))
    _record_decisions(Path(audit_log) if audit_log is not None else out / AUDIT_LOG, labelled, results,
                      transitions.manifest_hash, sha256_bytes(csv_text.encode()))
    return table


def _table_notes(config: ScoringConfig) -> list[str]:
    notes = [f"Ranking: one-sided {config.ope.level:.0%} lower bound of the {config.primary_estimator} paired "
             "difference, then the difference, then the order given."]
    g = config.gate
    if not g.subgroup_attributes or not g.require_explanation_sanity:
        notes.append("Screening gate: subgroup and explanation-sanity checks are not run by `score`; a pass here "
                     "is necessary, not sufficient. Run `clinical-mborl report` for the full gate.")
    if config.ope.soften_epsilon > 0:
        notes.append(f"Candidates are evaluated softened with the clinician (eps = {config.ope.soften_epsilon}); "
                     "agreement and out-of-support use the candidate as it is.")
    return notes


def _record_decisions(log: Path, labelled: list[Candidate], results: list[CandidateResult],
                      cohort_hash: str, csv_sha: str) -> None:
    for c, r in zip(labelled, results, strict=True):
        if r.decision is None:
            continue
        append_entry(log, "gate_decision", {
            "source": "score", "candidate": c.label, "status": r.decision.status, "passed": r.decision.passed,
            "reasons": r.decision.reasons, "evidence_sha256": r.decision.evidence_sha256,
            "cohort_manifest_hash": cohort_hash, "scores_csv_sha256": csv_sha,
        })
