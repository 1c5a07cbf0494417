"""Batches for the fitted-Q systems (`ope.fqe`, `ope.fqe_backward`, `ope.sensitivity`): the seeded,
reshuffled row batches of `FQEDataModule` and the Q-members' Bayesian-bootstrap row weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

if TYPE_CHECKING:
    from clinical_mborl.ope.fqe import FQEData


class _Rows(Dataset):
    """Tensors indexed by a whole batch of row indices at once (no per-row collation)."""

    def __init__(self, *tensors: Tensor) -> None:
        self.tensors = tensors

    def __len__(self) -> int:
        return int(self.tensors[0].shape[0])

    def __getitem__(self, idx: Tensor) -> tuple[Tensor, ...]:
        return tuple(t[idx] for t in self.tensors)


class _ShuffledBatches(Sampler[Tensor]):
    """Index batches of a fresh permutation each epoch, from one seeded generator."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size = n, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self) -> Iterator[Tensor]:
        yield from torch.randperm(self.n, generator=self.generator).split(self.batch_size)

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)


class FQEDataModule(pl.LightningDataModule):
    """Serves (x, a, r, end, x', pi_e(.|x'), member weights [b, M], pi_b(a|x)) batches, reshuffled
    each epoch with a seeded generator (pi_b(a|x) is 1 where the data do not carry it)."""

    def __init__(self, data: FQEData, batch_size: int, seed: int, member_weights: np.ndarray) -> None:
        super().__init__()
        self.rows = _Rows(
            torch.as_tensor(data.features, dtype=torch.float32),
            torch.as_tensor(data.actions, dtype=torch.int64),
            torch.as_tensor(data.rewards, dtype=torch.float32),
            torch.as_tensor(data.end, dtype=torch.bool),
            torch.as_tensor(data.next_features, dtype=torch.float32),
            torch.as_tensor(data.next_policy, dtype=torch.float32),
            torch.as_tensor(member_weights, dtype=torch.float32),
            torch.as_tensor(np.ones(len(data.actions)) if data.behavior_prob is None else data.behavior_prob,
                            dtype=torch.float32),
        )
        self.sampler = _ShuffledBatches(len(self.rows), batch_size, seed)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.rows, sampler=self.sampler, batch_size=None)


def member_weights(patient: np.ndarray, n_members: int, seed: int) -> np.ndarray:
    """[n, M] row weights: all 1 for one member; else member m's Bayesian-bootstrap weight of each
    row's patient (Rubin, 1981: Exp(1) per patient, the smooth bootstrap with the same variance).

    Unlike a multinomial resample, no patient -- and no rarely given dose level with it -- drops
    out of a member's fit (a multinomial resample loses ~37% of the patients).

    >>> w = member_weights(np.array([5, 5, 7]), 3, seed=0)
    >>> w.shape, bool((w[0] == w[1]).all()), bool((w > 0).all()), member_weights(np.array([5, 7]), 1, 0).ravel().tolist()
    ((3, 3), True, True, [1.0, 1.0])
    """
    if n_members == 1:
        return np.ones((len(patient), 1))
    ids, index = np.unique(patient, return_inverse=True)
    per_patient = np.random.default_rng([seed, 7]).exponential(size=(n_members, ids.size))
    return per_patient[:, index].T.astype(np.float64)


def member_mean(weight: Tensor, loss: Tensor) -> Tensor:
    """[M] each member's weighted mean of a per-row loss [M, b]; `weight` [b, M] bootstrap weights."""
    w = weight.T
    return (w * loss).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)
