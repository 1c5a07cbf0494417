"""`BehaviorConfig`: how the clinician (behaviour) policy is estimated and calibrated."""

from __future__ import annotations

from pydantic import Field, field_validator

from clinical_mborl.core.models import StrictModel

SPLIT_NAMES = ("train", "val", "test")


class BehaviorConfig(StrictModel):
    """Settings of `fit_behavior`.

    >>> BehaviorConfig(n_folds=3, hidden_sizes=()).n_folds
    3
    """

    n_folds: int = Field(
        5, ge=2,
        description="K patient-level cross-fitting folds: each fit row's probability comes from the "
        "model trained on the other K-1 folds (Chernozhukov et al., 2018, double/debiased ML).",
    )
    hidden_sizes: tuple[int, ...] = Field(
        (64, 64),
        description="Hidden widths of the MLP (Swish). () gives a multinomial logistic model.",
    )
    learning_rate: float = Field(3e-3, gt=0, description="Adam step size.")
    weight_decay: float = Field(1e-4, ge=0, description="Adam L2 penalty.")
    batch_size: int = Field(512, ge=1, description="Rows per gradient step.")
    max_epochs: int = Field(40, ge=1, description="Upper bound on passes over a fold's training rows.")
    patience: int = Field(
        4, ge=1, description="Stop when the inner-calibration NLL has not improved for this many epochs."
    )
    calibration_fraction: float = Field(
        0.2, gt=0, lt=1,
        description="Share of each fold's training patients held out (by patient) for early "
        "stopping and temperature scaling (Guo et al., ICML 2017), so the fold never sees the "
        "rows it predicts out-of-fold.",
    )
    min_std: float = Field(
        1e-3, gt=0, description="Floor on the log-dose standard deviation (continuous doses)."
    )
    n_bins: int = Field(15, ge=2, description="Equal-width bins for ECE and reliability curves.")
    fit_splits: tuple[str, ...] = Field(("train",), description="Cohort splits the folds are fitted on.")
    eval_splits: tuple[str, ...] = Field(
        ("val", "test"), description="Held-out splits on which calibration is reported."
    )
    seed: int = Field(0, description="Seed for fold assignment, initialisation and shuffling.")

    @field_validator("fit_splits", "eval_splits")
    @classmethod
    def _known_splits(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [s for s in v if s not in SPLIT_NAMES]
        if unknown:
            raise ValueError(f"unknown split(s) {unknown}; expected some of {SPLIT_NAMES}")
        return v
