"""Replay buffers for real (dataset) and model-generated transitions.

Both hand out `Batch`es of tensors. `end` marks transitions the learner must not bootstrap past
(death, discharge, window end, or MOReL's HALT). Discrete batches carry log pi_b(.|s) and
log pi_b(.|s') for the support mask and the KL term; `is_real` marks dataset rows (the BC and CQL
terms use those only).

>>> b = Batch(states=torch.zeros(2, 3), actions=torch.zeros(2, dtype=torch.long),
...           rewards=torch.zeros(2), next_states=torch.zeros(2, 3), end=torch.ones(2, dtype=torch.bool),
...           is_real=torch.ones(2, dtype=torch.bool))
>>> len(concat([b, b]))
4
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from clinical_mborl.cohort import TransitionSet
from clinical_mborl.policies.networks import scale_doses


@dataclass(frozen=True)
class Batch:
    """One minibatch (or a whole buffer) of transitions in normalised state space."""

    states: Tensor  # [n, d]
    actions: Tensor  # [n] int64 joint index, or [n, k] box-scaled doses in [-1, 1] (`scale_doses`)
    rewards: Tensor  # [n]
    next_states: Tensor  # [n, d]
    end: Tensor  # [n] bool: no bootstrap past this transition
    is_real: Tensor  # [n] bool: a dataset row
    log_pb: Tensor | None = None  # [n, A] log pi_b(.|s) (discrete, when a clinician is given)
    next_log_pb: Tensor | None = None  # [n, A] log pi_b(.|s')
    steps: Tensor | None = None  # [n] int64 step in the window (real rows; rollout starts)

    def __len__(self) -> int:
        return int(self.states.shape[0])

    def index(self, idx: Tensor) -> Batch:
        """Rows `idx` of every field."""
        values: dict[str, Any] = {f.name: None if (v := getattr(self, f.name)) is None else v[idx]
                                  for f in fields(self)}
        return Batch(**values)

    def to(self, device: torch.device | str) -> Batch:
        values: dict[str, Any] = {f.name: None if (v := getattr(self, f.name)) is None else v.to(device)
                                  for f in fields(self)}
        return Batch(**values)


def concat(batches: list[Batch]) -> Batch:
    """Stack batches row-wise (optional fields must be present in all or none; `steps` is
    dropped unless every batch has it)."""
    out: dict[str, Any] = {}
    for f in fields(Batch):
        values = [getattr(b, f.name) for b in batches]
        present = [v is not None for v in values]
        if any(present) and not all(present) and f.name != "steps":
            raise ValueError(f"cannot concatenate batches: '{f.name}' missing in some")
        out[f.name] = torch.cat(values) if all(present) else None
    return Batch(**out)


def real_batch(transitions: TransitionSet, log_pb: Tensor | None = None) -> Batch:
    """All rows of `transitions` as one Batch (states normalised with the cohort normaliser).

    `log_pb` [n, A] is log pi_b on these rows; `next_log_pb` is taken from the next row of the
    same stay (the next state of step t is the state of step t + 1), and is unused at `end`.
    """
    a = transitions.arrays(normalised=True)
    if a.actions.ndim == 1:
        actions = torch.as_tensor(a.actions)
    else:
        dose_max = torch.tensor([d.dose_max for d in transitions.manifest.action_space.dimensions])
        actions = scale_doses(torch.as_tensor(a.doses, dtype=torch.float32), dose_max)
    rewards = torch.as_tensor(a.rewards, dtype=torch.float32)
    next_log_pb = None
    if log_pb is not None:
        n = len(a)
        nxt = np.minimum(np.arange(n) + 1, n - 1)
        same = (a.episode[nxt] == a.episode) & (a.step[nxt] == a.step + 1)
        nxt = np.where(same, nxt, np.arange(n))
        next_log_pb = log_pb[torch.as_tensor(nxt)]
    return Batch(
        states=torch.as_tensor(a.states),
        actions=actions,
        rewards=rewards,
        next_states=torch.as_tensor(a.next_states),
        end=torch.as_tensor(a.end),
        is_real=torch.ones(len(a), dtype=torch.bool),
        log_pb=log_pb,
        next_log_pb=next_log_pb,
        steps=torch.as_tensor(a.step),
    )


class ReplayBuffer:
    """Uniform sampling from a fixed Batch (the dataset) or a ring of model rollouts.

    `capacity=None` keeps everything given to `add`; otherwise the oldest rows are dropped.
    """

    def __init__(self, data: Batch | None = None, capacity: int | None = None) -> None:
        self.data = data
        self.capacity = capacity

    def __len__(self) -> int:
        return 0 if self.data is None else len(self.data)

    def add(self, batch: Batch) -> None:
        """Append rows (model rollouts), dropping the oldest beyond `capacity`."""
        if len(batch) == 0:
            return
        batch = replace(batch, steps=None)
        data = batch if self.data is None else concat([self.data, batch])
        if self.capacity is not None and len(data) > self.capacity:
            data = data.index(torch.arange(len(data) - self.capacity, len(data), device=data.states.device))
        self.data = data

    def sample(self, n: int, generator: torch.Generator) -> Batch:
        """n rows drawn uniformly with replacement."""
        if self.data is None or len(self.data) == 0:
            raise ValueError("cannot sample from an empty buffer")
        idx = torch.randint(len(self.data), (n,), generator=generator, device=generator.device)
        return self.data.index(idx.to(self.data.states.device))

    def to(self, device: torch.device | str) -> ReplayBuffer:
        if self.data is not None:
            self.data = self.data.to(device)
        return self
