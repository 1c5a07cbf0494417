"""Rule-based clinical protocols written in YAML, evaluated like any other policy.

```yaml
name: map-lactate-protocol
description: Vasopressor when MAP < 65 mmHg; fluids when lactate >= 4 mmol/L.
default: {iv_fluid_ml: 0, norepinephrine_ug_kg_min: 0}
rules:
  - name: hypotension
    when: {map_mmhg: {lt: 65}}
    then: {norepinephrine_ug_kg_min: 2}
  - when: {lactate_mmol_l: {ge: 4}, map_mmhg: {lt: 90}}
    then: {iv_fluid_ml: 2}
softening: 0.0
```

Conditions are on state features in clinical units (the cohort's columns); all conditions of a
rule must hold. For each dose dimension the first matching rule that names it decides; otherwise
`default` (else level 0 / zero dose). Values are dose levels for discrete cohorts and doses in
the dimension's unit for continuous ones. `softening` mixes that much of the uniform policy into
a discrete protocol (for importance sampling).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import Field, ValidationError, model_validator

from clinical_mborl.cohort import ActionSpaceInfo
from clinical_mborl.cohort.spec import _UniqueKeyLoader
from clinical_mborl.core.errors import InputError
from clinical_mborl.core.models import StrictModel
from clinical_mborl.policies.baselines import _Baseline, point_mass_log_density


class Condition(StrictModel):
    """Bounds on one feature: lt (<), le (<=), gt (>), ge (>=); at least one."""

    lt: float | None = None
    le: float | None = None
    gt: float | None = None
    ge: float | None = None

    @model_validator(mode="after")
    def _some(self) -> Condition:
        if all(v is None for v in (self.lt, self.le, self.gt, self.ge)):
            raise ValueError("a condition needs at least one of lt, le, gt, ge")
        return self

    def holds(self, x: np.ndarray) -> np.ndarray:
        ok = np.ones(x.shape, dtype=bool)
        for bound, op in ((self.lt, np.less), (self.le, np.less_equal), (self.gt, np.greater),
                          (self.ge, np.greater_equal)):
            if bound is not None:
                ok &= op(x, bound)
        return ok


class Rule(StrictModel):
    name: str | None = None
    when: dict[str, Condition] = Field(min_length=1, description="feature -> bounds, all must hold")
    then: dict[str, float] = Field(min_length=1, description="dose dimension -> level or dose")


class ProtocolSpec(StrictModel):
    schema_version: Literal[1] = 1
    name: str = Field(min_length=1)
    description: str = ""
    default: dict[str, float] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list)
    softening: float = Field(0.0, ge=0.0, le=1.0)


def parse_protocol(text: str, source: str = "<string>") -> ProtocolSpec:
    """YAML text -> ProtocolSpec; every problem becomes one InputError naming where it is."""
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise InputError(f"protocol {source}: invalid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise InputError(f"protocol {source}: expected a mapping with name and rules at the top level, "
                         f"got {type(raw).__name__}.")
    try:
        return ProtocolSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors())
        raise InputError(f"protocol {source}: {exc.error_count()} problem(s): {problems}. "
                         "See clinical_mborl/policies/protocols.py for the format.") from exc


class ProtocolPolicy(_Baseline):
    """A `ProtocolSpec` bound to a cohort's features and action space (checked on construction)."""

    def __init__(self, spec: ProtocolSpec, feature_names: tuple[str, ...], action_space: ActionSpaceInfo,
                 source: str = "<protocol>") -> None:
        super().__init__(feature_names, action_space)
        self.spec, self.name = spec, spec.name
        self.dims = [d.name for d in action_space.dimensions]
        problems = self._problems()
        if problems:
            raise InputError(f"protocol {source}: {len(problems)} problem(s) against this cohort: "
                             + "; ".join(problems))

    def _problems(self) -> list[str]:
        out: list[str] = []
        known = set(self.feature_names)
        values = [("default", self.spec.default)]
        for i, rule in enumerate(self.spec.rules):
            out += [f"rules.{i}.when: unknown feature '{f}' (expected one of {sorted(known)})"
                    for f in rule.when if f not in known]
            values.append((f"rules.{i}.then", rule.then))
        for where, mapping in values:
            for dim, v in mapping.items():
                if dim not in self.dims:
                    out.append(f"{where}: unknown dose dimension '{dim}' (expected one of {self.dims})")
                    continue
                info = self.action_space.dimensions[self.dims.index(dim)]
                if self.action_kind == "discrete":
                    top = int(info.n_levels or 1) - 1
                    if v != int(v) or not 0 <= v <= top:
                        out.append(f"{where}.{dim}: dose level must be an integer in 0..{top}, got {v}")
                elif not 0 <= v <= info.dose_max:
                    out.append(f"{where}.{dim}: dose must be in [0, {info.dose_max}] {info.unit}, got {v}")
        return out

    def decide(self, states: np.ndarray) -> np.ndarray:
        """Levels (discrete) or doses (continuous) per dimension: [n, k]."""
        x = np.asarray(states, dtype=np.float64)
        n = self._n(x)
        out = np.tile([self.spec.default.get(d, 0.0) for d in self.dims], (n, 1)).astype(np.float64)
        decided = np.zeros((n, len(self.dims)), dtype=bool)
        for rule in self.spec.rules:
            match = np.ones(n, dtype=bool)
            for feat, cond in rule.when.items():
                match &= cond.holds(x[:, self.feature_names.index(feat)])
            for dim, value in rule.then.items():
                j = self.dims.index(dim)
                take = match & ~decided[:, j]
                out[take, j] = value
                decided[:, j] |= take
        return out

    def action_probabilities(self, states: np.ndarray) -> np.ndarray:
        self._require("discrete")
        joint = self.action_space.joint_index(self.decide(states).astype(np.int64))
        n_actions = self.action_space.n_actions
        p = np.zeros((joint.shape[0], n_actions))
        p[np.arange(joint.shape[0]), joint] = 1.0
        eps = self.spec.softening
        return (1.0 - eps) * p + eps / n_actions

    def sample_actions(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.action_kind == "continuous":
            return self.decide(states)
        p = self.action_probabilities(states)
        cdf = p.cumsum(1)
        cdf[:, -1] = 1.0
        return (cdf > rng.random((p.shape[0], 1))).argmax(1).astype(np.int64)

    def mean_doses(self, states: np.ndarray) -> np.ndarray:
        self._require("continuous")
        return self.decide(states)

    def log_density(self, states: np.ndarray, doses: np.ndarray) -> np.ndarray:
        """A point mass at the protocol's dose (see `baselines`)."""
        return point_mass_log_density(self.mean_doses(states), doses)


def load_protocol(path: str | Path, feature_names: tuple[str, ...], action_space: ActionSpaceInfo) -> ProtocolPolicy:
    """Read, validate and bind a protocol YAML file to a cohort."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"protocol {path}: file not found; pass a YAML file with name and rules.")
    return ProtocolPolicy(parse_protocol(path.read_text(), str(path)), feature_names, action_space, str(path))
