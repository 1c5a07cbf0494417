"""`TransitionDataModule`: fit rows split by patient into model-train and holdout.

Random transition holdouts leak within-patient information, so whole patients are held out.
Shuffling is seeded per epoch (`EpochSeededBatches.set_epoch`, called by Lightning), so a run
resumed from a checkpoint sees the same batches as an uninterrupted one.

>>> from clinical_mborl.cohort.toy import make_toy_transitions
>>> dm = TransitionDataModule(make_toy_transitions(40, seed=0), DynamicsConfig(n_members=2, n_elites=1))
>>> dm.setup()
>>> set(dm.patient[dm.train_rows]) & set(dm.patient[dm.holdout_rows])
set()
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from clinical_mborl.cohort import TransitionArrays, TransitionSet
from clinical_mborl.core.errors import InputError
from clinical_mborl.dynamics.config import DynamicsConfig
from clinical_mborl.dynamics.encoding import DynamicsScaling

CONTINUE, DEATH, DISCHARGE = 0, 1, 2


class EpochSeededBatches(Sampler[Tensor]):
    """Yields index batches of a fresh permutation per epoch, seeded by (seed, epoch)."""

    def __init__(self, n: int, batch_size: int, seed: int, shuffle: bool = True) -> None:
        self.n, self.batch_size, self.seed, self.shuffle, self.epoch = n, batch_size, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[Tensor]:
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100003 + self.epoch))
        else:
            order = torch.arange(self.n)
        yield from order.split(self.batch_size)

    def __len__(self) -> int:
        return (self.n + self.batch_size - 1) // self.batch_size


class BatchTensors(Dataset[dict[str, Tensor]]):
    """Column tensors indexed by a whole batch of row positions at once."""

    def __init__(self, columns: dict[str, Tensor], member_weights: Tensor | None = None) -> None:
        self.columns, self.member_weights = columns, member_weights

    def __len__(self) -> int:
        return int(next(iter(self.columns.values())).shape[0])

    def __getitem__(self, idx: Tensor) -> dict[str, Tensor]:
        batch = {k: v[idx] for k, v in self.columns.items()}
        if self.member_weights is not None:
            batch["weight"] = self.member_weights[:, idx]
        return batch


def termination_labels(a: TransitionArrays) -> np.ndarray:
    """0 continue (incl. window truncation), 1 death, 2 discharge."""
    label = np.full(len(a), CONTINUE, dtype=np.int64)
    label[a.done & a.died] = DEATH
    label[a.done & ~a.died] = DISCHARGE
    return label


def outcome_death_labels(a: TransitionArrays, death_reward: float) -> np.ndarray:
    """1 where the row's outcome reward (reward - reward_intermediate) is the death reward."""
    outcome = a.rewards.astype(np.float64) - a.reward_intermediate.astype(np.float64)
    return np.isclose(outcome, death_reward, atol=1e-5).astype(np.float32)


def holdout_patients(patient: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A random `fraction` of the patients (at least one, never all)."""
    uniq = np.unique(patient)
    n_hold = min(max(1, round(fraction * uniq.size)), uniq.size - 1)
    return np.sort(np.random.default_rng(seed).choice(uniq, size=n_hold, replace=False))


class TransitionDataModule(pl.LightningDataModule):
    """Encodes the fit splits once; serves model-train batches and the patient holdout."""

    def __init__(self, transitions: TransitionSet, config: DynamicsConfig) -> None:
        super().__init__()
        self.config = config
        self.manifest = transitions.manifest
        self.fit_set = transitions.split(*config.fit_splits)
        self._ready = False

    @property
    def state_dim(self) -> int:
        return len(self.manifest.state_features)

    @property
    def in_dim(self) -> int:
        return self.state_dim + len(self.manifest.action_space.dimensions) + 1

    def setup(self, stage: str | None = None) -> None:
        """Split patients, fit the scaling on model-train rows, encode every fit row (idempotent)."""
        if self._ready:
            return
        cfg, space = self.config, self.manifest.action_space
        a = self.fit_set.arrays(normalised=True)
        if len(a) == 0 or np.unique(a.patient).size < 2:
            raise InputError(
                f"dynamics: splits {list(cfg.fit_splits)} hold fewer than 2 patients; expected enough "
                "patients for a patient-level holdout. Use a larger cohort."
            )
        self.arrays, self.patient = a, a.patient
        held = np.isin(a.patient, holdout_patients(a.patient, cfg.holdout_fraction, cfg.seed))
        self.train_rows, self.holdout_rows = np.flatnonzero(~held), np.flatnonzero(held)
        doses = space.doses_of(a.actions) if space.kind == "discrete" else a.doses
        table = space.doses_of(np.arange(space.n_actions)) if space.kind == "discrete" else None
        delta = (a.next_states - a.states).astype(np.float64)
        state_mask = np.ones(len(a), dtype=bool) if cfg.state_loss_on_terminal else ~a.done
        self.scaling = DynamicsScaling(self.manifest.n_steps, self.state_dim, table, n_doses=doses.shape[1])
        tr = self.train_rows
        self.scaling.fit(doses[tr], delta[tr], state_mask[tr], a.reward_intermediate[tr].astype(np.float64))
        s = self.scaling
        with torch.no_grad():
            actions = torch.as_tensor(a.actions) if space.kind == "discrete" else torch.as_tensor(doses, dtype=torch.float32)
            x = s.encode(torch.as_tensor(a.states), actions, torch.as_tensor(a.step))
            delta_z = (torch.as_tensor(delta, dtype=torch.float32) - s.delta_mean) / s.delta_std
            reward_z = (torch.as_tensor(a.reward_intermediate) - s.reward_mean) / s.reward_std.clamp_min(1e-12)
            reward_z = reward_z if s.reward_modelled else torch.zeros_like(reward_z)
        columns = {
            "x": x,
            "target": torch.cat([delta_z, reward_z.unsqueeze(-1)], dim=-1),
            "state_mask": torch.as_tensor(state_mask, dtype=torch.float32),
            "reward_mask": torch.full((len(a),), float(s.reward_modelled)),
            "term": torch.as_tensor(termination_labels(a)),
            "outcome": torch.as_tensor(outcome_death_labels(a, self.manifest.spec.reward.death_reward)),
            "outcome_mask": torch.as_tensor(a.truncated, dtype=torch.float32),
        }
        self.columns = columns
        weights = None
        if cfg.bootstrap:
            g = torch.Generator().manual_seed(cfg.seed * 7919 + 1)
            weights = torch.poisson(torch.ones(cfg.n_members, tr.size), generator=g)
        tr_t, ho_t = torch.as_tensor(tr), torch.as_tensor(self.holdout_rows)
        self.train_set = BatchTensors({k: v[tr_t] for k, v in columns.items()}, weights)
        self.holdout_set = BatchTensors({k: v[ho_t] for k, v in columns.items()})
        self._ready = True

    def train_dataloader(self) -> DataLoader[Any]:
        sampler = EpochSeededBatches(len(self.train_set), self.config.batch_size, self.config.seed)
        return DataLoader(self.train_set, sampler=sampler, batch_size=None, num_workers=0)

    def val_dataloader(self) -> DataLoader[Any]:
        sampler = EpochSeededBatches(len(self.holdout_set), self.config.eval_batch_size, 0, shuffle=False)
        return DataLoader(self.holdout_set, sampler=sampler, batch_size=None, num_workers=0)
