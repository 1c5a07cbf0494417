"""`fit_dynamics`: train the ensemble with Lightning, pick elites on holdout patients, score it.

>>> from clinical_mborl.cohort.toy import make_toy_transitions
>>> cfg = DynamicsConfig(n_members=3, n_elites=2, hidden_sizes=(8,), max_epochs=2)
>>> ens = fit_dynamics(make_toy_transitions(30, seed=0), cfg, quiet=True)
>>> len(ens.elites)
2
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from clinical_mborl.cohort import TransitionSet
from clinical_mborl.core.errors import InputError
from clinical_mborl.core.lightning_logs import lightning_output
from clinical_mborl.core.seeding import seed_everything
from clinical_mborl.dynamics.config import DynamicsConfig
from clinical_mborl.dynamics.datamodule import TransitionDataModule
from clinical_mborl.dynamics.ensemble import DynamicsEnsemble, RewardInfo
from clinical_mborl.dynamics.history import HistoryRule, history_columns
from clinical_mborl.dynamics.metrics import evaluate_holdout
from clinical_mborl.dynamics.system import DynamicsSystem, RelativeEarlyStopping


def holdout_member_losses(system: DynamicsSystem, dm: TransitionDataModule) -> torch.Tensor:
    """Per-member holdout loss [M] of the system's current weights (the validation formula)."""
    system.eval()
    sums: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for idx in dm.val_dataloader().sampler:
            batch = {k: v.to(system.device) for k, v in dm.holdout_set[idx].items()}
            for name, part in system.holdout_sums(batch).items():
                sums[name] = sums[name] + part if name in sums else part
    return system.combine(sums)[0].cpu()


def fit_dynamics(
    transitions: TransitionSet,
    config: DynamicsConfig | None = None,
    *,
    checkpoint_dir: str | Path | None = None,
    resume_from: str | Path | None = None,
    quiet: bool = False,
) -> DynamicsEnsemble:
    """Train on `config.fit_splits` (patient holdout inside them) and return the fitted ensemble.

    Checkpoints (`best.ckpt`, `last.ckpt`) go to `checkpoint_dir` (a temporary folder, removed
    afterwards, when None); `resume_from` continues an interrupted run from a checkpoint.
    No logger files are written. Trains on the GPU when one is present (`accelerator="auto"`);
    the returned ensemble is on the CPU (`.to(device)` moves it).
    """
    config = config or DynamicsConfig()
    if resume_from is not None and not Path(resume_from).is_file():
        raise InputError(f"dynamics: checkpoint {resume_from} not found; pass a .ckpt written by a previous run.")
    seed_everything(config.seed)
    dm = TransitionDataModule(transitions, config)
    dm.setup()
    torch.manual_seed(config.seed)
    system = DynamicsSystem(config, dm.in_dim, dm.state_dim, dm.scaling)
    with contextlib.ExitStack() as stack:
        stack.enter_context(lightning_output(quiet))
        if checkpoint_dir is None:
            checkpoint_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="dynamics-ckpt-"))
        ckpt = ModelCheckpoint(dirpath=str(checkpoint_dir), filename="best", monitor="holdout_loss",
                               mode="min", save_top_k=1, save_last=True, enable_version_counter=False)
        trainer = pl.Trainer(
            accelerator="auto", devices=1, deterministic=True, max_epochs=config.max_epochs,
            logger=False, callbacks=[RelativeEarlyStopping("holdout_loss", config.min_relative_improvement,
                                                           config.patience), ckpt],
            enable_progress_bar=not quiet, enable_model_summary=False, num_sanity_val_steps=0,
            default_root_dir=str(checkpoint_dir),
        )
        trainer.fit(system, datamodule=dm, ckpt_path=str(resume_from) if resume_from else None)
        if ckpt.best_model_path:
            state = torch.load(ckpt.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
            system.load_state_dict(state)
    system = system.cpu()
    member_loss = holdout_member_losses(system, dm)
    elites = [int(i) for i in torch.argsort(member_loss, stable=True)[: config.n_elites]]
    spec = transitions.manifest.spec.reward
    ens = DynamicsEnsemble(
        config=config, network=system.network, scaling=system.scaling,
        state_features=list(transitions.manifest.state_features), action_space=transitions.manifest.action_space,
        elites=elites, gamma=transitions.manifest.gamma,
        reward=RewardInfo(spec.death_reward, spec.survival_reward, spec.outcome_on_truncation),
        cohort_manifest_hash=transitions.manifest_hash,
        history=HistoryRule(history_columns(transitions.manifest), transitions.manifest.state_features)
        if config.exact_treatment_history else None,
    )
    ens.metrics = {
        "holdout": evaluate_holdout(ens, dm.arrays, dm.holdout_rows, spec.death_reward),
        "holdout_member_loss": member_loss.tolist(),
        "elites": elites,
        "n_patients": {"model_train": int(np.unique(dm.patient[dm.train_rows]).size),
                       "holdout": int(np.unique(dm.patient[dm.holdout_rows]).size)},
        "n_rows": {"model_train": int(dm.train_rows.size), "holdout": int(dm.holdout_rows.size)},
        "epochs_trained": int(trainer.current_epoch),
        "best_epoch_holdout_loss": float(ckpt.best_model_score) if ckpt.best_model_score is not None else None,
        "history": system.history,
        "device": str(trainer.strategy.root_device),
    }
    return ens
