"""Feature normalisation fitted on the train split and applied everywhere else."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clinical_mborl.cohort.manifest import StateFeatureInfo


class Normalizer:
    """Maps clinical-unit states to model inputs and back.

    zscore: (x - mean) / std; log_zscore: (log1p(x) - mean) / std; none: x.

    >>> info = [StateFeatureInfo(name="a", unit="u", kind="measurement", transform="zscore", mean=1.0, std=2.0)]
    >>> Normalizer(info).transform(np.array([[3.0]])).tolist()
    [[1.0]]
    """

    def __init__(self, features: Sequence[StateFeatureInfo]) -> None:
        self.names = tuple(f.name for f in features)
        self.mean = np.array([f.mean for f in features], dtype=np.float64)
        self.std = np.array([f.std if f.std > 0 else 1.0 for f in features], dtype=np.float64)
        self.log = np.array([f.transform == "log_zscore" for f in features])
        self.identity = np.array([f.transform == "none" for f in features])
        self.mean[self.identity] = 0.0
        self.std[self.identity] = 1.0

    def transform(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).copy()
        if self.log.any():
            x[..., self.log] = np.log1p(np.clip(x[..., self.log], 0.0, None))
        return ((x - self.mean) / self.std).astype(np.float32)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        x = np.asarray(z, dtype=np.float64) * self.std + self.mean
        if self.log.any():
            # Model rollouts can leave the data range; cap the exponent instead of overflowing to inf.
            x[..., self.log] = np.expm1(np.minimum(x[..., self.log], 700.0))
        return x

    def to_dict(self) -> dict[str, list[float] | list[str] | list[bool]]:
        return {
            "names": list(self.names),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "log": self.log.tolist(),
            "identity": self.identity.tolist(),
        }
