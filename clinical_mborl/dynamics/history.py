"""Treatment-history state columns, set exactly in model transitions instead of predicted.

A cohort spec's `treatment_features` (`cohort.treatment_history`) are bookkeeping: after a step
with dose d of action dimension j, `previous` becomes d and `cumulative` grows by d. The network
still predicts every state column. This rule overwrites its prediction of these columns with the
exact value, in normalised units, and gives them zero spread. Rollouts (MOReL, COMBO, MOPO, the
model-based estimate) therefore never see a running total that shrinks, and the columns add
nothing to member disagreement or uncertainty.

For a discrete cohort the dose is the chosen level's median dose (`ActionSpaceInfo.doses_of`), the
dose a simulator's closed loop applies for that level. Continuous doses are used as given.

Opt-in (`DynamicsConfig.exact_treatment_history`). Measured on 16 paired simulated data sets
(hourly arm, N = 1,000, `benchmarks/specs/sepsis_treatment_history.yaml`), it made the model-based
estimate worse:
- bias for no-treatment -0.403 -> -0.642, and for the clinicians -0.064 -> -0.137;
- better only for `cql` (-0.084 -> -0.046);
- Spearman 0.250 -> 0.221.
Exact bookkeeping with a level's median dose leaves the states the network saw in the data, where
the within-level dose followed the patient. The network's own prediction keeps rollouts closer to
them.

>>> import torch
>>> from clinical_mborl.cohort import StateFeatureInfo
>>> feats = [StateFeatureInfo(name="map", unit="mmHg", kind="measurement", transform="zscore"),
...          StateFeatureInfo(name="fluid_prev", unit="mL", kind="treatment", transform="none"),
...          StateFeatureInfo(name="fluid_total", unit="mL", kind="treatment", transform="none")]
>>> rule = HistoryRule([HistoryColumn(1, 0, "previous"), HistoryColumn(2, 0, "cumulative")], feats)
>>> states = torch.tensor([[0.3, 250.0, 750.0]])
>>> next_mean = torch.tensor([[[0.1, 9.0, 9.0]]])  # [members, n, d]
>>> rule.apply(states, next_mean, torch.tensor([[500.0]])).tolist()
[[[0.10000000149011612, 500.0, 1250.0]]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from clinical_mborl.cohort import CohortManifest, Normalizer, StateFeatureInfo
from clinical_mborl.core.errors import InputError


@dataclass(frozen=True)
class HistoryColumn:
    """State column `column` holds the `kind` history of action dimension `dimension`."""

    column: int
    dimension: int
    kind: Literal["previous", "cumulative"]


def history_columns(manifest: CohortManifest) -> list[HistoryColumn]:
    """The cohort's treatment-history columns (none for a spec without `treatment_features`)."""
    names = [f.name for f in manifest.state_features]
    dims = [a.name for a in manifest.spec.actions]
    out = []
    for t in manifest.spec.treatment_features:
        if t.name not in names:
            raise InputError(f"dynamics: cohort manifest lists treatment feature '{t.name}' but the state has "
                             "no such column; rebuild the cohort with `cohort build`.")
        out.append(HistoryColumn(names.index(t.name), dims.index(t.action), t.kind))
    return out


class HistoryRule:
    """Overwrites predicted treatment-history columns with their exact next value (module text)."""

    def __init__(self, columns: Sequence[HistoryColumn], state_features: Sequence[StateFeatureInfo]) -> None:
        self.columns = list(columns)
        cols = [c.column for c in self.columns]
        norm = Normalizer(state_features)  # the cohort's own transform, restricted to these columns
        self._index = torch.tensor(cols, dtype=torch.long)
        self._dimension = torch.tensor([c.dimension for c in self.columns], dtype=torch.long)
        self._cumulative = torch.tensor([c.kind == "cumulative" for c in self.columns])
        self._log = torch.as_tensor(norm.log[cols], dtype=torch.bool)
        self._mean = torch.as_tensor(norm.mean[cols], dtype=torch.float32)
        self._std = torch.as_tensor(norm.std[cols], dtype=torch.float32)

    def __bool__(self) -> bool:
        return bool(self.columns)

    def to_config(self) -> list[dict[str, int | str]]:
        """JSON form for the dynamics artifact (`from_config` reads it back)."""
        return [{"column": c.column, "dimension": c.dimension, "kind": c.kind} for c in self.columns]

    @classmethod
    def from_config(cls, items: Sequence[dict[str, int | str]], state_features: Sequence[StateFeatureInfo]
                    ) -> HistoryRule:
        cols = [HistoryColumn(int(i["column"]), int(i["dimension"]), i["kind"]) for i in items]  # type: ignore[arg-type]
        return cls(cols, state_features)

    def _raw(self, z: Tensor) -> Tensor:
        x = z * self._std.to(z.device) + self._mean.to(z.device)
        log = self._log.to(z.device)
        return torch.where(log, torch.expm1(x.clamp(max=80.0)), x)

    def _normalised(self, x: Tensor) -> Tensor:
        log = self._log.to(x.device)
        x = torch.where(log, torch.log1p(x.clamp_min(0.0)), x)
        return (x - self._mean.to(x.device)) / self._std.to(x.device)

    def apply(self, states: Tensor, next_mean: Tensor, doses: Tensor) -> Tensor:
        """`next_mean` [M, n, d] (or [n, d]) with the history columns set from normalised `states`
        [n, d] and the step's doses [n, k] in clinical units; returns a new tensor."""
        if not self.columns:
            return next_mean
        dev = states.device
        idx = self._index.to(dev)
        dose = doses.to(dev, torch.float32).clamp_min(0.0)[:, self._dimension.to(dev)]  # [n, c]
        before = self._raw(states[:, idx].to(torch.float32)).clamp_min(0.0)
        after = torch.where(self._cumulative.to(dev), before + dose, dose)
        out = next_mean.clone()
        out[..., idx] = self._normalised(after).to(out.dtype).expand_as(out[..., idx])
        return out

    def zero_spread(self, next_std: Tensor) -> Tensor:
        """`next_std` with zero spread in the history columns."""
        if not self.columns:
            return next_std
        out = next_std.clone()
        out[..., self._index.to(next_std.device)] = 0.0
        return out


__all__ = ["HistoryColumn", "HistoryRule", "history_columns"]
