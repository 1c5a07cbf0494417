"""`CohortManifest`: everything `cohort build` knows about what it wrote (CONTRACTS.md §3)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from clinical_mborl import __version__
from clinical_mborl.cohort.spec import CohortSpec
from clinical_mborl.core.io import sha256_json
from clinical_mborl.core.models import StrictModel

COHORT_SCHEMA_VERSION = 1


class StateFeatureInfo(StrictModel):
    """One state column of transitions.parquet, with its normalisation fitted on train only."""

    name: str
    unit: str
    kind: Literal["measurement", "indicator", "static", "treatment"]
    transform: Literal["zscore", "log_zscore", "none"]
    mean: float = 0.0
    std: float = 1.0
    fill_value: float | None = None


class ActionDimensionInfo(StrictModel):
    name: str
    unit: str
    n_levels: int | None = None
    bin_edges: list[float] | None = None  # upper edges of levels 1..L-1 (level 0 = exactly none)
    median_dose: list[float] | None = None  # per level; level 0 = 0.0
    dose_min: float = 0.0
    dose_max: float = 0.0


class ActionSpaceInfo(StrictModel):
    """Discrete: joint index = row-major over dimensions (first dimension slowest)."""

    kind: Literal["discrete", "continuous"]
    dimensions: list[ActionDimensionInfo]

    @property
    def n_actions(self) -> int:
        if self.kind != "discrete":
            raise TypeError("continuous action spaces have no joint index")
        return int(np.prod([d.n_levels or 1 for d in self.dimensions]))

    def joint_index(self, levels: np.ndarray) -> np.ndarray:
        """levels [n, n_dims] -> joint index [n]."""
        idx = np.zeros(levels.shape[0], dtype=np.int64)
        for j, d in enumerate(self.dimensions):
            idx = idx * int(d.n_levels or 1) + levels[:, j].astype(np.int64)
        return idx

    def levels_of(self, joint: np.ndarray) -> np.ndarray:
        """joint index [n] -> levels [n, n_dims]."""
        joint = np.asarray(joint, dtype=np.int64).copy()
        out = np.zeros((joint.shape[0], len(self.dimensions)), dtype=np.int64)
        for j in range(len(self.dimensions) - 1, -1, -1):
            n = int(self.dimensions[j].n_levels or 1)
            out[:, j] = joint % n
            joint //= n
        return out

    def doses_of(self, joint: np.ndarray) -> np.ndarray:
        """joint index [n] -> representative (median) dose per dimension [n, n_dims]."""
        levels = self.levels_of(joint)
        out = np.zeros(levels.shape, dtype=np.float64)
        for j, d in enumerate(self.dimensions):
            med = np.asarray(d.median_dose or [0.0], dtype=np.float64)
            out[:, j] = med[levels[:, j]]
        return out


class SplitCounts(StrictModel):
    patients: int
    stays: int
    transitions: int
    deaths: int


class ExclusionStep(StrictModel):
    """One step of the cohort flow: `reason` removed `stays_removed`, leaving `stays_remaining`."""

    reason: str
    stays_removed: int
    stays_remaining: int


class DroppedRows(StrictModel):
    """Input rows not used, with the reason (nothing is dropped without being counted)."""

    table: str
    reason: str
    count: int


class ActionTiming(StrictModel):
    """When, inside their decision step, the orders behind one action dimension were charted.

    The state of a step holds only what was charted before the step; an order charted later in
    the step may answer what happened inside it (a falling blood pressure), so the step's dose and
    its outcome share a cause the state cannot hold. A large `share_after_first_hour` warns that
    values of withholding treatment can be optimistic (the steps without a drug are those in which
    the patient stayed stable; Jeter et al. 2019 on the AI Clinician).
    """

    dimension: str
    orders: int = Field(ge=0, description="Treatment rows (boluses, rate settings) inside the window.")
    share_after_first_hour: float = Field(ge=0.0, le=1.0, description="Share of those charted one hour "
                                          "or more after the start of their step.")


class CohortManifest(StrictModel):
    schema_version: int = COHORT_SCHEMA_VERSION
    package_version: str = __version__
    spec: CohortSpec
    spec_hash: str
    input_files: dict[str, str]
    transitions_sha256: str
    state_features: list[StateFeatureInfo]
    action_space: ActionSpaceInfo
    gamma: float
    step_hours: float
    n_steps: int
    counts: dict[str, SplitCounts]
    stays_in: int
    exclusion_flow: list[ExclusionStep]
    dropped_rows: list[DroppedRows]
    missingness: dict[str, float]
    action_timing: list[ActionTiming] = Field(default_factory=list, description="Per action dimension "
                                              "(empty in manifests written before it existed).")

    def manifest_hash(self) -> str:
        return sha256_json(self.model_dump(mode="json"))

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.state_features)
