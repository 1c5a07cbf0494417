"""The Lightning plumbing every learner shares.

One `training_step` is one gradient update (manual optimisation): the "data" is the update
index, and each algorithm's `update(i)` samples its own minibatch from replay buffers with a
seeded generator. `ModelBasedSystem` adds the model buffer and a rollout round every
`rollout_every` updates. `prepare` checks the inputs and builds the dataset buffer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from clinical_mborl.cohort import TransitionSet
from clinical_mborl.core.errors import InputError
from clinical_mborl.core.lightning_logs import lightning_output
from clinical_mborl.core.seeding import seed_everything
from clinical_mborl.policies.buffers import Batch, ReplayBuffer, concat, real_batch
from clinical_mborl.policies.config import LearnerConfig, ModelBasedConfig
from clinical_mborl.policies.constraints import ClinicianPrior
from clinical_mborl.policies.learned import Head, LearnedPolicy, OutputSettings
from clinical_mborl.policies.rollouts import (
    ActFn,
    DynamicsModel,
    RewardFn,
    branch_rollouts,
    model_device,
)


@dataclass(frozen=True)
class TrainingData:
    """Checked inputs of one training run."""

    transitions: TransitionSet  # the whole cohort (the normaliser and manifest travel with it)
    real: Batch  # train-split rows
    prior: ClinicianPrior | None  # pi_b, when the constraint needs it
    gamma: float
    in_dim: int


def prepare(transitions: TransitionSet, behavior: Any, dynamics: DynamicsModel | None,
            config: LearnerConfig, algo: str, needs_dynamics: bool, uses_behavior: bool = True) -> TrainingData:
    """Validate settings and inputs, seed everything, and build the dataset buffer."""
    config.check()
    space = transitions.manifest.action_space
    config.constraint.validate(space.kind, behavior, uses_behavior)
    if needs_dynamics:
        if dynamics is None:
            raise InputError(f"{algo}: needs the learned dynamics ensemble, got none; train it with "
                             "`clinical-mborl train dynamics` and pass it.")
        if tuple(dynamics.feature_names) != transitions.feature_names or dynamics.action_space.kind != space.kind:
            raise InputError(f"{algo}: the dynamics ensemble was trained on other features or actions; "
                             "expected the same cohort. Retrain it on this cohort.")
    train = transitions.split("train")
    if len(train) == 0:
        raise InputError(f"{algo}: the cohort has no 'train' rows; expected a cohort with a train split.")
    seed_everything(config.seed)
    prior = None
    if behavior is not None and uses_behavior and config.constraint.needs_behavior(space.kind):
        prior = ClinicianPrior(behavior, transitions.normalizer, space)
    # Dose levels: pi_b on dataset rows (out-of-fold) for the mask and KL. Continuous doses: the
    # support penalty charges the learned policy's doses in model rollouts only; the clinicians'
    # recorded doses are in support by definition, however the density estimate rates them.
    log_pb = prior.dataset_log_proba(transitions, "train") if prior is not None and space.kind == "discrete" else None
    real = real_batch(train, log_pb)
    return TrainingData(transitions, real, prior, float(transitions.manifest.gamma), real.states.shape[1])


class _UpdateIndex(Dataset[int]):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class PolicySystem(pl.LightningModule, ABC):
    """Manual-optimisation Lightning system; subclasses define `optimiser_groups` and `update`."""

    def __init__(self, config: LearnerConfig, data: TrainingData) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.config = config
        self.data = data
        self.real = ReplayBuffer(data.real)
        self.history: list[dict[str, float]] = []
        self._names: list[str] = []
        self.generator = torch.Generator().manual_seed(config.seed)

    # subclasses ----------------------------------------------------------------
    @abstractmethod
    def optimiser_groups(self) -> dict[str, tuple[list[torch.nn.Parameter], float]]:
        """name -> (parameters, learning rate); one Adam optimiser each."""

    @abstractmethod
    def update(self, i: int) -> dict[str, Tensor]:
        """One gradient update; returns detached metrics."""

    # plumbing ------------------------------------------------------------------
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        groups = self.optimiser_groups()
        self._names = list(groups)
        return [torch.optim.Adam(params, lr=lr) for params, lr in groups.values()]

    def train_dataloader(self) -> DataLoader[int]:
        return DataLoader(_UpdateIndex(self.config.n_updates), batch_size=None, shuffle=False)

    def on_fit_start(self) -> None:
        self.real.to(self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(self.config.seed)

    def optimise(self, name: str, loss: Tensor) -> None:
        """zero_grad, backward and step of the optimiser called `name`."""
        opts = self.optimizers()
        opt = opts[self._names.index(name)] if isinstance(opts, list) else opts
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()

    def training_step(self, batch: Tensor, batch_idx: int) -> None:
        metrics = self.update(batch_idx)
        every = max(1, self.config.n_updates // 50)
        if batch_idx % every == 0 or batch_idx == self.config.n_updates - 1:
            row = {k: float(v) for k, v in metrics.items()}
            self.history.append({"update": float(batch_idx), **row})
            self.log_dict({k: v for k, v in row.items() if k.endswith("loss")}, prog_bar=True)


class ModelBasedSystem(PolicySystem):
    """Adds the model buffer, rollout rounds and mixed real/model minibatches."""

    config: ModelBasedConfig
    dynamics: DynamicsModel

    def __init__(self, config: ModelBasedConfig, data: TrainingData, dynamics: DynamicsModel,
                 reward_fn: RewardFn) -> None:
        super().__init__(config, data)
        self.__dict__["dynamics"] = dynamics  # not a submodule: Lightning must not move or save it
        self.reward_fn = reward_fn
        self.model = ReplayBuffer(capacity=config.rollout_batch * config.horizon * config.retain_rounds)
        self.model_generator = torch.Generator(device=model_device(dynamics)).manual_seed(config.seed + 1)

    @abstractmethod
    def act(self, states: Tensor, log_pb: Tensor | None, generator: torch.Generator) -> Tensor:
        """The current policy's action as buffers store it (subclasses delegate to their agent)."""

    @abstractmethod
    def env_actions(self, actions: Tensor) -> Tensor:
        """Buffer actions -> dynamics actions (subclasses delegate to their agent)."""

    def _act_on_device(self) -> ActFn:
        def act(states: Tensor, log_pb: Tensor | None, _: torch.Generator) -> Tensor:
            lp = None if log_pb is None else log_pb.to(self.device)
            return self.act(states.to(self.device), lp, self.generator)
        return act

    def rollout(self) -> Batch:
        """One rollout round from `rollout_batch` dataset states, added to the model buffer."""
        start = self.real.sample(self.config.rollout_batch, self.generator)
        generated = branch_rollouts(self.dynamics, self._act_on_device(),
                                    lambda a: self.env_actions(a.to(self.device)), start, self.config.horizon,
                                    self.model_generator, self.reward_fn, self.data.prior,
                                    self.config.constraint)
        generated = generated.to(self.device)
        self.model.add(generated)
        return generated

    def mixed_batch(self, i: int) -> tuple[Batch | None, Batch]:
        """(real part or None, model part) of update i's minibatch; rolls out when it is time."""
        if i % self.config.rollout_every == 0:
            self.rollout()
        n_real = int(round(self.config.batch_size * self.config.real_fraction))
        n_model = max(1, self.config.batch_size - n_real)
        real = self.real.sample(n_real, self.generator) if n_real > 0 else None
        return real, self.model.sample(n_model, self.generator)

    @staticmethod
    def join(real: Batch | None, model: Batch) -> Batch:
        return model if real is None else concat([real, model])


def fit_system(system: PolicySystem) -> None:
    """Run the Lightning Trainer: one epoch of `n_updates` updates, deterministic, GPU when present."""
    with lightning_output(system.config.quiet):
        trainer = pl.Trainer(
            accelerator="auto", devices=1, deterministic=True, max_epochs=1, logger=False,
            enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
            enable_progress_bar=not system.config.quiet,
        )
        trainer.fit(system)
    system.cpu()


def build_policy(data: TrainingData, config: LearnerConfig, algo: str, head: Head, network: nn.Module,
                 spec: dict[str, Any], behavior: Any, *, tau: float = 0.0, critic: nn.Module | None = None,
                 critic_spec: dict[str, Any] | None = None, history: list[dict[str, float]] | None = None,
                 output: OutputSettings | None = None) -> LearnedPolicy:
    """Wrap trained networks (moved to CPU) as a `LearnedPolicy` with the cohort's normaliser."""
    ts = data.transitions
    return LearnedPolicy(
        name=algo, algo=algo, head=head, network=network.cpu(), network_spec=spec,
        normalizer=ts.normalizer, feature_names=ts.feature_names, action_space=ts.manifest.action_space,
        constraint=config.constraint, tau=tau, output=output, behavior=behavior,
        critic=None if critic is None else critic.cpu(), critic_spec=critic_spec,
        config={"algo": algo, **config.to_dict()}, cohort_manifest_hash=ts.manifest_hash,
        seed=config.seed, history=history,
    )
