"""Fitted Q evaluation (Le, Voloshin & Yue, ICML 2019): the Q-model behind DR, WDR and FQE.

Q(s, .) over the discrete joint dose levels is regressed, iteration after iteration, on the
target  y = r + gamma * (1 - end) * sum_a pi_e(a | s') Q_prev(s', a),  where Q_prev is a frozen
copy refreshed every `epochs_per_iteration` epochs, `end` = death, discharge or window end (no
bootstrapping past a stay), and pi_e the *softened* evaluation policy. Inputs carry the window
step (one-hot), so with `n_iterations >= window steps` the finite-horizon recursion is exact up
to the regression error (the first iteration bootstraps from zero, not from a random net).

Model / system / data are separate (Lightning): `QNetwork`, `FQESystem`, `FQEDataModule`.
Cross-fitting: `cross_fit_q` gives each evaluation patient Q-values from a model that never saw
that patient (one fit when the fit and evaluation patients are disjoint, K patient folds when
they overlap).

>>> rng = np.random.default_rng(0)
>>> n = 64
>>> data = FQEData(features=np.eye(2, dtype=np.float32)[rng.integers(0, 2, n)],
...                actions=rng.integers(0, 2, n), rewards=np.ones(n), end=np.ones(n, bool),
...                next_features=np.zeros((n, 2), np.float32), next_policy=np.full((n, 2), 0.5),
...                patient=np.arange(n))
>>> q = fit_fqe(data, n_actions=2, gamma=0.9, horizon=1, config=FQEConfig(hidden_sizes=(),
...             epochs_per_iteration=200, batch_size=64, learning_rate=0.05))
>>> bool(np.allclose(q.q_values(data.features), 1.0, atol=0.05))
True
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytorch_lightning as pl
import torch
from pydantic import Field
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from clinical_mborl.core.errors import InputError
from clinical_mborl.core.models import StrictModel


class FQEConfig(StrictModel):
    """Settings of the fitted-Q model."""

    hidden_sizes: tuple[int, ...] = Field((64, 64), description="MLP widths (SiLU); () is linear.")
    n_iterations: int | None = Field(None, ge=1, description="FQE iterations (target refreshes); "
                                     "None: the window length + 1 (exact finite-horizon recursion).")
    epochs_per_iteration: int = Field(4, ge=1, description="Regression epochs per iteration.")
    batch_size: int = Field(1024, ge=1, description="Rows per gradient step.")
    learning_rate: float = Field(3e-3, gt=0, description="Adam step size.")
    weight_decay: float = Field(0.0, ge=0, description="Adam L2 penalty.")
    n_folds: int = Field(5, ge=2, description="Patient folds when fit and evaluation patients overlap.")
    seed: int = Field(0, description="Seed of initialisation and shuffling.")


@dataclass(frozen=True)
class FQEData:
    """Flat transitions for FQE; `features` are model inputs (normalised state + step one-hot)."""

    features: np.ndarray  # [n, f] float32
    actions: np.ndarray  # [n] int64 joint dose level
    rewards: np.ndarray  # [n]
    end: np.ndarray  # [n] bool: no bootstrap past this row
    next_features: np.ndarray  # [n, f]
    next_policy: np.ndarray  # [n, A] softened pi_e(. | s')
    patient: np.ndarray  # [n] patient ids (for cross-fitting)

    def rows(self, keep: np.ndarray) -> FQEData:
        return FQEData(*(np.asarray(getattr(self, f))[keep] for f in self.__dataclass_fields__))


class QNetwork(nn.Module):
    """Q(s, .): features [n, f] -> values [n, A] (in units of `scale` reward)."""

    def __init__(self, in_dim: int, n_actions: int, hidden_sizes: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for h in hidden_sizes:
            layers += [nn.Linear(width, h), nn.SiLU()]
            width = h
        layers.append(nn.Linear(width, n_actions))
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


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
    """Serves (x, a, r, end, x', pi_e(.|x')) batches, reshuffled each epoch with a seeded generator."""

    def __init__(self, data: FQEData, batch_size: int, seed: int) -> None:
        super().__init__()
        self.rows = _Rows(
            torch.as_tensor(data.features, dtype=torch.float32),
            torch.as_tensor(data.actions, dtype=torch.int64),
            torch.as_tensor(data.rewards, dtype=torch.float32),
            torch.as_tensor(data.end, dtype=torch.bool),
            torch.as_tensor(data.next_features, dtype=torch.float32),
            torch.as_tensor(data.next_policy, dtype=torch.float32),
        )
        self.sampler = _ShuffledBatches(len(self.rows), batch_size, seed)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.rows, sampler=self.sampler, batch_size=None)


class FQESystem(pl.LightningModule):
    """One regression per FQE iteration onto targets from the frozen previous Q."""

    def __init__(self, net: QNetwork, gamma: float, scale: float, config: FQEConfig) -> None:
        super().__init__()
        self.net, self.target = net, copy.deepcopy(net).requires_grad_(False)
        self.gamma, self.scale, self.config = gamma, scale, config

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        x, a, r, end, x_next, pi_next = batch
        with torch.no_grad():
            v_next = (pi_next * self.target(x_next)).sum(dim=-1)
            if self.current_epoch < self.config.epochs_per_iteration:
                v_next = torch.zeros_like(v_next)  # first iteration: Q_0 = 0
            y = r / self.scale + self.gamma * (~end) * v_next
        q = self.net(x).gather(1, a[:, None]).squeeze(1)
        return F.mse_loss(q, y)

    def on_train_epoch_end(self) -> None:
        if (self.current_epoch + 1) % self.config.epochs_per_iteration == 0:
            self.target.load_state_dict(self.net.state_dict())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.net.parameters(), lr=self.config.learning_rate,
                                weight_decay=self.config.weight_decay)


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's banner lines and warnings about small data for one fit."""
    loggers = [logging.getLogger(n) for n in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


@dataclass(frozen=True)
class FittedQ:
    """A trained Q-model; `q_values` returns [n, A] in reward units."""

    net: QNetwork
    scale: float

    def q_values(self, features: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = self.net.cpu()(torch.as_tensor(np.asarray(features), dtype=torch.float32))
        return out.numpy().astype(np.float64) * self.scale


def fit_fqe(data: FQEData, n_actions: int, gamma: float, horizon: int, config: FQEConfig | None = None) -> FittedQ:
    """Train one Q-model on `data` (all rows)."""
    config = config or FQEConfig()
    if len(data.actions) == 0:
        raise InputError("FQE: expected at least one transition to fit on, got none.")
    if data.next_policy.shape != (len(data.actions), n_actions):
        raise InputError(f"FQE: next_policy must be [n, {n_actions}], got {data.next_policy.shape}.")
    torch.manual_seed(config.seed)
    scale = max(float(np.abs(data.rewards).max()), 1e-8)
    net = QNetwork(data.features.shape[1], n_actions, config.hidden_sizes)
    system = FQESystem(net, gamma, scale, config)
    n_iter = config.n_iterations or horizon + 1
    with quiet_lightning():
        trainer = pl.Trainer(
            accelerator="cpu", devices=1, max_epochs=n_iter * config.epochs_per_iteration, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            deterministic=True,
        )
        trainer.fit(system, datamodule=FQEDataModule(data, config.batch_size, config.seed))
    return FittedQ(system.net.eval(), scale)


def cross_fit_q(
    fit: FQEData,
    eval_features: np.ndarray,
    eval_patient: np.ndarray,
    n_actions: int,
    gamma: float,
    horizon: int,
    config: FQEConfig | None = None,
) -> np.ndarray:
    """Q [n_eval, A] for evaluation rows, each from a model that never saw that row's patient."""
    config = config or FQEConfig()
    shared = np.intersect1d(np.unique(fit.patient), np.unique(eval_patient))
    if shared.size == 0:
        return fit_fqe(fit, n_actions, gamma, horizon, config).q_values(eval_features)
    patients = np.union1d(fit.patient, eval_patient)
    fold_of = dict(zip(patients.tolist(),
                       np.random.default_rng(config.seed).permutation(patients.size) % config.n_folds,
                       strict=True))
    fit_fold = np.array([fold_of[p] for p in fit.patient.tolist()])
    eval_fold = np.array([fold_of[p] for p in eval_patient.tolist()])
    q = np.zeros((len(eval_patient), n_actions))
    for k in range(config.n_folds):
        rows = eval_fold == k
        if rows.any():
            model = fit_fqe(fit.rows(fit_fold != k), n_actions, gamma, horizon, config)
            q[rows] = model.q_values(eval_features[rows])
    return q
