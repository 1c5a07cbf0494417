"""`run_study`: the coverage study and the gate study, end to end.

1. check the candidates; prepare (or reuse) the reference folder (`reference.py`);
2. the truth of every candidate, once, cached (`truth.py`);
3. R replicates in parallel (`replicate.py`), each saved atomically as
   ``OUT/replicates/rep_NNNNN.json`` as soon as it finishes; a re-run with the same settings
   resumes (only the missing ones run); other settings in the same OUT are refused;
4. the summary: ``OUT/coverage.json`` + ``OUT/coverage.md`` (coverage study) or ``OUT/gate.json``
   + ``OUT/gate.md`` (gate study), written atomically. The two studies read the same replicates,
   so both can be run on one OUT.

>>> run_study("coverage", StudyConfig(replicates=3, patients=60), "out/study")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from clinical_mborl.core.errors import InputError
from clinical_mborl.core.io import atomic_write_json, atomic_write_text
from clinical_mborl.core.models import StrictModel
from clinical_mborl.simulators.sepsis.ground_truth import Z95
from clinical_mborl.studies.candidates import check_candidates, resolve_kind
from clinical_mborl.studies.config import StudyConfig
from clinical_mborl.studies.coverage import (
    CoverageRow,
    GateEstimatorChoice,
    OverlapRow,
    RankingRow,
    TruthPair,
    coverage_rows,
    ok_replicates,
    overlap_rows,
    ranking_rows,
    select_gate_estimator,
)
from clinical_mborl.studies.gate_summary import GateRow, GateStudyVerdict, gate_rows, gate_verdict
from clinical_mborl.studies.parallel import default_jobs, iter_tasks
from clinical_mborl.studies.reference import load_base_spec, prepare_reference, reference_weights
from clinical_mborl.studies.render import render_coverage, render_gate
from clinical_mborl.studies.replicate import replicate_task
from clinical_mborl.studies.truth import TruthRecord, compute_truths, paired_difference

StudyKind = Literal["coverage", "gate"]
REPLICATES_DIR = "replicates"
STUDY_FILE = "study.json"


class StudyTiming(StrictModel):
    wall_seconds: float = Field(description="Wall time of this invocation (reference, truth, replicates).")
    replicates_run: int = Field(description="Replicates computed by this invocation (others were resumed).")
    mean_replicate_seconds: float | None = Field(description="Mean worker time of one replicate.")
    jobs: int
    projected_wall_seconds_r200: float | None = Field(description="mean_replicate_seconds x 200 / jobs.")


class StudyResult(StrictModel):
    """What `coverage.json` / `gate.json` hold."""

    kind: StudyKind
    config: StudyConfig
    fingerprint: str
    reference_dir: str
    n_replicates: int
    n_errors: int
    errors: list[str]
    mean_patients_evaluated: float | None
    truths: dict[str, TruthRecord]
    overlap: list[OverlapRow] = Field(default_factory=list)
    coverage: list[CoverageRow] = Field(default_factory=list)
    ranking: list[RankingRow] = Field(default_factory=list)
    unresolved_truth_pairs: list[TruthPair] = Field(
        default_factory=list, description="Candidate pairs whose true order lies within 1.96 Monte Carlo SE.")
    choice: GateEstimatorChoice | None = None
    reference_weights: dict[str, str] = Field(
        default_factory=dict, description="Digest of the reference's clinician model and learned candidates' "
        "weights (`studies.reference.reference_weights`): studies with different digests evaluated different "
        "policies. Empty in results written before the sixteenth session.")
    gate: list[GateRow] = Field(default_factory=list)
    verdict: GateStudyVerdict | None = None
    timing: StudyTiming


def _replicate_path(out: Path, index: int) -> Path:
    return out / REPLICATES_DIR / f"rep_{index:05d}.json"


def _check_out(config: StudyConfig, out: Path) -> None:
    marker = out / STUDY_FILE
    if marker.is_file():
        saved = json.loads(marker.read_text())
        if saved.get("fingerprint") not in config.accepted_fingerprints():
            raise InputError(f"study: {out} holds replicates made with other settings; pass another --out "
                             "or the same settings (only --replicates and --jobs may change).")
    else:
        atomic_write_json(marker, {"fingerprint": config.fingerprint(), "config": config.model_dump(mode="json")})


def run_selected_replicates(config: StudyConfig, out: str | Path, ref_dir: str | Path, indices: list[int],
                            jobs: int, log: Callable[[str], None] = print) -> list[int]:
    """Run the data sets numbered `indices` that `out` does not hold yet and save them there, without a
    summary: a paired pilot may re-run chosen data sets of a study, e.g. those where its bound failed
    (`benchmarks/pilot_study.py --indices`). The reference in `ref_dir` is checked against `config`
    (built if missing), as `run_study` does. Returns the indices run."""
    bad = [i for i in indices if i < 0]
    if bad:
        raise InputError(f"study: data set numbers start at 0, got {bad[:5]}.")
    out, ref_dir = Path(out), Path(ref_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_out(config, out)
    prepare_reference(config, ref_dir, log)
    missing = [i for i in dict.fromkeys(indices) if not _replicate_path(out, i).is_file()]
    _run_tasks(config, out, ref_dir, missing, jobs, log)
    return missing


def _run_tasks(config: StudyConfig, out: Path, ref_dir: Path, indices: list[int], jobs: int,
               log: Callable[[str], None]) -> None:
    started = time.perf_counter()
    for k, (index, result) in enumerate(iter_tasks(replicate_task, indices, jobs, ref_dir,
                                                   config.model_dump_json()), start=1):
        atomic_write_json(_replicate_path(out, index), result)
        elapsed = time.perf_counter() - started
        eta = elapsed / k * (len(indices) - k)
        log(f"replicate {index} done in {result['seconds']:.1f} s ({k}/{len(indices)}; elapsed {elapsed:.0f} s, "
            f"eta {eta:.0f} s){' ERROR: ' + result['error'] if 'error' in result else ''}")


def run_replicates(config: StudyConfig, out: Path, ref_dir: Path, jobs: int,
                   log: Callable[[str], None]) -> tuple[list[dict[str, Any]], int]:
    """Run the missing replicates 0..R-1 (resuming the saved ones); all results and how many ran."""
    missing = [i for i in range(config.replicates) if not _replicate_path(out, i).is_file()]
    if missing:
        log(f"replicates: {len(missing)} to run ({config.replicates - len(missing)} resumed), {jobs} job(s)")
        _run_tasks(config, out, ref_dir, missing, jobs, log)
    results = [json.loads(_replicate_path(out, i).read_text()) for i in range(config.replicates)]
    accepted = config.accepted_fingerprints()
    stale = [r["replicate"] for r in results if r.get("fingerprint") not in accepted]
    if stale:
        raise InputError(f"study: replicate file(s) {stale[:5]} in {out / REPLICATES_DIR} come from other settings.")
    return results, len(missing)


def run_study(kind: StudyKind, config: StudyConfig, out: str | Path, ref_dir: str | Path | None = None,
              jobs: int | None = None, log: Callable[[str], None] = print) -> StudyResult:
    """Run (or resume) a study and write its summary; see the module text."""
    started = time.perf_counter()
    out = Path(out)
    check_candidates(config.candidates)
    jobs = default_jobs() if jobs is None else max(1, int(jobs))
    out.mkdir(parents=True, exist_ok=True)
    _check_out(config, out)
    ref_path = Path(ref_dir) if ref_dir is not None else out / "reference"
    reference = prepare_reference(config, ref_path, log)
    truths = compute_truths(config, ref_path, reference.fingerprint, jobs, log)
    results, ran = run_replicates(config, out, ref_path, jobs, log)
    result = summarise(kind, config, results, truths, str(ref_path), ran, jobs, time.perf_counter() - started,
                       weights=reference_weights(ref_path))
    atomic_write_text(out / f"{kind}.json", result.model_dump_json(indent=2) + "\n")
    atomic_write_text(out / f"{kind}.md", render_coverage(result) if kind == "coverage" else render_gate(result))
    return result


def summarise(kind: StudyKind, config: StudyConfig, results: list[dict[str, Any]], truths: dict[str, TruthRecord],
              reference_dir: str, ran: int, jobs: int, wall: float,
              weights: dict[str, str] | None = None) -> StudyResult:
    """Aggregate replicate results against the truths into a `StudyResult`."""
    clin = truths["clinician"]
    values = {c: (t.value, t.mc_se) for c, t in truths.items()}
    diffs = {c: (0.0, 0.0) if c == "clinician" else paired_difference(t, clin) for c, t in truths.items()}
    ok = ok_replicates(results)
    errors = [f"replicate {r['replicate']}: {r['error']}" for r in results if "error" in r]
    seconds = [r["seconds"] for r in results if "seconds" in r]
    mean_s = sum(seconds) / len(seconds) if seconds else None
    common: dict[str, Any] = dict(
        kind=kind, config=config, fingerprint=config.fingerprint(), reference_dir=reference_dir,
        reference_weights=weights or {},
        n_replicates=len(results), n_errors=len(errors), errors=errors[:20],
        mean_patients_evaluated=(sum(r["n_patients_eval"] for r in ok) / len(ok)) if ok else None,
        truths=truths, overlap=overlap_rows(results, config.candidates),
        timing=StudyTiming(wall_seconds=wall, replicates_run=ran, mean_replicate_seconds=mean_s, jobs=jobs,
                           projected_wall_seconds_r200=None if mean_s is None else mean_s * 200 / jobs),
    )
    if kind == "coverage":
        rows = coverage_rows(results, values, diffs)
        unresolved = unresolved_pairs(truths)
        ranking = ranking_rows(results, {c: v for c, (v, _) in values.items()}, unresolved)
        reward = load_base_spec(config.spec_path).reward
        span = abs(reward.survival_reward - reward.death_reward)  # width of the outcome-return range
        return StudyResult(**common, coverage=rows, ranking=ranking, unresolved_truth_pairs=unresolved,
                           choice=select_gate_estimator(rows, ranking, diffs, max_width=span))
    learned = [c for c in config.candidates if resolve_kind(c) == "learned"]
    rows_g = gate_rows(results, {c: d for c, d in diffs.items() if c != "clinician"})
    return StudyResult(**common, gate=rows_g, verdict=gate_verdict(rows_g, learned))


def unresolved_pairs(truths: dict[str, TruthRecord]) -> list[TruthPair]:
    """Candidate pairs whose truths differ by less than 1.96 paired Monte Carlo SE (order not settled)."""
    names = list(truths)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            diff, se = paired_difference(truths[a], truths[b])
            if abs(diff) < Z95 * se:
                hi, lo = (a, b) if diff >= 0 else (b, a)
                out.append(TruthPair(higher=hi, lower=lo, difference=abs(diff), mc_se=se))
    return out
