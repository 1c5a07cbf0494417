"""Fitted Q evaluation (Le, Voloshin & Yue, ICML 2019): the Q-model behind DR, WDR and FQE.

Q(s, .) over the discrete joint dose levels is regressed, iteration after iteration, on the
target  y = r + gamma * (1 - end) * sum_a pi_e(a | s') Q_prev(s', a),  where Q_prev is a frozen
copy refreshed every `steps_per_iteration` Adam steps (or `epochs_per_iteration` epochs), `end` =
death, discharge or window end (no bootstrapping past a stay), and pi_e the *softened* evaluation
policy. Inputs carry the window step (one-hot), so with `n_iterations >= window steps` the
finite-horizon recursion is exact up to the regression error (the first iteration bootstraps from
zero, not from a random net). `function_class = "linear"` solves every regression exactly instead
(`ope.fqe_linear`).

Model / system / data are separate (Lightning): `QNetwork` (`ope.q_network`), `FQESystem`, `FQEDataModule`
(`ope.fqe_batches`, with the members' bootstrap weights).
Cross-fitting: `cross_fit_q` gives each evaluation patient Q-values from a model that never saw
that patient (one fit when the fit and evaluation patients are disjoint, K patient folds when
they overlap).

Bootstrapped FQE (Hao et al., ICML 2021; Kostrikov & Nachum, 2020): with `n_members = M > 1`,
M Q-networks are trained together (one batched network), member m on a patient bootstrap
resample of the fit patients (row weight = the weight of the row's patient) from its own
initialisation; the resample is a Bayesian bootstrap (Exp(1) weight per patient), so no
patient drops out of any member. `FittedQ.q_values` is their average (bagged FQE);
`member_q_values` keeps them apart so the OPE bootstrap can pair each resample with one
refitted Q-model and Q-fitting variability -- data and optimisation alike -- enters the
interval. `FQEConfig.prior_spread` adds a frozen random prior network to each member
(randomized prior functions, `ope.q_network`), so the members also disagree where no row pins
Q down.

`FQESystem.bellman_target`, `train_system` and `fqe_batches.member_mean` are shared with the
marginal-sensitivity bounds (`ope.sensitivity`), whose networks carry a second head.
`FQEConfig.clip_to_value_bounds` (off) clamps targets and outputs to the range of any remaining
return.

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

import copy
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from clinical_mborl.core.errors import InputError
from clinical_mborl.core.lightning_logs import lightning_output
from clinical_mborl.core.models import StrictModel
from clinical_mborl.ope.fqe_batches import FQEDataModule, member_mean, member_weights
from clinical_mborl.ope.q_network import QNetwork, prior_gain


class FQEConfig(StrictModel):
    """Settings of the fitted-Q model."""

    hidden_sizes: tuple[int, ...] = Field((64, 64), description="MLP widths (SiLU); () is linear.")
    n_iterations: int | None = Field(None, ge=1, description="FQE iterations (target refreshes); "
                                     "None: the window length + 1 (exact finite-horizon recursion).")
    epochs_per_iteration: int = Field(4, ge=1, description="Regression epochs per iteration (when "
                                      "`steps_per_iteration` is None).")
    steps_per_iteration: int | None = Field(
        None, ge=1, description="iterative schedule: Adam steps per iteration (target refresh), whatever the "
        "number of rows; None: `epochs_per_iteration` epochs, so the budget grows with the cohort. FQE's "
        "values move with this budget (docs/coverage.md, lesson 16).")
    batch_size: int = Field(1024, ge=1, description="Rows per gradient step.")
    learning_rate: float = Field(3e-3, gt=0, description="Adam step size.")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="iterative schedule: constant, Adam at `learning_rate` throughout; cosine, "
        "each iteration's regression anneals the step size from `learning_rate` to 0 (restarting at every "
        "target refresh), so each iteration ends at a settled fit of its targets instead of wherever "
        "Adam's last steps left it.")
    weight_decay: float = Field(0.0, ge=0, description="Adam L2 penalty.")
    n_folds: int = Field(5, ge=2, description="Patient folds when fit and evaluation patients overlap.")
    seed: int = Field(0, description="Seed of initialisation, shuffling and the members' resamples.")
    schedule: Literal["iterative", "backward"] = Field(
        "iterative", description="iterative: one network for every step, its target refreshed each "
        "iteration; backward: one network per window step, fitted from the last step to the first "
        "(`ope.fqe_backward`).")
    steps_per_stage: int = Field(200, ge=1, description="backward schedule: gradient steps on each window "
                                 "step's rows.")
    n_members: int = Field(5, ge=1, description="Q-networks trained together, each on a patient bootstrap "
                           "resample of the fit patients (bootstrapped FQE); 1: one fit on all patients.")
    clip_to_value_bounds: bool = Field(False, description="Clamp the bootstrapped next-state value and the "
                                       "returned Q-values to the bounds of any remaining return (when the "
                                       "caller gives them), so an extrapolating Q-model cannot leave the "
                                       "range the true values lie in. Off by default: clamping noisy values "
                                       "near the bound truncates only their upper side, and in a paired pilot "
                                       "(16 data sets) it moved every FQE bias down by 0.02-0.05 and cut "
                                       "coverage (docs/coverage.md).")

    function_class: Literal["network", "linear"] = Field(
        "network", description="network: the MLP of `hidden_sizes`, each iteration's regression run for its "
        "Adam budget (`steps_per_iteration`, or `epochs_per_iteration`); linear: Q(s, a) = x(s) . (theta_shared + theta_a), each "
        "iteration's ridge regression solved exactly (`ope.fqe_linear`), so no optimisation budget; needs "
        "hidden_sizes=() and the iterative schedule.")
    prior_spread: float = Field(
        0.0, ge=0, description="network, iterative schedule: each member adds a frozen random network of "
        "its own shape (randomized prior functions, `ope.q_network`), sized so that before training the "
        "priors alone spread the members' Q-values by this root-mean-square sd (reward units) on the fit "
        "rows. Where the data pin Q down the members learn to cancel their priors; at doses rarely given "
        "they keep the spread, so the interval widens where FQE extrapolates. 0: no prior.")
    prior_where: Literal["everywhere", "off_support"] = Field(
        "everywhere", description="with prior_spread: everywhere, at every dose; off_support, only at doses the "
        "clinician model gives with probability under `OPEConfig.support_threshold` in that state, so the members "
        "need not cancel their priors at the doses the data hold (the caller appends the support mask to the "
        "features: `ope.policy_eval`).")
    shared_penalty: float = Field(1.0, gt=0, description="linear: ridge penalty on the shared coefficients.")
    action_penalty: float = Field(10.0, gt=0, description="linear: ridge penalty on each dose level's own "
                                  "coefficients, pulling a rarely given level's Q toward the shared one (about "
                                  "the number of unit-variance rows at which a level's own fit gets half weight).")

    @model_validator(mode="after")
    def _schedule_options(self) -> FQEConfig:
        if self.function_class == "linear" and (self.hidden_sizes or self.schedule != "iterative"
                                                or self.lr_schedule != "constant"):
            raise ValueError("function_class='linear' solves each iteration in closed form: it needs "
                             "hidden_sizes=(), schedule='iterative' and lr_schedule='constant', got "
                             f"hidden_sizes={self.hidden_sizes}, schedule={self.schedule!r}, "
                             f"lr_schedule={self.lr_schedule!r}.")
        if self.steps_per_iteration is not None and (self.schedule != "iterative" or self.function_class != "network"):
            raise ValueError(f"steps_per_iteration={self.steps_per_iteration} is the Adam budget of the network's "
                             "iterative schedule; the backward schedule has steps_per_stage and the linear function "
                             "class solves each iteration exactly, so leave it None with them.")
        if self.prior_spread and (self.schedule != "iterative" or self.function_class != "network"
                                  or self.n_members < 2):
            raise ValueError(f"prior_spread={self.prior_spread} spreads the members of the network's iterative "
                             "schedule: it needs schedule='iterative', function_class='network' and n_members >= 2, "
                             f"got {self.schedule!r}, {self.function_class!r}, n_members={self.n_members}.")
        if self.prior_where != "everywhere" and not self.prior_spread:
            raise ValueError(f"prior_where={self.prior_where!r} places a prior; set prior_spread > 0 with it.")
        if self.schedule == "backward" and self.lr_schedule != "constant":
            raise ValueError(f"lr_schedule={self.lr_schedule!r} anneals each iteration of the iterative schedule; "
                             "the backward schedule fits each step once, so use lr_schedule='constant' with it.")
        return self

    def iteration_steps(self, n_rows: int) -> int:
        """Adam steps in each iteration of a network fit on `n_rows` rows: `steps_per_iteration`, or
        `epochs_per_iteration` passes of ceil(n_rows / batch_size) batches.

        >>> FQEConfig().iteration_steps(6500), FQEConfig(steps_per_iteration=32).iteration_steps(6500)
        (28, 32)
        """
        if self.steps_per_iteration is not None:
            return self.steps_per_iteration
        return self.epochs_per_iteration * math.ceil(n_rows / self.batch_size)


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
    behavior_prob: np.ndarray | None = None  # [n] pi_b(a_t | s_t), for the sensitivity bounds

    def rows(self, keep: np.ndarray) -> FQEData:
        picked: dict[str, Any] = {f: None if getattr(self, f) is None else np.asarray(getattr(self, f))[keep]
                                  for f in self.__dataclass_fields__}
        return replace(self, **picked)


class FQESystem(pl.LightningModule):
    """One regression per FQE iteration onto targets from the frozen previous Q."""

    def __init__(self, net: QNetwork, gamma: float, scale: float, config: FQEConfig,
                 value_bounds: tuple[float, float] | None = None) -> None:
        super().__init__()
        self.net, self.target = net, copy.deepcopy(net).requires_grad_(False)
        self.gamma, self.scale, self.config = gamma, scale, config
        self.bounds = None if value_bounds is None else (value_bounds[0] / scale, value_bounds[1] / scale)
        self.iteration_steps = config.iteration_steps(1)  # `setup` sets it from the rows of the fit

    def bellman_target(self, r: Tensor, end: Tensor, x_next: Tensor, pi_next: Tensor) -> Tensor:
        """[M, b] y = r + gamma * (1 - end) * sum_a pi(a | s') Q_prev(s', a), in units of `scale`."""
        with torch.no_grad():
            return self.backup(r, end, self.target(x_next)[..., : pi_next.shape[-1]], pi_next)

    def backup(self, r: Tensor, end: Tensor, q_next: Tensor, pi_next: Tensor) -> Tensor:
        """`bellman_target` from the previous Q's values at s' ([M, b, A], one value head; extra axes
        before A broadcast with `r`, `end` and `pi_next`, e.g. [M, b, K, A] for K heads)."""
        with torch.no_grad():
            v_next = (pi_next * q_next).sum(dim=-1)  # [M, b]
            if self.in_first_iteration():
                v_next = torch.zeros_like(v_next)  # first iteration: Q_0 = 0
            elif self.bounds is not None:
                v_next = v_next.clamp(*self.bounds)
            return r / self.scale + self.gamma * (~end) * v_next

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        x, a, r, end, x_next, pi_next, weight, _ = batch
        y = self.bellman_target(r, end, x_next, pi_next)
        q = self.net(x).gather(2, a.expand(self.net.n_members, -1)[..., None]).squeeze(-1)
        return member_mean(weight, (q - y) ** 2).sum()

    def setup(self, stage: str) -> None:
        rows = self.trainer.datamodule.rows  # type: ignore[attr-defined]  # Lightning sets it, its stubs omit it
        self.iteration_steps = self.config.iteration_steps(len(rows))

    def in_first_iteration(self) -> bool:
        return self.global_step < self.iteration_steps  # global_step: optimiser steps taken

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.global_step % self.iteration_steps == 0:
            self.target.load_state_dict(self.net.state_dict())

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.net.parameters(), lr=self.config.learning_rate,
                                     weight_decay=self.config.weight_decay)
        if self.config.lr_schedule == "constant":
            return optimizer
        steps = self.iteration_steps
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_factor(step, steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def cosine_factor(step: int, per_iteration: int) -> float:
    """Step-size factor of gradient step `step` (0-based) when every FQE iteration has `per_iteration`
    steps: half a cosine from 1 at an iteration's first step to near 0 at its last, restarting each
    iteration.

    >>> [round(cosine_factor(s, 4), 3) for s in range(6)]
    [1.0, 0.854, 0.5, 0.146, 1.0, 0.854]
    """
    return 0.5 * (1.0 + math.cos(math.pi * (step % per_iteration) / per_iteration))


@dataclass(frozen=True)
class FittedQ:
    """A trained Q-model; `q_values` returns [n, A] in reward units (the members' average),
    clamped to `value_bounds` when set."""

    net: nn.Module  # QNetwork, or ope.fqe_backward.StepwiseQNetwork: features [n, f] -> [M, n, outputs]
    scale: float
    value_bounds: tuple[float, float] | None = None
    n_actions: int | None = None  # the value head's width when the network has more outputs
    head_offset: int = 0  # where the value head starts among the network's outputs

    def member_q_values(self, features: np.ndarray) -> np.ndarray:
        """[M, n, A]: each member's Q-values in reward units."""
        with torch.no_grad():
            out = self.net.cpu()(torch.as_tensor(np.asarray(features), dtype=torch.float32))
        end = None if self.n_actions is None else self.head_offset + self.n_actions
        q = out.numpy()[..., self.head_offset: end].astype(np.float64) * self.scale
        return q if self.value_bounds is None else np.clip(q, *self.value_bounds)

    def q_values(self, features: np.ndarray) -> np.ndarray:
        return self.member_q_values(features).mean(axis=0)


def check_fit_inputs(data: FQEData, n_actions: int, value_bounds: tuple[float, float] | None) -> None:
    """Refuse an empty fit, a next-policy of the wrong width and inverted value bounds."""
    if len(data.actions) == 0:
        raise InputError("FQE: expected at least one transition to fit on, got none.")
    if value_bounds is not None and not value_bounds[0] < value_bounds[1]:
        raise InputError(f"FQE: value_bounds must be (lo, hi) with lo < hi, got {value_bounds}.")
    if data.next_policy.shape != (len(data.actions), n_actions):
        raise InputError(f"FQE: next_policy must be [n, {n_actions}], got {data.next_policy.shape}.")


def fit_fqe(data: FQEData, n_actions: int, gamma: float, horizon: int, config: FQEConfig | None = None,
            value_bounds: tuple[float, float] | None = None) -> FittedQ:
    """Train one Q-model on `data` (all rows). `value_bounds` (lo, hi): bounds on any remaining
    return, used when `config.clip_to_value_bounds`."""
    config = config or FQEConfig()
    if config.schedule == "backward":
        from clinical_mborl.ope.fqe_backward import fit_backward_fqe  # it builds on this module

        return fit_backward_fqe(data, n_actions, gamma, horizon, config, value_bounds)
    if config.function_class == "linear":
        from clinical_mborl.ope.fqe_linear import fit_linear_fqe  # it builds on this module

        return fit_linear_fqe(data, n_actions, gamma, horizon, config, value_bounds)
    return fit_q_model(data, n_actions, n_actions, horizon, config, value_bounds,
                       lambda net, scale, bounds: FQESystem(net, gamma, scale, config, bounds))[0]


def fit_q_model(data: FQEData, n_actions: int, n_outputs: int, horizon: int, config: FQEConfig,
                value_bounds: tuple[float, float] | None,
                make_system: Callable[[QNetwork, float, tuple[float, float] | None], FQESystem],
                head_offsets: Sequence[int] = (0,)) -> list[FittedQ]:
    """Check the inputs, build the seeded M-member network with `n_outputs` heads, train the system
    `make_system(net, reward scale, clamp bounds or None)` and return one Q-model per value head,
    the `n_actions` outputs from each of `head_offsets` (shared by `fit_fqe` and the sensitivity
    bounds of `ope.sensitivity`, which train several bounds in one network)."""
    check_fit_inputs(data, n_actions, value_bounds)
    if config.schedule != "iterative" or config.function_class != "network":
        raise InputError(f"FQE: the {config.schedule} schedule and the {config.function_class} function class "
                         "fit plain FQE only; the sensitivity bounds need schedule 'iterative' and "
                         "function_class 'network'.")
    bounds = value_bounds if config.clip_to_value_bounds else None
    torch.manual_seed(config.seed)
    scale = max(float(np.abs(data.rewards).max()), 1e-8)
    masked = config.prior_where == "off_support"
    if masked and n_outputs != n_actions:
        raise InputError("FQE: prior_where='off_support' masks one value head; the sensitivity bounds' networks "
                         "carry several, so use prior_where='everywhere' with them.")
    if masked:
        for name in ("features", "next_features"):
            tail = getattr(data, name)[:, -n_actions:]
            bad = np.flatnonzero(((tail != 0) & (tail != 1)).any(axis=1))
            if data.features.shape[1] <= n_actions or bad.size:
                raise InputError(f"FQE: prior_where='off_support' reads the last {n_actions} columns of {name} as "
                                 f"the 0/1 support mask (ope.policy_eval appends it); rows {bad[:5].tolist()} are "
                                 "not 0/1.")
    net = QNetwork(data.features.shape[1] - (n_actions if masked else 0), n_outputs, config.hidden_sizes,
                   config.n_members, with_prior=config.prior_spread > 0, prior_mask=masked)
    if config.prior_spread > 0:
        net.prior_gain = prior_gain(net, torch.as_tensor(data.features, dtype=torch.float32),
                                    config.prior_spread, scale)
    system = make_system(net, scale, bounds)
    train_system(system, data, config, horizon)
    net = system.net.eval()
    return [FittedQ(net, scale, bounds, n_actions, offset) for offset in head_offsets]


def train_system(system: FQESystem, data: FQEData, config: FQEConfig, horizon: int) -> None:
    """Run the FQE iterations of `system` on `data` (one Lightning fit, CPU, deterministic)."""
    n_iter = config.n_iterations or horizon + 1
    with lightning_output(quiet=True, level=logging.ERROR, all_warnings=True):
        trainer = pl.Trainer(
            accelerator="cpu", devices=1, max_epochs=-1, max_steps=n_iter * config.iteration_steps(len(data.actions)),
            logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            deterministic=True,
        )
        trainer.fit(system, datamodule=FQEDataModule(
            data, config.batch_size, config.seed, member_weights(data.patient, config.n_members, config.seed)))


def cross_fit_q(
    fit: FQEData,
    eval_features: np.ndarray,
    eval_patient: np.ndarray,
    n_actions: int,
    gamma: float,
    horizon: int,
    config: FQEConfig | None = None,
    value_bounds: tuple[float, float] | None = None,
) -> np.ndarray:
    """Q [M, n_eval, A] for evaluation rows, each from a model that never saw that row's patient
    (M = `config.n_members`; average over axis 0 for the bagged Q); `value_bounds` as in `fit_fqe`."""
    config = config or FQEConfig()

    def fit_model(rows: FQEData) -> list[FittedQ]:
        return [fit_fqe(rows, n_actions, gamma, horizon, config, value_bounds)]
    return cross_fit_models(fit, eval_features, eval_patient, n_actions, config, fit_model)[0]


def cross_fit_models(fit: FQEData, eval_features: np.ndarray, eval_patient: np.ndarray, n_actions: int,
                     config: FQEConfig, fit_models: Callable[[FQEData], list[FittedQ]]) -> list[np.ndarray]:
    """`cross_fit_q` for every Q-model that one training run `fit_models(rows)` returns (e.g. all the
    sensitivity bounds of `ope.sensitivity`): one [M, n_eval, A] array per model, in their order.
    Patients in both `fit` and the evaluation rows are split into `config.n_folds` folds, and each
    fold's rows are valued by models fitted on the other folds."""
    shared = np.intersect1d(np.unique(fit.patient), np.unique(eval_patient))
    if shared.size == 0:
        return [m.member_q_values(eval_features) for m in fit_models(fit)]
    patients = np.union1d(fit.patient, eval_patient)
    fold_of = dict(zip(patients.tolist(),
                       np.random.default_rng(config.seed).permutation(patients.size) % config.n_folds,
                       strict=True))
    fit_fold = np.array([fold_of[p] for p in fit.patient.tolist()])
    eval_fold = np.array([fold_of[p] for p in eval_patient.tolist()])
    out: list[np.ndarray] = []
    for k in range(config.n_folds):
        rows = eval_fold == k
        if rows.any():
            models = fit_models(fit.rows(fit_fold != k))
            if not out:
                out = [np.zeros((config.n_members, len(eval_patient), n_actions)) for _ in models]
            for q, model in zip(out, models, strict=True):
                q[:, rows] = model.member_q_values(eval_features[rows])
    return out
