"""The OPE contract: settings (`OPEConfig`) and what `ope.json` holds (`OPEReport`).

>>> OPEConfig().n_resamples, OPEConfig().method
(2000, 'bca')
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from clinical_mborl.core.errors import InputError
from clinical_mborl.core.io import atomic_write_text
from clinical_mborl.core.models import StrictModel
from clinical_mborl.ope.estimators import ESTIMATORS
from clinical_mborl.ope.fqe import FQEConfig

OPE_FILE = "ope.json"
#: how an interval was made: patient-bootstrap percentiles or BCa, or Rubin's rules over Q-members
IntervalMethod = Literal["percentile", "bca", "rubin"]
DEFAULT_ESTIMATORS = ("wis", "pdwis", "dr", "wdr", "fqe", "model_based")


class OPEConfig(StrictModel):
    """Settings of one off-policy evaluation; stored verbatim in `ope.json`."""

    estimators: tuple[str, ...] = Field(
        DEFAULT_ESTIMATORS,
        description="Estimators to run. DR/WDR/FQE need a Q-model, model_based needs dynamics "
        "rollouts; those without their inputs are listed under `skipped` in the report.",
    )
    n_resamples: int = Field(2000, ge=1, description="Patient bootstrap resamples B (>= 2,000 for reports).")
    level: float = Field(0.95, gt=0, lt=1, description="Two-sided interval level; the one-sided lower "
                         "bound uses the same level (e.g. the 5% quantile for 0.95).")
    method: Literal["percentile", "bca"] = Field("bca", description="Percentile or BCa (Efron 1987; "
                                                 "acceleration from the leave-one-patient-out jackknife).")
    fqe_interval: Literal["bootstrap", "rubin"] = Field(
        "bootstrap", description="FQE's interval and paired difference with refitted Q-members: the patient "
        "bootstrap (resample b paired with member b mod M; percentiles or BCa per `method`), or Rubin's rules "
        "over the members (`ope.members`: between-member variance with Barnard-Rubin degrees of freedom plus "
        "each member's sampling variance; wider, see docs/coverage.md). Without members: the bootstrap.")
    seed: int = Field(0, description="Seed of the resample plan and of the HCOPE split.")
    soften_epsilon: float = Field(0.01, ge=0, lt=1, description="pi' = (1 - eps) pi_e + eps pi_b: "
                                  "the evaluated policy is the softened one.")
    clip: float | None = Field(None, gt=0, description="Cap on the cumulative importance ratio "
                               "(None: no cap). The share of stays and steps clipped is reported.")
    support_threshold: float = Field(0.01, ge=0, le=1, description="A recommended action with clinician "
                                     "probability below this counts as outside clinician support.")
    hcope_delta: float = Field(0.05, gt=0, lt=1, description="1 - confidence of the Thomas et al. "
                               "(AAAI 2015) high-confidence lower bound.")
    hcope_selection_fraction: float = Field(0.05, gt=0, lt=1, description="Share of patients held out "
                                            "to choose the HCOPE truncation threshold c.")
    eval_splits: tuple[str, ...] = Field(("test",), description="Cohort splits evaluated (held out "
                                         "from policy training).")
    q_fit_splits: tuple[str, ...] = Field(("train",), description="Splits the Q-model (FQE, DR, WDR) is "
                                          "fitted on; patients shared with `eval_splits` are cross-fitted "
                                          "by patient folds.")
    fqe: FQEConfig = Field(default_factory=FQEConfig, description="Fitted-Q model settings.")
    model_rollouts: int = Field(10, ge=1, description="Model rollouts per evaluation stay (model_based).")
    adjust_for_history: bool = Field(
        False, description="Condition the clinician model of the importance weights and the Q-model on "
        "the treatment history (previous and cumulative doses; `ope.history`) as well as the cohort "
        "state. Clinicians titrate, so pi_b(a | s) alone misweights persistent treatment patterns. "
        "Off by default: on the sepsis simulator it made FQE more biased (docs/coverage.md).")

    sensitivity_lambdas: tuple[float, ...] = Field(
        (), description="Marginal-sensitivity bounds of FQE (`ope.sensitivity`): for each Lambda > 1, the "
        "lower and upper FQE values if the clinicians' real odds of each action differ from "
        "pi_b(a | s) by at most Lambda (unobserved confounding). All bounds train in one extra Q-network per policy; "
        "needs a discrete action space and 'fqe' among the estimators.")

    @field_validator("sensitivity_lambdas")
    @classmethod
    def _lambdas(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(not (lam > 1.0 and math.isfinite(lam)) for lam in v) or len(set(v)) != len(v):
            raise ValueError(f"sensitivity_lambdas {list(v)}: expected distinct finite values > 1 "
                             "(Lambda = 1 is plain FQE)")
        return tuple(sorted(v))

    @field_validator("estimators")
    @classmethod
    def _known_estimators(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [n for n in v if n not in ESTIMATORS]
        if unknown or not v or len(set(v)) != len(v):
            raise ValueError(f"estimators {list(v)}: expected distinct names among {sorted(ESTIMATORS)}")
        return v

    @field_validator("eval_splits", "q_fit_splits")
    @classmethod
    def _known_splits(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [s for s in v if s not in ("train", "val", "test")]
        if unknown or not v:
            raise ValueError(f"splits {list(v)}: expected a non-empty subset of train, val, test")
        return v


class IntervalChecks(StrictModel):
    """What was done to keep an interval honest (`ope.intervals.Interval`): projection onto the
    return range and widening to keep low <= lower_bound <= value <= high."""

    value_projected: bool = Field(False, description="The point estimate lay outside the return range "
                                  "(`return_bounds`; for a difference, the candidate's) and was projected onto it.")
    n_projected_resamples: int = Field(0, ge=0, description="Bootstrap resamples whose estimate lay outside "
                                       "the return range and was projected onto it.")
    interval_extended: bool = Field(False, description="The bootstrap quantiles did not bracket the estimate; "
                                    "the interval was widened (never narrowed) to do so.")


class OPEEstimate(IntervalChecks):
    """One estimator's value with its patient-bootstrap interval (one `ope.json` entry).

    Undefined numbers (no importance weight left) are None.
    """

    estimator: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    level: float
    method: IntervalMethod
    lower_bound: float | None = Field(description="One-sided lower confidence bound at `level`.")
    n_patients: int
    n_episodes: int
    n_resamples: int
    ess: float | None = Field(description="Kish ESS of the trajectory weights (None: no weights).")
    diagnostics: dict[str, float | int | str | None]


class PairedDifference(IntervalChecks):
    """V(estimator) - V(reference), both computed on the same patient resamples."""

    estimator: str
    reference: str = "clinician"
    value: float | None
    ci_low: float | None
    ci_high: float | None
    level: float
    method: IntervalMethod
    lower_bound: float | None
    n_patients: int
    n_resamples: int
    n_undefined_resamples: int


class HighConfidenceBound(StrictModel):
    """Thomas et al. (AAAI 2015) lower bound on V_e, as confirmation of the bootstrap bound."""

    lower_bound: float
    confidence: float
    threshold_c: float
    n_patients_bound: int
    n_patients_selection: int
    truncated_share: float
    valid: bool = Field(True, description="False when the bound came out above the largest possible return, "
                        "which correct importance weights cannot produce, or the mean patient weight is at "
                        "least 1 / (1 - confidence), which they produce with at most that probability "
                        "(estimated behaviour probabilities too small); lower_bound is then the "
                        "uninformative return minimum.")
    mean_weight: float | None = Field(None, description="Mean trajectory importance weight per patient "
                                      "(1 in expectation under correct weights).")


class SensitivityBound(StrictModel):
    """FQE under unobserved confounding of odds ratio at most `lam` (`ope.sensitivity`): the lower
    and upper bound's estimates, intervals and paired differences against the clinician's
    on-policy mean (same resamples). The interval at `lam` is [lower.ci_low, upper.ci_high]."""

    lam: float
    lower: OPEEstimate
    upper: OPEEstimate
    lower_difference: PairedDifference
    upper_difference: PairedDifference


class OPEReport(StrictModel):
    """Everything `clinical-mborl evaluate` writes to `ope.json` (CONTRACTS.md §5)."""

    schema_version: Literal[1] = 1
    policy: str
    gamma: float
    return_bounds: tuple[float, float]
    n_patients: int
    n_episodes: int
    settings: OPEConfig
    clinician: OPEEstimate
    estimates: list[OPEEstimate]
    differences: list[PairedDifference]
    high_confidence: HighConfidenceBound
    skipped: dict[str, str] = Field(default_factory=dict, description="Estimator -> why it did not run.")
    sensitivity: list[SensitivityBound] = Field(
        default_factory=list, description="FQE's marginal-sensitivity bounds, one per Lambda in "
        "`settings.sensitivity_lambdas` (empty when none were asked for).")
    fqe_steps_per_iteration: int | None = Field(
        None, description="Adam steps each iteration's regression of the network FQE took on this cohort "
        "(`settings.fqe.steps_per_iteration`, or its epochs times the batches in a fit); FQE's values move "
        "with it. None when no network FQE ran (and in files written before it was recorded).")

    def estimate(self, name: str) -> OPEEstimate:
        """The entry of one estimator by name ("clinician" included)."""
        for e in [self.clinician, *self.estimates]:
            if e.estimator == name:
                return e
        raise InputError(f"OPE report: no estimator {name!r}; expected one of "
                         f"{[e.estimator for e in [self.clinician, *self.estimates]]}.")

    def difference(self, name: str) -> PairedDifference:
        """The paired difference of one estimator against the clinician."""
        for d in self.differences:
            if d.estimator == name:
                return d
        raise InputError(f"OPE report: no paired difference for {name!r}.")

    def write(self, out_dir: str | Path) -> Path:
        """Write `out_dir/ope.json` atomically and return its path."""
        path = Path(out_dir) / OPE_FILE
        atomic_write_text(path, self.model_dump_json(indent=2) + "\n")
        return path


def finite_or_none(x: float | None) -> float | None:
    """JSON has no NaN: undefined numbers become None.

    >>> finite_or_none(float("nan")) is None, finite_or_none(1.5)
    (True, 1.5)
    """
    return None if x is None or not math.isfinite(x) else float(x)
