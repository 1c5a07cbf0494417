"""`load_policy`: turn the `P` of the command line into a Policy (CONTRACTS.md §5).

`P` is a trained artifact folder, a protocol YAML file, or one of `clinician` (the estimated
behaviour policy), `random`, `no-treatment`.

>>> from clinical_mborl.cohort.toy import make_toy_transitions
>>> load_policy("no-treatment", make_toy_transitions(10, seed=0)).name
'no-treatment'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clinical_mborl.cohort import TransitionSet
from clinical_mborl.core.artifacts import MANIFEST
from clinical_mborl.core.errors import InputError
from clinical_mborl.core.policy import Policy
from clinical_mborl.policies.baselines import NoTreatmentPolicy, RandomPolicy
from clinical_mborl.policies.learned import LearnedPolicy
from clinical_mborl.policies.protocols import load_protocol

NAMED = ("clinician", "random", "no-treatment")


def load_policy(spec: str, transitions: TransitionSet, behavior: Any = None, *,
                same_cohort: bool = True) -> Policy:
    """Resolve `spec` against the cohort `transitions`.

    Artifacts are verified (sha256) and must match the cohort's features and action space; with
    `same_cohort` (default) also the cohort manifest they were trained on. `behavior` is the
    clinician policy: needed for `clinician` and for policies trained with a support mask.
    """
    names, space = transitions.feature_names, transitions.manifest.action_space
    if spec == "clinician":
        if behavior is None:
            raise InputError("policy 'clinician' needs the estimated behaviour policy; pass --behavior DIR "
                             "(from `clinical-mborl train behavior`).")
        return behavior  # type: ignore[no-any-return]
    if spec == "random":
        return RandomPolicy(names, space)
    if spec == "no-treatment":
        return NoTreatmentPolicy(names, space)
    path = Path(spec)
    if path.is_dir() and (path / MANIFEST).is_file():
        policy = LearnedPolicy.load(path, behavior=behavior)
        _check_compatible(policy, transitions, same_cohort, spec)
        return policy
    if path.is_file() and path.suffix.lower() in (".yaml", ".yml"):
        return load_protocol(path, names, space)
    raise InputError(f"policy '{spec}': expected a policy artifact folder (with {MANIFEST}), a protocol "
                     f"YAML file (.yaml/.yml), or one of {list(NAMED)}; got neither.")


def _check_compatible(policy: LearnedPolicy, transitions: TransitionSet, same_cohort: bool, spec: str) -> None:
    if policy.feature_names != transitions.feature_names:
        raise InputError(f"policy {spec}: trained on features {list(policy.feature_names)}, but the cohort "
                         f"has {list(transitions.feature_names)}; use a policy trained on this cohort.")
    if policy.action_space != transitions.manifest.action_space:
        raise InputError(f"policy {spec}: its action space differs from the cohort's (kind, dimensions or "
                         "levels); use a policy trained on this cohort.")
    if same_cohort and policy.cohort_manifest_hash != transitions.manifest_hash:
        raise InputError(f"policy {spec}: trained on another cohort build (manifest hash differs); "
                         "retrain on this cohort, or pass same_cohort=False to apply it across cohorts.")
