"""Model inputs and target scaling, shared by training and prediction.

Inputs: [normalised state (d), dose features (k), step / n_steps (1)] where a dose feature is
log1p(dose) / std_train(log1p(dose)) per dimension (0 = no treatment). Discrete actions enter as
their level's median dose (`ActionSpaceInfo.doses_of`), so one network serves discrete and
continuous cohorts. Targets: the state change (normalised units) and the intermediate reward,
each standardised with model-train statistics.

>>> import numpy as np
>>> s = DynamicsScaling(n_steps=6, n_features=2, dose_table=np.array([[0.0], [1.0]]))
>>> s.dose_features(torch.tensor([0, 1])).shape
torch.Size([2, 1])
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from clinical_mborl.core.errors import InputError


class DynamicsScaling(nn.Module):
    """Buffers: `dose_table` [A, k] (discrete; [0, k] if continuous), `dose_scale` [k],
    `delta_mean`/`delta_std` [d], `reward_mean`/`reward_std` [1] (std 0: constant reward)."""

    dose_table: Tensor
    dose_scale: Tensor
    delta_mean: Tensor
    delta_std: Tensor
    reward_mean: Tensor
    reward_std: Tensor

    def __init__(self, n_steps: int, n_features: int, dose_table: np.ndarray | None = None, n_doses: int = 0) -> None:
        super().__init__()
        table = np.zeros((0, n_doses)) if dose_table is None else np.asarray(dose_table)
        k = table.shape[1]
        self.n_steps = int(n_steps)
        self.register_buffer("dose_table", torch.as_tensor(table, dtype=torch.float32))
        self.register_buffer("dose_scale", torch.ones(k))
        self.register_buffer("delta_mean", torch.zeros(n_features))
        self.register_buffer("delta_std", torch.ones(n_features))
        self.register_buffer("reward_mean", torch.zeros(1))
        self.register_buffer("reward_std", torch.ones(1))

    @property
    def discrete(self) -> bool:
        return self.dose_table.shape[0] > 0

    def doses_of(self, actions: Tensor) -> Tensor:
        """Joint level index [n] (int) -> median doses [n, k]; float doses [n, k] pass through."""
        if actions.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8):
            if not self.discrete:
                raise InputError(
                    "dynamics: got integer actions for a continuous-dose model; expected doses [n, k] in clinical units."
                )
            return self.dose_table[actions.long()]
        if actions.dim() != 2 or actions.shape[1] != self.dose_scale.shape[0]:
            raise InputError(
                f"dynamics: expected doses shaped [n, {self.dose_scale.shape[0]}] or joint indices [n], "
                f"got {list(actions.shape)}"
            )
        return actions.to(self.dose_scale.dtype)

    def dose_features(self, actions: Tensor) -> Tensor:
        """log1p(dose) / train std per dimension, [n, k]."""
        return torch.log1p(self.doses_of(actions).clamp_min(0.0)) / self.dose_scale

    def encode(self, states: Tensor, actions: Tensor, steps: Tensor) -> Tensor:
        """Network input [n, d + k + 1]."""
        step_feature = (steps.to(states.dtype) / self.n_steps).unsqueeze(-1)
        return torch.cat([states, self.dose_features(actions), step_feature], dim=-1)

    def fit(self, doses: np.ndarray, delta: np.ndarray, state_rows: np.ndarray, reward: np.ndarray) -> DynamicsScaling:
        """Set the statistics from model-train rows (`state_rows`: rows whose state change is fitted)."""
        log_dose = np.log1p(np.clip(doses, 0.0, None))
        self.dose_scale.copy_(torch.as_tensor(_safe_std(log_dose)))
        d = delta[state_rows] if state_rows.any() else delta
        self.delta_mean.copy_(torch.as_tensor(d.mean(axis=0) if len(d) else np.zeros(delta.shape[1])))
        self.delta_std.copy_(torch.as_tensor(_safe_std(d)))
        self.reward_mean.fill_(float(reward.mean()) if len(reward) else 0.0)
        spread = float(reward.std()) if len(reward) > 1 else 0.0
        # a constant intermediate reward (e.g. a spec without intermediate terms) is not modelled:
        # std 0 makes every prediction exactly the constant
        self.reward_std.fill_(spread if spread > 1e-6 else 0.0)
        return self

    @property
    def reward_modelled(self) -> bool:
        return bool(self.reward_std.item() > 0)


def _safe_std(x: np.ndarray) -> np.ndarray:
    """Column std, 1 where a column is (nearly) constant or there are fewer than two rows."""
    if x.shape[0] < 2:
        return np.ones(x.shape[1])
    s = x.std(axis=0)
    return np.where(s > 1e-6, s, 1.0)
