"""The whole flow in order: simulate -> cohort -> clinician model and dynamics -> MOReL and COMBO
-> evaluate -> subgroups -> explain -> report -> score.

Every step is one library call that writes an artifact folder under `out/`, exactly what the
corresponding CLI command would write, so a reader can re-run any step by hand:

    out/ehr/        simulate sepsis        out/cohort/      cohort build
    out/behavior/   train behavior         out/dynamics/    train dynamics
    out/<algo>/     train policy           out/ope_<algo>/  evaluate (+ subgroups.json)
    out/explain_<algo>/ explain            out/report_<algo>/ report (report.html, report.json)
    out/scores/     score (scores.csv, scores.html)

With `PipelineConfig.jobs` > 1 each learner's train -> evaluate -> explain -> report branch, and each
baseline's evaluation, runs in its own single-threaded worker process (`run_branch`, reading the saved
cohort, clinician model and dynamics); `score` then reuses those OPE reports. The serial path runs the
same function with one torch thread, so both give the same numbers.

>>> cfg = PipelineConfig.demo()
>>> cfg.algorithms
('morel', 'combo')
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field
from tqdm import tqdm

from clinical_mborl.behavior import BehaviorConfig, ClinicianPolicy, fit_behavior
from clinical_mborl.cohort import TransitionSet, load_cohort_spec
from clinical_mborl.cohort.build import build_cohort
from clinical_mborl.core.artifacts import compute_environment
from clinical_mborl.core.io import atomic_write_json
from clinical_mborl.core.models import StrictModel
from clinical_mborl.core.parallel import one_torch_thread, worker_pool
from clinical_mborl.dynamics import DynamicsConfig, DynamicsEnsemble, fit_dynamics
from clinical_mborl.explain.adapters import explain_learned_policy
from clinical_mborl.explain.explanation import ExplainConfig, save_explanation
from clinical_mborl.ope.policy_eval import evaluate_policy
from clinical_mborl.ope.results import OPEConfig, OPEReport
from clinical_mborl.policies import load_policy, train_policy
from clinical_mborl.policies.train import default_config
from clinical_mborl.report.command import report_from_artifacts
from clinical_mborl.scoring import ScoringConfig, score_candidates
from clinical_mborl.simulators.sepsis import simulate_sepsis

# The cohort specs live in the repository's `cohorts/` (the project is run from a checkout).
DEFAULT_SPEC = Path(__file__).resolve().parent.parent / "cohorts" / "sepsis_fluids_vasopressors.yaml"


class PipelineConfig(StrictModel):
    """Settings of one end-to-end run. `demo()` gives the CPU-sized defaults of `make demo`."""

    patients: int = Field(2000, ge=50, description="Simulated ICU stays.")
    seed: int = Field(0, description="One seed for the simulator, splits, learners and resamples.")
    spec: str = Field(str(DEFAULT_SPEC), description="Cohort specification YAML.")
    algorithms: tuple[str, ...] = Field(("morel", "combo"), description="Learners to train and audit.")
    baselines: tuple[str, ...] = Field(("clinician", "no-treatment", "random"),
                                       description="Comparators scored beside the learned policies.")
    behavior: dict[str, Any] = Field(default_factory=dict, description="BehaviorConfig overrides.")
    dynamics: dict[str, Any] = Field(default_factory=dict, description="DynamicsConfig overrides.")
    policy: dict[str, Any] = Field(default_factory=dict, description="Overrides for every learner config.")
    ope: dict[str, Any] = Field(default_factory=dict, description="OPEConfig overrides.")
    explain: dict[str, Any] = Field(default_factory=dict, description="ExplainConfig overrides.")
    jobs: int = Field(1, ge=1, description="Worker processes: the learners' train-evaluate-explain-report "
                      "branches and the baselines' evaluations run side by side (the same numbers as jobs=1).")

    @classmethod
    def demo(cls, **overrides: Any) -> PipelineConfig:
        """Small settings that finish in minutes on a 2-core CPU (see README for the timing)."""
        base: dict[str, Any] = {
            "patients": 3000,
            "behavior": {"n_folds": 3, "hidden_sizes": (64,), "max_epochs": 30},
            "dynamics": {"hidden_sizes": (200, 200, 200), "n_members": 7, "n_elites": 5, "max_epochs": 40},
            "policy": {"n_updates": 8000},
            "ope": {"n_resamples": 2000, "model_rollouts": 5},
            "explain": {"max_rows": 256, "shapley_samples": 100, "n_baselines": 32},
        }
        base.update(overrides)
        return cls(**base)


class PipelineResult(StrictModel):
    out: str
    reports: dict[str, str]
    scores: str
    gate: dict[str, str]
    timings_s: dict[str, float]
    # torch's threads and the CPU of the main process, which fits the clinician model and dynamics
    # (branches run single-threaded): same seed, other threads or CPU type, other weights
    compute: dict[str, str] = {}


def _timed(timings: dict[str, float], name: str, announce: bool, fn: Callable[..., Any], *args: Any,
           **kwargs: Any) -> Any:
    """Call `fn(*args, **kwargs)`, announce it when `announce`, record its wall time."""
    if announce:
        print(f"[clinical-mborl] {name} ...", flush=True)
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    timings[name] = round(time.perf_counter() - t0, 2)
    return result


def run_pipeline(out: str | Path, config: PipelineConfig | None = None, progress: bool = True) -> PipelineResult:
    """Run every stage in order on a freshly simulated cohort; return where the reports are."""
    start = time.perf_counter()
    compute = compute_environment()
    config = config or PipelineConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t: dict[str, float] = {}
    quiet = not progress
    spec = load_cohort_spec(config.spec)

    _timed(t, "simulate", progress, simulate_sepsis, config.patients, config.seed, out / "ehr", progress=progress)
    _timed(t, "cohort", progress, build_cohort, spec, out / "ehr", out / "cohort", progress=progress)
    ts = TransitionSet.load(out / "cohort")

    behavior = _timed(t, "behavior", progress, fit_behavior, ts, BehaviorConfig(seed=config.seed, **config.behavior))
    behavior.save(out / "behavior")
    behavior = ClinicianPolicy.load(out / "behavior")
    dyn_cfg = DynamicsConfig(seed=config.seed, **config.dynamics)
    ensemble = _timed(t, "dynamics", progress, fit_dynamics, ts, dyn_cfg, quiet=quiet)
    ensemble.save(out / "dynamics")
    ensemble = DynamicsEnsemble.load(out / "dynamics")

    # Each learner's train -> evaluate -> explain -> report, and each baseline's evaluation, reads
    # only the artifacts saved above: with jobs > 1 they run side by side in worker processes.
    tasks = [("learner", a) for a in config.algorithms] + [("baseline", b) for b in config.baselines]
    outcomes = _timed(t, "learners_and_baselines", progress, _run_branches, tasks, out, config, progress,
                      (ts, behavior, ensemble))
    reports: dict[str, str] = {}
    gates: dict[str, str] = {}
    evaluated: dict[str, OPEReport] = {}
    for (kind, name), outcome in zip(tasks, outcomes, strict=True):
        t.update(outcome.timings)
        if outcome.evaluation is not None:
            evaluated[str(out / name) if kind == "learner" else name] = outcome.evaluation
        if outcome.report_html is not None and outcome.gate is not None:
            reports[name], gates[name] = outcome.report_html, outcome.gate

    candidates = [str(out / a) for a in config.algorithms] + list(config.baselines)
    score_cfg = ScoringConfig(ope=OPEConfig(seed=config.seed, **config.ope), jobs=config.jobs)
    # every OPE report computed above is reused (the same settings give the same numbers)
    _timed(t, "score", progress, score_candidates, candidates, ts, behavior, ensemble, score_cfg, out / "scores",
           progress=progress, reports=evaluated)
    t["total"] = round(time.perf_counter() - start, 2)
    result = PipelineResult(out=str(out), reports=reports, scores=str(out / "scores" / "scores.html"),
                            gate=gates, timings_s=t, compute=compute)
    atomic_write_json(out / "pipeline.json", {"config": config.model_dump(mode="json"),
                                              "result": result.model_dump(mode="json")})
    return result


# ---------------------------------------------------------------------------- branches


@dataclass(frozen=True)
class BranchOutcome:
    """What one branch gives back: its OPE report (None when a baseline failed: scoring then
    evaluates it again and shows why), and for a learner its report's path and gate status."""

    evaluation: OPEReport | None
    timings: dict[str, float]
    report_html: str | None = None
    gate: str | None = None


Inputs = tuple[TransitionSet, ClinicianPolicy, DynamicsEnsemble]
_WORKER_INPUTS: dict[str, Inputs] = {}


def _inputs(out: Path) -> Inputs:
    return TransitionSet.load(out / "cohort"), ClinicianPolicy.load(out / "behavior"), DynamicsEnsemble.load(
        out / "dynamics")


def _load_worker_inputs(out: Path) -> None:
    """Worker initializer: the saved cohort, clinician model and dynamics, once per worker."""
    _WORKER_INPUTS["inputs"] = _inputs(out)


def _branch_in_worker(task: tuple[str, str], out: Path, config: PipelineConfig, announce: bool) -> BranchOutcome:
    return run_branch(task, out, config, False, announce, _WORKER_INPUTS["inputs"])


def run_branch(task: tuple[str, str], out: Path, config: PipelineConfig, progress: bool,
               announce: bool | None = None, inputs: Inputs | None = None) -> BranchOutcome:
    """One learner ("learner", algo): train -> evaluate (ope.json, subgroups.json) -> explain -> report;
    or one baseline ("baseline", spec): its OPE report with the scoring settings. Reads the saved
    cohort, clinician model and dynamics only (`inputs`, as loaded from `out`; None: load them), so it
    can run in any process. `progress`: progress bars; `announce`: a line as each step starts
    (default: as `progress`)."""
    kind, name = task
    announce = progress if announce is None else announce
    ts, behavior, ensemble = inputs if inputs is not None else _inputs(out)
    ope_cfg = OPEConfig(seed=config.seed, **config.ope)
    t: dict[str, float] = {}
    if kind == "baseline":
        try:
            policy = load_policy(name, ts, behavior)
            report = _timed(t, f"evaluate_{name}", announce, evaluate_policy, policy, ts, behavior, ensemble, ope_cfg)
        except Exception:  # noqa: BLE001 - scoring evaluates it again and turns the failure into its error row
            return BranchOutcome(None, t)
        return BranchOutcome(report, t)
    cfg = default_config(name, seed=config.seed, quiet=not progress, **config.policy)
    policy = _timed(t, f"train_{name}", announce, train_policy, name, ts, behavior, ensemble, cfg)
    policy.save(out / name)
    report = _timed(t, f"evaluate_{name}", announce, evaluate_policy, policy, ts, behavior, ensemble, ope_cfg,
                    out_dir=out / f"ope_{name}")
    explanation = _timed(t, f"explain_{name}", announce, explain_learned_policy, policy, ts, "test",
                         ExplainConfig(seed=config.seed, **config.explain))
    save_explanation(explanation, out / f"explain_{name}")
    paths = _timed(t, f"report_{name}", announce, report_from_artifacts, str(out / name), out / "cohort",
                   out / "behavior", out / f"ope_{name}", out / f"report_{name}", dynamics=out / "dynamics",
                   explanation=out / f"explain_{name}")
    gate = json.loads(Path(paths.json).read_text())["gate"]["status"]
    return BranchOutcome(report, t, str(paths.html), gate)


def _run_branches(tasks: list[tuple[str, str]], out: Path, config: PipelineConfig, progress: bool,
                  inputs: Inputs) -> list[BranchOutcome]:
    """`run_branch` over the tasks, in task order; with `config.jobs` > 1 in that many workers
    (single-threaded, as the serial path; each loads the saved inputs once), so both give the same
    numbers. `inputs`: the saved cohort, clinician model and dynamics, as loaded in this process."""
    jobs = min(config.jobs, len(tasks))
    if jobs <= 1:
        with one_torch_thread():
            return [run_branch(task, out, config, progress, inputs=inputs) for task in tasks]
    results: list[BranchOutcome | None] = [None] * len(tasks)
    # workers announce their steps; their progress bars would interleave, so one bar here counts branches
    with tqdm(total=len(tasks), desc="branches", unit="branch", disable=not progress, file=sys.stderr) as bar, \
            worker_pool(jobs, _load_worker_inputs, (out,)) as pool:
        futures = {pool.submit(_branch_in_worker, task, out, config, progress): i for i, task in enumerate(tasks)}
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
            bar.update()
    return [r for r in results if r is not None]
