"""Candidate policies of a study: named baselines, built-in protocols, learned policies, YAML files.

Names (`resolve_kind`):

- ``clinician`` -- the clinician model refitted on each replicate (its OPE value is the on-policy
  mean); its truth is the simulated clinician itself (`UsualCare`);
- ``no-treatment``, ``random`` -- `policies.baselines`;
- ``fluids-only`` -- a harmful protocol: liberal fluids, never vasopressors (`BUILTIN_PROTOCOLS`);
- ``early-vasopressor`` -- a protocol that starts norepinephrine as soon as MAP < 70 mmHg;
- ``bc``, ``cql``, ``cql-kl`` -- learned ONCE on a separate simulated data set (`LEARNED`):
  behaviour cloning (stochastic), discrete CQL acting greedily inside clinician support, and CQL
  with a KL prior to the clinician (pi ~ pi_b^(w/(tau+w)) exp(Q/(tau+w)), a stochastic policy
  kept close to the clinician);
- any ``*.yaml`` path -- a protocol file (`policies.protocols`).

`SoftenedPolicy` is the policy the IS estimators actually evaluate,
pi' = (1 - eps) pi_e + eps pi_b (`ope.data.soften`), and `truth_policy` hands it to the closed
loop, so the truth is the value of exactly what the estimators estimate.

>>> resolve_kind("bc"), resolve_kind("fluids-only"), resolve_kind("my.yaml")
('learned', 'protocol', 'yaml')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from clinical_mborl.cohort import ActionSpaceInfo
from clinical_mborl.core.errors import InputError
from clinical_mborl.core.policy import Policy
from clinical_mborl.ope.data import soften
from clinical_mborl.policies import (
    NoTreatmentPolicy,
    ProtocolPolicy,
    RandomPolicy,
    load_protocol,
    parse_protocol,
)
from clinical_mborl.simulators.sepsis.policies import UsualCare

Kind = Literal["clinician", "baseline", "protocol", "learned", "yaml"]

BUILTIN_PROTOCOLS: dict[str, str] = {
    "fluids-only": """
name: fluids-only
description: Harmful by design. Liberal fluids (level 4) for MAP < 65 mmHg or lactate >= 2 mmol/L,
  otherwise level 3; never a vasopressor.
default: {iv_fluid_ml: 3, norepinephrine_eq_ug_kg_min: 0}
rules:
  - when: {map_mmhg: {lt: 65}}
    then: {iv_fluid_ml: 4}
  - when: {lactate_mmol_l: {ge: 2}}
    then: {iv_fluid_ml: 4}
""",
    "early-vasopressor": """
name: early-vasopressor
description: Norepinephrine as soon as MAP < 70 mmHg (higher levels below 65 and 60), fluids
  level 2 with hypotension or level 3 for lactate >= 4 mmol/L, otherwise level 1.
default: {iv_fluid_ml: 1, norepinephrine_eq_ug_kg_min: 0}
rules:
  - when: {map_mmhg: {lt: 60}}
    then: {norepinephrine_eq_ug_kg_min: 3, iv_fluid_ml: 2}
  - when: {map_mmhg: {lt: 65}}
    then: {norepinephrine_eq_ug_kg_min: 2, iv_fluid_ml: 2}
  - when: {map_mmhg: {lt: 70}}
    then: {norepinephrine_eq_ug_kg_min: 1}
  - when: {lactate_mmol_l: {ge: 4}}
    then: {iv_fluid_ml: 3}
""",
}

#: learned candidates: (algorithm, config overrides); `n_updates` comes from the study config.
LEARNED: dict[str, tuple[str, dict[str, Any]]] = {
    "bc": ("bc", {"hidden": (64, 64), "lr": 1e-3}),
    "cql": ("cql", {"hidden": (64, 64), "alpha": 1.0}),
    "cql-kl": ("cql", {"hidden": (64, 64), "alpha": 1.0, "soft_q_temperature": 0.05,
                       "constraint": {"kl_weight": 0.2}}),
}
BASELINES = ("no-treatment", "random")


def resolve_kind(name: str) -> Kind:
    """Which family a candidate name belongs to; InputError for an unknown name."""
    if name == "clinician":
        return "clinician"
    if name in BASELINES:
        return "baseline"
    if name in BUILTIN_PROTOCOLS:
        return "protocol"
    if name in LEARNED:
        return "learned"
    if name.lower().endswith((".yaml", ".yml")):
        return "yaml"
    raise InputError(f"study candidate '{name}': expected clinician, {', '.join(BASELINES)}, "
                     f"{', '.join(BUILTIN_PROTOCOLS)}, {', '.join(LEARNED)} or a protocol YAML path.")


def check_candidates(names: tuple[str, ...]) -> None:
    """Refuse unknown names and missing protocol files before anything is computed."""
    for name in names:
        if resolve_kind(name) == "yaml" and not Path(name).is_file():
            raise InputError(f"study candidate '{name}': protocol file not found; pass an existing YAML file.")


def build_candidate(name: str, feature_names: tuple[str, ...], action_space: ActionSpaceInfo,
                    learned: dict[str, Policy]) -> Policy:
    """A non-clinician candidate bound to a cohort's features and action space.

    `learned` maps the learned candidates' names to their (already trained) policies.
    """
    kind = resolve_kind(name)
    if kind == "clinician":
        raise InputError("study: the clinician candidate is the replicate's own clinician model; "
                         "it is not built here.")
    if kind == "baseline":
        return NoTreatmentPolicy(feature_names, action_space) if name == "no-treatment" else \
            RandomPolicy(feature_names, action_space)
    if kind == "protocol":
        return ProtocolPolicy(parse_protocol(BUILTIN_PROTOCOLS[name], name), feature_names, action_space, name)
    if kind == "yaml":
        return load_protocol(name, feature_names, action_space)
    if name not in learned:
        raise InputError(f"study candidate '{name}': no trained policy of that name in the study reference.")
    return learned[name]


class SoftenedPolicy:
    """pi' = (1 - eps) pi + eps pi_clinician over joint dose levels (the policy IS evaluates).

    >>> from clinical_mborl.cohort.toy import make_toy_transitions
    >>> ts = make_toy_transitions(10, seed=0)
    >>> none = NoTreatmentPolicy(ts.feature_names, ts.manifest.action_space)
    >>> uniform = RandomPolicy(ts.feature_names, ts.manifest.action_space)
    >>> SoftenedPolicy(none, uniform, 0.09).action_probabilities(np.zeros((1, 4)))[0, :2].round(3).tolist()
    [0.92, 0.01]
    """

    action_kind: Literal["discrete"] = "discrete"

    def __init__(self, policy: Policy, clinician: Policy, epsilon: float) -> None:
        if policy.action_kind != "discrete" or clinician.action_kind != "discrete":
            raise InputError("SoftenedPolicy: expected discrete (dose-level) policies; the studies run on "
                             "discrete cohorts.")
        if tuple(policy.feature_names) != tuple(clinician.feature_names):
            raise InputError("SoftenedPolicy: the policy and the clinician model read different features.")
        self.policy, self.clinician, self.epsilon = policy, clinician, float(epsilon)
        self.name = policy.name
        self.feature_names = tuple(policy.feature_names)

    def action_probabilities(self, states: np.ndarray) -> np.ndarray:
        """[n, A] = soften(pi(.|s), pi_b(.|s), eps)."""
        return soften(self.policy.action_probabilities(states), self.clinician.action_probabilities(states),
                      self.epsilon)

    def sample_actions(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Joint dose levels drawn from pi'(.|s)."""
        p = self.action_probabilities(states)
        cdf = np.cumsum(p, axis=1)
        cdf[:, -1] = 1.0
        return (cdf > rng.random((p.shape[0], 1))).argmax(axis=1).astype(np.int64)


def truth_policy(name: str, policy: Policy | None, clinician: Policy, epsilon: float,
                 clinician_acts: bool = False) -> Any:
    """What the closed loop runs for candidate `name`: the simulated clinician for ``clinician``
    (the clinician model `clinician` itself with `clinician_acts`, the study's "markov" arm),
    else the candidate softened with `epsilon` towards `clinician` (unchanged when epsilon is 0)."""
    if name == "clinician":
        return clinician if clinician_acts else UsualCare()
    if policy is None:
        raise InputError(f"study: no policy for candidate '{name}'.")
    return SoftenedPolicy(policy, clinician, epsilon) if epsilon > 0 else policy
