"""TransitionDataModule and input encoding: patient holdout, labels, dose features, batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clinical_mborl.cohort import TransitionSet
from clinical_mborl.core.errors import InputError
from clinical_mborl.dynamics import DynamicsConfig
from clinical_mborl.dynamics.datamodule import (
    DEATH,
    DISCHARGE,
    EpochSeededBatches,
    TransitionDataModule,
    outcome_death_labels,
    termination_labels,
)

from .conftest import TINY


@pytest.fixture(scope="module")
def dm(toy: TransitionSet) -> TransitionDataModule:
    module = TransitionDataModule(toy, TINY)
    module.setup()
    return module


def test_holdout_is_by_patient(dm: TransitionDataModule, toy: TransitionSet) -> None:
    train_p, hold_p = set(dm.patient[dm.train_rows]), set(dm.patient[dm.holdout_rows])
    assert train_p and hold_p and not train_p & hold_p
    assert dm.train_rows.size + dm.holdout_rows.size == len(toy.split("train"))
    assert len(hold_p) == round(TINY.holdout_fraction * (len(hold_p) + len(train_p)))
    holdout_rows_of_patients = np.flatnonzero(np.isin(dm.patient, list(hold_p)))
    assert np.array_equal(holdout_rows_of_patients, dm.holdout_rows)  # every row of a held-out patient


def test_only_fit_splits_are_used(dm: TransitionDataModule, toy: TransitionSet) -> None:
    assert len(dm.arrays) == len(toy.split("train"))
    assert set(dm.fit_set.frame["split"].unique().to_list()) == {"train"}


def test_labels(toy: TransitionSet) -> None:
    a = toy.arrays()
    label = termination_labels(a)
    assert np.array_equal(label == DEATH, a.done & a.died)
    assert np.array_equal(label == DISCHARGE, a.done & ~a.died)
    assert not np.any(label[a.truncated])  # window end is not a termination
    y = outcome_death_labels(a, death_reward=-1.0)
    outcome = a.rewards - a.reward_intermediate
    assert np.array_equal(y.astype(bool), np.isclose(outcome, -1.0))


def test_dose_features_use_level_medians(dm: TransitionDataModule, toy: TransitionSet) -> None:
    s = dm.scaling
    space = toy.manifest.action_space
    joint = torch.arange(space.n_actions)
    medians = torch.as_tensor(space.doses_of(np.arange(space.n_actions)), dtype=torch.float32)
    torch.testing.assert_close(s.dose_features(joint), torch.log1p(medians) / s.dose_scale)
    torch.testing.assert_close(s.dose_features(medians), s.dose_features(joint))
    assert torch.all(s.dose_features(torch.tensor([0])) == 0)  # no treatment -> 0
    x = dm.columns["x"]
    assert x.shape[1] == dm.in_dim
    a = dm.arrays
    torch.testing.assert_close(x[:, -1], torch.as_tensor(a.step / toy.manifest.n_steps, dtype=torch.float32))
    with pytest.raises(InputError, match="doses shaped"):
        s.dose_features(torch.zeros(3, 5))


def test_continuous_rejects_integer_actions(toy_continuous: TransitionSet) -> None:
    dm = TransitionDataModule(toy_continuous, TINY)
    dm.setup()
    with pytest.raises(InputError, match="continuous-dose"):
        dm.scaling.dose_features(torch.tensor([0, 1]))
    doses = torch.as_tensor(dm.arrays.doses[:4], dtype=torch.float32)
    torch.testing.assert_close(dm.scaling.dose_features(doses), torch.log1p(doses) / dm.scaling.dose_scale)


def test_epoch_seeded_batches_cover_rows_and_repeat_per_epoch() -> None:
    sampler = EpochSeededBatches(10, 4, seed=3)
    first = torch.cat(list(sampler))
    assert sorted(first.tolist()) == list(range(10)) and len(sampler) == 3
    sampler.set_epoch(1)
    second = torch.cat(list(sampler))
    assert not torch.equal(first, second)
    sampler.set_epoch(0)
    assert torch.equal(torch.cat(list(sampler)), first)


def test_bootstrap_weights_per_member(dm: TransitionDataModule) -> None:
    batch = dm.train_set[torch.arange(20)]
    assert batch["weight"].shape == (TINY.n_members, 20)
    assert not torch.equal(batch["weight"][0], batch["weight"][1])
    assert set(batch) >= {"x", "target", "state_mask", "term", "outcome", "outcome_mask"}


def test_too_few_patients_refused(toy: TransitionSet) -> None:
    one = TransitionSet(toy.frame.filter(toy.frame["patient_key"] == toy.frame["patient_key"][0]), toy.manifest)
    cfg = DynamicsConfig(n_members=2, n_elites=1, fit_splits=("train", "val", "test"))
    with pytest.raises(InputError, match="fewer than 2 patients"):
        TransitionDataModule(one, cfg).setup()
