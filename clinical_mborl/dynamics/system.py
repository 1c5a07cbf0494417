"""`DynamicsSystem`: the Lightning training system of the Gaussian ensemble.

Loss per member m (rows weighted by the member's bootstrap weights):
  Gaussian NLL of the standardised state change (rows whose next state is fitted) and of the
  standardised intermediate reward (unless it is constant on the train rows), + termination cross-entropy (continue/death/discharge),
  + Bernoulli NLL of death after the window (truncated rows only);
summed over members, plus `logvar_bound_weight` x (sum max_logvar - sum min_logvar).
Validation computes the same loss per member on the holdout patients (unweighted); the logged
`holdout_loss` is the mean over the `n_elites` best members, which early stopping monitors.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torch import Tensor
from torch.nn import functional as F

from clinical_mborl.dynamics.config import DynamicsConfig
from clinical_mborl.dynamics.encoding import DynamicsScaling
from clinical_mborl.dynamics.network import EnsembleOutput, GaussianEnsemble

COMPONENTS = ("state_nll", "reward_nll", "term_ce", "outcome_bce")
LOG_2PI = math.log(2 * math.pi)


def gaussian_nll(mean: Tensor, logvar: Tensor, target: Tensor) -> Tensor:
    """Elementwise Gaussian negative log-likelihood (with the 0.5 log 2 pi constant)."""
    return 0.5 * (logvar + (target - mean).square() * torch.exp(-logvar) + LOG_2PI)


def per_row_losses(out: EnsembleOutput, batch: dict[str, Tensor]) -> dict[str, tuple[Tensor, Tensor]]:
    """Per component: (loss [M, n], row mask [n]) in standardised target space."""
    d = out.mean.shape[-1] - 1
    nll = gaussian_nll(out.mean, out.logvar, batch["target"])
    m, n = out.mean.shape[0], out.mean.shape[1]
    ce = F.cross_entropy(out.term_logits.reshape(m * n, -1), batch["term"].repeat(m), reduction="none")
    bce = F.binary_cross_entropy_with_logits(
        out.outcome_logit, batch["outcome"].expand(m, -1), reduction="none"
    )
    ones = torch.ones_like(batch["state_mask"])
    return {
        "state_nll": (nll[..., :d].sum(-1), batch["state_mask"]),
        "reward_nll": (nll[..., d], batch["reward_mask"]),
        "term_ce": (ce.view(m, n), ones),
        "outcome_bce": (bce, batch["outcome_mask"]),
    }


class DynamicsSystem(pl.LightningModule):
    """Trains `GaussianEnsemble`; keeps the per-member holdout losses of the last validation."""

    def __init__(self, config: DynamicsConfig, in_dim: int, state_dim: int, scaling: DynamicsScaling) -> None:
        super().__init__()
        self.config = config
        self.network = GaussianEnsemble(
            config.n_members, in_dim, state_dim + 1, config.hidden_sizes,
            config.init_max_logvar, config.init_min_logvar,
        )
        self.scaling = scaling
        self.loss_weights = {"state_nll": 1.0, "reward_nll": 1.0, "term_ce": config.termination_weight,
                        "outcome_bce": config.outcome_weight}
        self.holdout_member_loss: Tensor | None = None
        self.history: list[dict[str, Any]] = []
        self._sums: dict[str, Tensor] = {}
        self._train_sum = torch.zeros(())
        self._train_batches = 0

    def member_losses(self, batch: dict[str, Tensor], weight: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Total loss per member [M] and per-component means [M] for one batch."""
        out = self.network(batch["x"])
        total = torch.zeros(out.mean.shape[0], device=out.mean.device)
        parts: dict[str, Tensor] = {}
        for name, (loss, mask) in per_row_losses(out, batch).items():
            w = mask if weight is None else weight * mask
            parts[name] = (loss * w).sum(-1) / w.sum(-1).clamp_min(1e-8)
            total = total + self.loss_weights[name] * parts[name]
        return total, parts

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        total, _ = self.member_losses(batch, batch.get("weight"))
        loss = total.sum() + self.config.logvar_bound_weight * self.network.logvar_bound_penalty()
        self._train_sum = self._train_sum.to(loss.device) + loss.detach()
        self._train_batches += 1
        return loss

    def on_train_epoch_start(self) -> None:
        self._train_sum, self._train_batches = torch.zeros((), device=self.device), 0

    def holdout_sums(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Per component: [2, M] = (sum of masked row losses, number of rows) for one batch."""
        out = self.network(batch["x"])
        return {
            name: torch.stack([(loss * mask).sum(-1), mask.sum().expand(loss.shape[0])])
            for name, (loss, mask) in per_row_losses(out, batch).items()
        }

    def combine(self, sums: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Accumulated sums -> total loss per member [M] and per-component means [M]."""
        total = torch.zeros(self.config.n_members, device=next(iter(sums.values())).device)
        means = {}
        for name, s in sums.items():
            means[name] = s[0] / s[1].clamp_min(1.0)
            total = total + self.loss_weights[name] * means[name]
        return total, means

    def on_validation_epoch_start(self) -> None:
        self._sums = {}

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        for name, s in self.holdout_sums(batch).items():
            self._sums[name] = self._sums[name] + s if name in self._sums else s

    def on_validation_epoch_end(self) -> None:
        member, means = self.combine(self._sums)
        record: dict[str, Any] = {"epoch": int(self.current_epoch)}
        record.update({name: m.tolist() for name, m in means.items()})
        self.holdout_member_loss = member.detach().cpu()
        elite_loss = member.sort().values[: self.config.n_elites].mean()
        self.log("holdout_loss", elite_loss, prog_bar=True)
        record["holdout_loss"] = float(elite_loss)
        record["member_loss"] = member.tolist()
        if self._train_batches:
            record["train_loss"] = float(self._train_sum) / self._train_batches
        if not self.trainer.sanity_checking:
            self.history.append(record)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.config.learning_rate, weight_decay=self.config.weight_decay)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["dynamics_history"] = self.history

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.history = list(checkpoint.get("dynamics_history", []))


class RelativeEarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than `min_relative` x |best| for `patience` epochs."""

    def __init__(self, monitor: str = "holdout_loss", min_relative: float = 0.01, patience: int = 5) -> None:
        self.monitor, self.min_relative, self.patience = monitor, min_relative, patience
        self.best = math.inf
        self.wait = 0

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        current = float(trainer.callback_metrics[self.monitor])
        if not math.isfinite(self.best) or (self.best - current) > self.min_relative * max(abs(self.best), 1e-8):
            self.best, self.wait = current, 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best, self.wait = float(state_dict["best"]), int(state_dict["wait"])
