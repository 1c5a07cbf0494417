"""`ScoringConfig`: the OPE settings shared by every candidate, the gate, and the worker count.

Every candidate is evaluated with the same `OPEConfig` (same evaluation split, bootstrap size,
level and seed), so all candidates see the same patient resamples and their paired differences
against the clinician are comparable row to row.

The default gate is `screening_gate_config()`: the pre-registered `GateConfig` defaults minus
the subgroup and explanation-sanity checks, which need inputs `score` does not compute (subgroup
OPE, attributions). Passing it is necessary, not sufficient: the full gate runs in
`clinical-mborl report`. A gate configuration passed explicitly is used verbatim, so checks
without evidence fail there, visibly.

>>> cfg = ScoringConfig()
>>> cfg.primary_estimator, cfg.ope.seed == ScoringConfig().ope.seed
('wdr', True)
"""

from __future__ import annotations

from pydantic import Field, model_validator

from clinical_mborl.core.models import StrictModel
from clinical_mborl.ope.results import OPEConfig
from clinical_mborl.report.gate import GateConfig


def screening_gate_config(**overrides: object) -> GateConfig:
    """`GateConfig()` without subgroup and explanation checks (score cannot supply that evidence).

    >>> screening_gate_config().subgroup_attributes, screening_gate_config().require_explanation_sanity
    ((), False)
    """
    settings: dict[str, object] = {"subgroup_attributes": (), "require_explanation_sanity": False}
    settings.update(overrides)
    return GateConfig.model_validate(settings)


class ScoringConfig(StrictModel):
    """Settings of one `score_candidates` run."""

    ope: OPEConfig = Field(default_factory=OPEConfig, description="Off-policy evaluation settings, "
                           "identical for every candidate (same resample plan and seed).")
    gate: GateConfig = Field(default_factory=screening_gate_config, description="Gate checked for "
                             "each candidate; its first primary estimator orders the table.")
    jobs: int | None = Field(None, ge=1, description="Worker processes (None: one per candidate, at "
                             "most the CPU count). 1 scores in this process.")

    @property
    def primary_estimator(self) -> str:
        """The estimator whose paired-difference lower bound ranks the candidates."""
        return self.gate.primary_estimators[0]

    @model_validator(mode="after")
    def _consistent(self) -> ScoringConfig:
        missing = [e for e in self.gate.primary_estimators if e not in self.ope.estimators]
        if missing:
            raise ValueError(f"the gate's primary estimators {missing} are not among the OPE estimators "
                             f"{list(self.ope.estimators)}; add them to the estimators or change "
                             "gate.primary_estimators.")
        if self.ope.support_threshold != self.gate.support_threshold:
            raise ValueError(f"ope.support_threshold={self.ope.support_threshold} differs from "
                             f"gate.support_threshold={self.gate.support_threshold}; set both to the "
                             "pre-registered threshold so the out-of-support rate is the gate's.")
        return self
