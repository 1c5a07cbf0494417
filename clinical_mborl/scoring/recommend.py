"""`export_recommendations`: dose recommendations, written only behind a passing gate.

The guard (`report.guard.recommend_guard`) checks that `report.json` exists, that its gate
passed, that the policy artifact and the cohort are byte-identical to the audited ones and that
the audit log records the decision; otherwise RefusedError (exit 2) with every reason. The export
itself is appended to the hash-chained audit log.

>>> export_recommendations("out/morel", "out/report_morel", "out/cohort", "out/reco")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from clinical_mborl.behavior import ClinicianPolicy
from clinical_mborl.cohort import TransitionSet
from clinical_mborl.core.io import atomic_write_with
from clinical_mborl.policies import load_policy
from clinical_mborl.report.guard import recommend_guard, record_export

RECOMMENDATIONS_FILE = "recommendations.csv"


def recommendation_frame(policy_spec: str, transitions: TransitionSet, behavior: ClinicianPolicy | None) -> pl.DataFrame:
    """One row per decision step: the pseudonymised patient key, the step and the recommended doses."""
    policy = load_policy(policy_spec, transitions, behavior)
    states = transitions.frame.select(transitions.feature_names).to_numpy().astype(np.float64)
    space = transitions.manifest.action_space
    columns: dict[str, object] = {
        "patient_key": transitions.frame["patient_key"],
        "step": transitions.frame["step"],
    }
    if space.kind == "discrete":
        probs = np.asarray(policy.action_probabilities(states))
        action = probs.argmax(axis=1)
        doses = space.doses_of(action)
        columns["recommended_action"] = action
        columns["recommended_probability"] = probs[np.arange(len(action)), action]
        if behavior is not None:
            pb = np.asarray(behavior.action_probabilities(states))
            columns["clinician_probability_of_recommended"] = pb[np.arange(len(action)), action]
        columns["clinician_action"] = transitions.frame["action"]
    else:
        doses = np.asarray(policy.sample_actions(states, np.random.default_rng(0)), dtype=np.float64)
    for j, dim in enumerate(space.dimensions):
        columns[f"recommended_{dim.name}"] = doses[:, j]
        columns[f"clinician_{dim.name}"] = transitions.frame[dim.name]
    return pl.DataFrame(columns)


def export_recommendations(policy: str | Path, report_dir: str | Path, cohort_dir: str | Path, out_dir: str | Path,
                           *, behavior_dir: str | Path | None = None, split: str = "test",
                           audit_log: str | Path | None = None) -> Path:
    """Refuse unless the gate passed for this exact policy and cohort; else write recommendations.csv."""
    guard = recommend_guard(policy, report_dir, cohort_dir, audit_log=audit_log)
    transitions = TransitionSet.load(cohort_dir).split(split)
    behavior = ClinicianPolicy.load(behavior_dir) if behavior_dir is not None else None
    frame = recommendation_frame(str(policy), transitions, behavior)
    path = Path(out_dir) / RECOMMENDATIONS_FILE
    atomic_write_with(path, lambda tmp: frame.write_csv(tmp))
    record_export(guard, path, {"split": split, "rows": frame.height})
    return path
