"""The library call behind `clinical-mborl train policy`: load the inputs, train (or select over
the grid), save the artifact, summarise.

>>> parse_settings(["beta=5", "constraint.kl_weight=0.1", "hidden=[64, 64]"])
{'beta': 5, 'constraint': {'kl_weight': 0.1}, 'hidden': (64, 64)}
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from clinical_mborl.cohort import TransitionSet
from clinical_mborl.core.errors import InputError
from clinical_mborl.core.io import sha256_file
from clinical_mborl.policies.selection import SelectionConfig, model_based_value, select_policy
from clinical_mborl.policies.train import MODEL_BASED, default_config, train_policy


def parse_settings(items: Sequence[str]) -> dict[str, Any]:
    """`key=value` strings (values read as YAML scalars/lists; `constraint.x` nests) -> overrides."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set: expected key=value such as beta=5 or constraint.kl_weight=0.1, got '{item}'")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise InputError(f"--set {key}: cannot read the value '{text}'") from None
        if isinstance(value, list):
            value = tuple(value)
        head, _, sub = key.strip().partition(".")
        if sub:
            if head != "constraint":
                raise InputError(f"--set {key}: only constraint.<field> nests; got '{head}'")
            out.setdefault("constraint", {})[sub] = value
        else:
            out[head] = value
    return out


def train_policy_artifact(algo: str, cohort: Path, out: Path, behavior: Path | None = None,
                          dynamics: Path | None = None, settings: dict[str, Any] | None = None,
                          select: bool = False, quiet: bool = False) -> dict[str, Any]:
    """Train `algo` on the cohort folder, write the policy artifact to `out`, return a summary."""
    from clinical_mborl.behavior import ClinicianPolicy
    from clinical_mborl.dynamics import DynamicsEnsemble

    if algo in MODEL_BASED and dynamics is None:
        raise InputError(f"{algo}: needs --dynamics DIR (from `clinical-mborl train dynamics`).")
    transitions = TransitionSet.load(cohort)
    clinician = ClinicianPolicy.load(behavior) if behavior is not None else None
    ensemble = DynamicsEnsemble.load(dynamics) if dynamics is not None else None
    for name, art in (("behaviour policy", clinician), ("dynamics ensemble", ensemble)):
        if art is not None and art.cohort_manifest_hash != transitions.manifest_hash:
            raise InputError(f"the {name} was trained on another cohort build (manifest hash differs); "
                             "retrain it on this cohort.")
    config = default_config(algo, **{**(settings or {}), "quiet": quiet})
    summary: dict[str, Any] = {"algo": algo, "artifact": str(out),
                               "action_kind": transitions.manifest.action_space.kind}
    if select:
        chosen = select_policy(algo, transitions, clinician, ensemble, config)
        policy = chosen.policy
        summary["selection"] = {"criterion": "pessimistic model-based value on the val split",
                                "best_index": chosen.best_index, "table": chosen.table}
    else:
        policy = train_policy(algo, transitions, clinician, ensemble, config)
        if ensemble is not None and len(transitions.split("val")):
            summary["val_model_value"] = model_based_value(policy, transitions, ensemble,
                                                           SelectionConfig()).to_dict()
    trained_with = {f"{name}_manifest_sha256": sha256_file(Path(folder) / "manifest.json")
                    for name, folder in (("behavior", behavior), ("dynamics", dynamics)) if folder is not None}
    policy.save(out, trained_with=trained_with)
    summary["trained_with"] = trained_with
    summary["config"] = {k: v for k, v in policy.config.items() if k != "selection"}
    summary["final_metrics"] = policy.history[-1] if policy.history else {}
    return summary
