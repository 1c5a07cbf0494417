"""Backward-induction FQE: one Q-network per window step, fitted from the last step to the first.

The iterative schedule of `ope.fqe` trains one network on every step at once and refreshes its
target H + 1 times; with the step as a one-hot input, the finite-horizon recursion is exact only if
each regression is, and errors at one step can leak into the others through the shared weights.
Here (Q-learning for dynamic treatment regimes, Murphy 2005; the finite-horizon FQE of Duan,
Jia & Wang, ICML 2020), step t's network is regressed only on the rows at step t, onto

    y = r + gamma * (1 - end) * sum_a pi_e(a | s') Q_{t+1}(s', a),

with Q_{t+1} already fitted and never trained again, so nothing feeds back. Each step's network
starts from the weights of the step after it (a warm start that shares what the later step
learnt without tying the two), then takes `FQEConfig.steps_per_stage` gradient steps over its
own rows. Bootstrapped members (`n_members`) and their Bayesian-bootstrap row weights are as in
`ope.fqe`.

The features must end with the one-hot window step, as `ope.policy_eval` builds them; the step
of a row is read from there (`window_steps`).

>>> rng = np.random.default_rng(0)
>>> n, h = 200, 3
>>> step = np.tile(np.arange(h), n // h + 1)[:n]
>>> x = np.concatenate([rng.normal(size=(n, 1)), np.eye(h)[step]], axis=1).astype(np.float32)
>>> x_next = np.concatenate([x[:, :1], np.eye(h)[np.minimum(step + 1, h - 1)]], axis=1).astype(np.float32)
>>> data = FQEData(features=x, actions=np.zeros(n, dtype=np.int64), rewards=np.ones(n),
...                end=step == h - 1, next_features=x_next, next_policy=np.ones((n, 1)), patient=np.arange(n))
>>> q = fit_backward_fqe(data, 1, 1.0, h, FQEConfig(schedule="backward", hidden_sizes=(),
...                      steps_per_stage=300, learning_rate=0.05, n_members=1))
>>> np.round([q.q_values(x[step == t]).mean() for t in range(h)], 1).tolist()
[3.0, 2.0, 1.0]
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.utils.data import Sampler

from clinical_mborl.core.errors import InputError
from clinical_mborl.core.lightning_logs import lightning_output
from clinical_mborl.ope.fqe import FittedQ, FQEConfig, FQEData, QNetwork, check_fit_inputs
from clinical_mborl.ope.fqe_batches import FQEDataModule, member_mean, member_weights


def window_steps(features: np.ndarray, horizon: int) -> np.ndarray:
    """The window step of each row, read from the one-hot in the last `horizon` feature columns."""
    tail = np.asarray(features)[:, -horizon:]
    if tail.shape[1] != horizon or not np.array_equal(tail.sum(axis=1), np.ones(len(tail))):
        bad = np.flatnonzero(tail.sum(axis=1) != 1)[:5].tolist() if tail.shape[1] == horizon else []
        raise InputError(f"backward FQE: the last {horizon} feature columns must be the one-hot window "
                         f"step (rows {bad} are not).")
    return tail.argmax(axis=1)


class StepwiseQNetwork(nn.Module):
    """H M-member Q-networks, one per window step: features [n, f] -> values [M, n, A], each row
    valued by the network of its own step."""

    def __init__(self, in_dim: int, n_actions: int, hidden_sizes: tuple[int, ...], n_members: int,
                 horizon: int) -> None:
        super().__init__()
        self.horizon = horizon
        self.nets = nn.ModuleList(QNetwork(in_dim, n_actions, hidden_sizes, n_members) for _ in range(horizon))

    @property
    def n_members(self) -> int:
        return int(self.nets[0].weights[0].shape[0])  # type: ignore[index]

    def forward(self, x: Tensor) -> Tensor:
        steps = torch.as_tensor(window_steps(x.detach().cpu().numpy(), self.horizon), device=x.device)
        out: Tensor | None = None
        for t in torch.unique(steps).tolist():
            rows = steps == t
            q = self.nets[t](x[rows])
            if out is None:
                out = q.new_zeros((q.shape[0], x.shape[0], q.shape[2]))
            out[:, rows] = q
        if out is None:
            out = self.nets[0](x)  # no rows
        return out


class _StagedBatches(Sampler[Tensor]):
    """Batches of one step's rows at a time, from the last step to the first: `n_updates` batches
    per step, cycling through fresh seeded permutations of that step's rows."""

    def __init__(self, steps: np.ndarray, horizon: int, batch_size: int, n_updates: int, seed: int) -> None:
        self.by_step = [torch.as_tensor(np.flatnonzero(steps == t)) for t in range(horizon)]
        self.batch_size, self.n_updates = batch_size, n_updates
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self) -> Iterator[Tensor]:
        for rows in reversed(self.by_step):
            if rows.numel() == 0:
                continue
            made = 0
            while made < self.n_updates:
                for batch in rows[torch.randperm(rows.numel(), generator=self.generator)].split(self.batch_size):
                    if made == self.n_updates:
                        break
                    made += 1
                    yield batch

    def __len__(self) -> int:
        return sum(self.n_updates for rows in self.by_step if rows.numel())


class BackwardFQESystem(pl.LightningModule):
    """Trains the step networks of a `StepwiseQNetwork` in the order the staged batches arrive."""

    def __init__(self, net: StepwiseQNetwork, gamma: float, scale: float, config: FQEConfig,
                 value_bounds: tuple[float, float] | None = None) -> None:
        super().__init__()
        self.net, self.gamma, self.scale, self.config = net, gamma, scale, config
        self.bounds = None if value_bounds is None else (value_bounds[0] / scale, value_bounds[1] / scale)
        self.stage = net.horizon  # the step being fitted; H: none yet
        self.last_fitted: int | None = None  # the latest window step with rows

    def _enter(self, t: int) -> None:
        """Start step t: steps t .. stage-1 take the weights of the step after them."""
        with torch.no_grad():
            for u in range(min(self.stage, self.net.horizon) - 1, t - 1, -1):
                if u + 1 < self.net.horizon:
                    self.net.nets[u].load_state_dict(self.net.nets[u + 1].state_dict())
        self.stage = t

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        x, a, r, end, x_next, pi_next, weight, _ = batch
        t = int(window_steps(x[:1].cpu().numpy(), self.net.horizon)[0])
        if t != self.stage:
            if self.last_fitted is None:
                self.last_fitted = t  # stages run backwards: the first is the latest step with rows
            self._enter(t)
        with torch.no_grad():
            if t + 1 < self.net.horizon:
                v_next = (pi_next * self.net.nets[t + 1](x_next)[..., : pi_next.shape[-1]]).sum(dim=-1)
                if self.bounds is not None:
                    v_next = v_next.clamp(*self.bounds)
            else:
                v_next = torch.zeros((self.net.n_members, len(r)), device=r.device)
            y = r / self.scale + self.gamma * (~end) * v_next
        q = self.net.nets[t](x).gather(2, a.expand(self.net.n_members, -1)[..., None]).squeeze(-1)
        return member_mean(weight, (q - y) ** 2).sum()

    def on_train_end(self) -> None:
        """Steps without fit rows take the weights of the nearest fitted step: the one after them,
        or for steps after the last one with rows, that step."""
        self._enter(0)
        with torch.no_grad():
            for u in range((self.last_fitted if self.last_fitted is not None else self.net.horizon) + 1,
                           self.net.horizon):
                self.net.nets[u].load_state_dict(self.net.nets[u - 1].state_dict())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.net.parameters(), lr=self.config.learning_rate,
                                weight_decay=self.config.weight_decay)


class _StagedDataModule(FQEDataModule):
    def __init__(self, data: FQEData, config: FQEConfig, horizon: int) -> None:
        super().__init__(data, config.batch_size, config.seed,
                         member_weights(data.patient, config.n_members, config.seed))
        self.sampler = _StagedBatches(window_steps(data.features, horizon), horizon, config.batch_size,  # type: ignore[assignment]
                                      config.steps_per_stage, config.seed)


def fit_backward_fqe(data: FQEData, n_actions: int, gamma: float, horizon: int, config: FQEConfig,
                     value_bounds: tuple[float, float] | None = None) -> FittedQ:
    """Backward-induction FQE on `data` (one Lightning fit, CPU, deterministic); see the module."""
    check_fit_inputs(data, n_actions, value_bounds)
    bounds = value_bounds if config.clip_to_value_bounds else None
    torch.manual_seed(config.seed)
    scale = max(float(np.abs(data.rewards).max()), 1e-8)
    net = StepwiseQNetwork(data.features.shape[1], n_actions, config.hidden_sizes, config.n_members, horizon)
    system = BackwardFQESystem(net, gamma, scale, config, bounds)
    with lightning_output(quiet=True, level=logging.ERROR, all_warnings=True):
        trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, deterministic=True)
        trainer.fit(system, datamodule=_StagedDataModule(data, config, horizon))
    return FittedQ(system.net.eval(), scale, bounds, n_actions, 0)
