"""The whole flow in order: simulate -> cohort -> clinician model and dynamics -> MOReL and COMBO
-> evaluate -> subgroups -> explain -> report -> score.

Every step is one library call that writes an artifact folder under `out/`, exactly what the
corresponding CLI command would write, so a reader can re-run any step by hand:

    out/ehr/        simulate sepsis        out/cohort/      cohort build
    out/behavior/   train behavior         out/dynamics/    train dynamics
    out/<algo>/     train policy           out/ope_<algo>/  evaluate (+ subgroups.json)
    out/explain_<algo>/ explain            out/report_<algo>/ report (report.html, report.json)
    out/scores/     score (scores.csv, scores.html)

>>> cfg = PipelineConfig.demo()
>>> cfg.algorithms
('morel', 'combo')
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field

from clinical_mborl.behavior import BehaviorConfig, ClinicianPolicy, fit_behavior
from clinical_mborl.cohort import TransitionSet, load_cohort_spec
from clinical_mborl.cohort.build import build_cohort
from clinical_mborl.core.io import atomic_write_json
from clinical_mborl.core.models import StrictModel
from clinical_mborl.dynamics import DynamicsConfig, DynamicsEnsemble, fit_dynamics
from clinical_mborl.explain.adapters import explain_learned_policy
from clinical_mborl.explain.explanation import ExplainConfig, save_explanation
from clinical_mborl.ope.policy_eval import evaluate_policy
from clinical_mborl.ope.results import OPEConfig, OPEReport
from clinical_mborl.policies import train_policy
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
    jobs: int = Field(1, ge=1, description="Worker processes for scoring.")

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

    ope_cfg = OPEConfig(seed=config.seed, **config.ope)
    reports: dict[str, str] = {}
    gates: dict[str, str] = {}
    evaluated: dict[str, OPEReport] = {}
    for algo in config.algorithms:
        cfg = default_config(algo, seed=config.seed, quiet=quiet, **config.policy)
        policy = _timed(t, f"train_{algo}", progress, train_policy, algo, ts, behavior, ensemble, cfg)
        policy.save(out / algo)
        # evaluate writes ope.json and subgroups.json (read by the report for the gate)
        evaluated[str(out / algo)] = _timed(t, f"evaluate_{algo}", progress, evaluate_policy, policy, ts, behavior,
                                            ensemble, ope_cfg, out_dir=out / f"ope_{algo}")
        explanation = _timed(t, f"explain_{algo}", progress, explain_learned_policy, policy, ts, "test",
                             ExplainConfig(seed=config.seed, **config.explain))
        save_explanation(explanation, out / f"explain_{algo}")
        paths = _timed(t, f"report_{algo}", progress, report_from_artifacts, str(out / algo), out / "cohort",
                       out / "behavior", out / f"ope_{algo}", out / f"report_{algo}", dynamics=out / "dynamics",
                       explanation=out / f"explain_{algo}")
        reports[algo] = str(paths.html)
        gates[algo] = json.loads(Path(paths.json).read_text())["gate"]["status"]

    candidates = [str(out / a) for a in config.algorithms] + list(config.baselines)
    score_cfg = ScoringConfig(ope=ope_cfg, jobs=config.jobs)
    # the learned policies' OPE reports are reused (the same settings give the same numbers)
    _timed(t, "score", progress, score_candidates, candidates, ts, behavior, ensemble, score_cfg, out / "scores",
           progress=progress, reports=evaluated)
    result = PipelineResult(out=str(out), reports=reports, scores=str(out / "scores" / "scores.html"),
                            gate=gates, timings_s=t)
    atomic_write_json(out / "pipeline.json", {"config": config.model_dump(mode="json"),
                                              "result": result.model_dump(mode="json")})
    return result
