"""`DynamicsConfig`: the probabilistic ensemble's architecture and training settings."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from clinical_mborl.core.models import StrictModel

SPLIT_NAMES = ("train", "val", "test")


class DynamicsConfig(StrictModel):
    """Settings of `fit_dynamics` (defaults follow PETS/MBPO/MOPO; see FIELD_NOTES).

    >>> DynamicsConfig(n_members=3, n_elites=2, hidden_sizes=(8,)).n_elites
    2
    """

    n_members: int = Field(7, ge=1, description="Gaussian ensemble members (Chua et al., PETS 2018).")
    n_elites: int = Field(
        5, ge=1, description="Members with the lowest holdout loss used in rollouts (Janner et al., MBPO 2019)."
    )
    hidden_sizes: tuple[int, ...] = Field((200, 200, 200, 200), description="Hidden widths, Swish between.")
    learning_rate: float = Field(1e-3, gt=0, description="Adam step size.")
    weight_decay: float = Field(5e-5, ge=0, description="Adam L2 penalty on all weights.")
    batch_size: int = Field(256, ge=1, description="Rows per gradient step (every member sees the batch).")
    max_epochs: int = Field(200, ge=1, description="Upper bound on passes over the model-train rows.")
    patience: int = Field(
        5, ge=1, description="Stop after this many epochs without a relative holdout improvement."
    )
    min_relative_improvement: float = Field(
        0.01, ge=0,
        description="An epoch improves when (best - loss) / |best| exceeds this (MBPO: 1%).",
    )
    holdout_fraction: float = Field(
        0.15, gt=0, lt=1,
        description="Share of the fit patients held out (by patient) for early stopping, elites and metrics.",
    )
    init_max_logvar: float = Field(0.5, description="Initial learnable upper soft bound of log-variance.")
    init_min_logvar: float = Field(-10.0, description="Initial learnable lower soft bound of log-variance.")
    logvar_bound_weight: float = Field(
        0.01, ge=0,
        description="Weight of sum(max_logvar) - sum(min_logvar) in the loss, keeping the soft "
        "bounds tight (Chua et al., 2018, appendix A.1).",
    )
    termination_weight: float = Field(1.0, ge=0, description="Weight of the 3-class termination CE.")
    outcome_weight: float = Field(
        1.0, ge=0, description="Weight of the Bernoulli death-after-window loss (truncated rows)."
    )
    bootstrap: bool = Field(
        True,
        description="Per-member Poisson(1) row weights (online bootstrap) on top of random "
        "initialisation, so members disagree where data are thin.",
    )
    state_loss_on_terminal: bool = Field(
        False,
        description="Also fit the state change on rows ending in death/discharge (their next "
        "state is often not a physiological measurement).",
    )
    max_horizon: int = Field(5, ge=1, description="Open-loop rollout horizons h=1..H in the quality metrics.")
    eval_batch_size: int = Field(4096, ge=1, description="Rows per batch for holdout evaluation.")
    fit_splits: tuple[str, ...] = Field(("train",), description="Cohort splits the ensemble is fitted on.")
    exact_treatment_history: bool = Field(
        False, exclude_if=lambda v: not v,  # left out of dumps (and fingerprints) when off
        description="Set the cohort's treatment-history columns exactly from the chosen dose in predictions "
        "and rollouts (`dynamics.history`) instead of using the network's prediction. Off by default: on 16 "
        "paired simulated data sets it made the model-based estimate worse; its effect on MOReL and COMBO "
        "was within seed noise (docs/coverage.md, tenth session).")
    seed: int = Field(0, description="Seed for holdout patients, initialisation, bootstrap and shuffling.")

    @field_validator("fit_splits")
    @classmethod
    def _known_splits(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [s for s in v if s not in SPLIT_NAMES]
        if unknown:
            raise ValueError(f"unknown split(s) {unknown}; expected some of {SPLIT_NAMES}")
        return v

    @model_validator(mode="after")
    def _elites(self) -> DynamicsConfig:
        if self.n_elites > self.n_members:
            raise ValueError(f"n_elites ({self.n_elites}) must not exceed n_members ({self.n_members})")
        if self.init_min_logvar >= self.init_max_logvar:
            raise ValueError("init_min_logvar must be below init_max_logvar")
        return self
