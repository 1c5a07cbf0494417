"""fit_dynamics: learning, termination head, elites on holdout patients, resume, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from clinical_mborl.cohort import TransitionSet
from clinical_mborl.cohort.toy import make_toy_transitions
from clinical_mborl.dynamics import DynamicsConfig, DynamicsEnsemble, fit_dynamics
from clinical_mborl.dynamics.datamodule import TransitionDataModule
from clinical_mborl.dynamics.system import DynamicsSystem

from .conftest import TINY

LEARN = DynamicsConfig(n_members=3, n_elites=2, hidden_sizes=(32, 32), max_epochs=40, batch_size=64,
                       learning_rate=3e-3, seed=0)


def _true_next_mean(a, space) -> np.ndarray:  # noqa: ANN001 - test helper
    """The toy's linear system (normalised units): 0.9 z, plus 0.3 x (sum of levels) - 0.2 on MAP."""
    levels = space.levels_of(a.actions)
    mean = 0.9 * a.states.astype(np.float64)
    mean[:, 0] += 0.3 * levels.sum(axis=1) - 0.2
    return mean


def test_learns_a_known_linear_system() -> None:
    ts = make_toy_transitions(n_patients=300, seed=0)
    ens = fit_dynamics(ts, LEARN, quiet=True)
    hist = ens.metrics["history"]
    first = np.mean(hist[0]["state_nll"])
    best = min(np.mean(h["state_nll"]) for h in hist)
    assert best < first - 0.3  # holdout NLL of the state change falls (most of it is noise)
    a = ts.split("val", "test").arrays()  # patients the ensemble never saw
    keep = ~a.done
    pred = ens.predict(torch.as_tensor(a.states[keep]), torch.as_tensor(a.actions[keep]),
                       torch.as_tensor(a.step[keep]))
    elites = ens.elites
    mean = pred.next_mean[elites].mean(0).numpy()
    truth = _true_next_mean(a, ts.manifest.action_space)[keep]
    assert np.abs(mean - truth).mean() < 0.12  # close to the conditional mean (noise sd is 0.3)
    naive = np.abs(a.states[keep] - truth).mean()
    assert np.abs(mean - truth).mean() < 0.6 * naive
    spread = float(pred.next_std[elites].median())
    assert 0.2 < spread < 0.45  # the true noise sd is 0.3
    assert ens.metrics["holdout"]["horizon_rmse"][0]["rmse"] < 0.4


def _rule_terminations(ts: TransitionSet) -> TransitionSet:
    """done iff MAP > 80 (death if also lactate > 2.5): a rule the termination head can learn."""
    f = ts.frame
    done = pl.col("map_mmhg") > 80.0
    return TransitionSet(f.with_columns(
        done.alias("done"),
        (done & (pl.col("lactate_mmol_l") > 2.5)).alias("died"),
        (pl.col("truncated") & ~done).alias("truncated"),
    ), ts.manifest)


def test_termination_head_learns() -> None:
    ts = _rule_terminations(make_toy_transitions(n_patients=200, seed=3))
    cfg = LEARN.model_copy(update={"max_epochs": 60, "termination_weight": 3.0})
    term = fit_dynamics(ts, cfg, quiet=True).metrics["holdout"]["termination"]
    majority = max(term["class_counts"]) / sum(term["class_counts"])
    assert term["accuracy"] > max(0.85, majority + 0.1)
    assert term["auroc_death"] > 0.9 and term["auroc_discharge"] > 0.9


def test_elites_chosen_on_holdout_patients_only(toy: TransitionSet, ensemble: DynamicsEnsemble) -> None:
    dm = TransitionDataModule(toy, TINY)
    dm.setup()
    system = DynamicsSystem(TINY, dm.in_dim, dm.state_dim, dm.scaling)
    system.network.load_state_dict(ensemble.network.state_dict())
    with torch.no_grad():
        on_holdout, _ = system.member_losses(dm.holdout_set[torch.arange(len(dm.holdout_set))])
        on_train, _ = system.member_losses(dm.train_set[torch.arange(len(dm.train_set))])
    torch.testing.assert_close(torch.tensor(ensemble.metrics["holdout_member_loss"]), on_holdout)
    assert not torch.allclose(on_holdout, on_train)
    assert ensemble.elites == torch.argsort(on_holdout)[: TINY.n_elites].tolist()
    assert ensemble.metrics["n_rows"]["holdout"] == dm.holdout_rows.size
    assert not set(dm.patient[dm.holdout_rows]) & set(dm.patient[dm.train_rows])


def test_same_seed_same_result(toy: TransitionSet, ensemble: DynamicsEnsemble) -> None:
    again = fit_dynamics(toy, TINY, quiet=True)
    for name, t in ensemble.network.state_dict().items():
        assert torch.equal(t, again.network.state_dict()[name]), name
    assert again.elites == ensemble.elites
    other = fit_dynamics(toy, TINY.model_copy(update={"seed": 12}), quiet=True)
    assert not torch.equal(other.network.head.weight, ensemble.network.head.weight)


def test_checkpoint_resume_equals_uninterrupted(toy: TransitionSet, tmp_path: Path) -> None:
    cfg4 = TINY.model_copy(update={"max_epochs": 4})
    straight = fit_dynamics(toy, cfg4, checkpoint_dir=tmp_path / "a", quiet=True)
    fit_dynamics(toy, TINY.model_copy(update={"max_epochs": 2}), checkpoint_dir=tmp_path / "b", quiet=True)
    assert (tmp_path / "b" / "last.ckpt").is_file() and (tmp_path / "b" / "best.ckpt").is_file()
    resumed = fit_dynamics(toy, cfg4, checkpoint_dir=tmp_path / "b", resume_from=tmp_path / "b" / "last.ckpt",
                           quiet=True)
    assert resumed.metrics["epochs_trained"] == straight.metrics["epochs_trained"] == 4
    assert [h["holdout_loss"] for h in resumed.metrics["history"]] == [
        h["holdout_loss"] for h in straight.metrics["history"]]
    last_a = torch.load(tmp_path / "a" / "last.ckpt", weights_only=True)["state_dict"]
    last_b = torch.load(tmp_path / "b" / "last.ckpt", weights_only=True)["state_dict"]
    for name, t in last_a.items():
        assert torch.equal(t, last_b[name]), name
    for name, t in straight.network.state_dict().items():
        assert torch.equal(t, resumed.network.state_dict()[name]), name


def test_missing_checkpoint_refused(toy: TransitionSet, tmp_path: Path) -> None:
    from clinical_mborl.core.errors import InputError

    with pytest.raises(InputError, match="not found"):
        fit_dynamics(toy, TINY, resume_from=tmp_path / "nope.ckpt", quiet=True)


def test_quality_metrics_reported(ensemble: DynamicsEnsemble) -> None:
    m = ensemble.metrics
    hold = m["holdout"]
    assert set(hold["per_feature"]) == set(ensemble.feature_names)
    for scores in hold["per_feature"].values():
        assert scores["rmse"] > 0 and 0 <= scores["coverage_50"] <= scores["coverage_90"] <= 1
    horizons = hold["horizon_rmse"]
    assert [h["h"] for h in horizons] == list(range(1, len(horizons) + 1)) and len(horizons) <= TINY.max_horizon
    assert all(h["n"] >= horizons[i + 1]["n"] for i, h in enumerate(horizons[:-1]))
    assert 0 <= hold["termination"]["accuracy"] <= 1
    assert len(m["holdout_member_loss"]) == TINY.n_members and len(m["history"]) == TINY.max_epochs


def test_continuous_cohort_fits(toy_continuous: TransitionSet) -> None:
    ens = fit_dynamics(toy_continuous, TINY.model_copy(update={"max_epochs": 2}), quiet=True)
    a = toy_continuous.split("train").arrays()
    out = ens.step(torch.as_tensor(a.states), torch.as_tensor(a.doses, dtype=torch.float32),
                   torch.as_tensor(a.step), torch.Generator().manual_seed(0))
    assert out.next_states.shape == a.states.shape and torch.isfinite(out.rewards).all()


def test_intermediate_reward_is_learned_when_it_varies() -> None:
    ts = make_toy_transitions(n_patients=200, seed=4)
    shaped = (pl.col("next_map_mmhg") - 75.0) / 12.0 * 0.1  # a reward on the next MAP
    ts = TransitionSet(ts.frame.with_columns(shaped.alias("reward_intermediate"),
                                             (pl.col("reward") + shaped).alias("reward")), ts.manifest)
    ens = fit_dynamics(ts, LEARN, quiet=True)
    assert ens.scaling.reward_modelled
    reward = ens.metrics["holdout"]["reward"]
    target_sd = float(ts.split("train").arrays().reward_intermediate.std())
    assert reward["rmse"] < 0.6 * target_sd
    # constant intermediate rewards (the plain toy) are not modelled: predicted exactly, zero spread
    flat = fit_dynamics(make_toy_transitions(n_patients=40, seed=4), TINY, quiet=True)
    a = make_toy_transitions(n_patients=40, seed=4).split("train").arrays()
    pred = flat.predict(torch.as_tensor(a.states), torch.as_tensor(a.actions), torch.as_tensor(a.step))
    assert not flat.scaling.reward_modelled
    assert torch.all(pred.reward_mean == 0) and torch.all(pred.reward_std == 0)
