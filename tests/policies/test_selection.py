"""Offline selection by a pessimistic model-based value on held-out patients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clinical_mborl.core.errors import InputError
from clinical_mborl.policies import (
    GRIDS,
    MopoConfig,
    RandomPolicy,
    SelectionConfig,
    default_config,
    grid_configs,
    model_based_value,
    select_policy,
)
from clinical_mborl.policies.rollouts import excess_uncertainty, reference_uncertainty

from .conftest import FAST, Cohort


def test_value_is_reproducible_and_pessimism_lowers_it(cohort: Cohort) -> None:
    ts, dyn = cohort.transitions, cohort.dynamics
    policy = RandomPolicy(ts.feature_names, ts.manifest.action_space)
    first = model_based_value(policy, ts, dyn, SelectionConfig(uncertainty_penalty=0.0))
    again = model_based_value(policy, ts, dyn, SelectionConfig(uncertainty_penalty=0.0))
    assert first == again
    assert first.n_stays == ts.split("val").frame["stay_id"].n_unique()
    assert first.score == pytest.approx(first.mean - first.se)
    assert first.trusted == 1.0
    harsher = model_based_value(policy, ts, dyn, SelectionConfig(uncertainty_penalty=1.0))
    assert harsher.mean_excess > 0 and harsher.trusted < 1.0  # random doses leave the data
    assert harsher.mean < first.mean
    assert harsher.mean >= -1.0 - 1e-9  # never below the worst return (death)


def test_uncertainty_on_the_data_costs_nothing(discrete_cohort: Cohort) -> None:
    c = discrete_cohort
    train = c.transitions.split("train")
    reference = reference_uncertainty(c.dynamics, train)
    assert reference > 0
    u = torch.tensor([0.5 * reference, reference, 3.0 * reference])
    torch.testing.assert_close(excess_uncertainty(u, reference), torch.tensor([0.0, 0.0, 2.0]))


def test_clinician_value_lies_within_the_window_bounds(discrete_cohort: Cohort) -> None:
    c = discrete_cohort
    value = model_based_value(c.behavior, c.transitions, c.dynamics, SelectionConfig(uncertainty_penalty=0.0))
    assert np.isfinite(value.mean) and value.se >= 0


def test_grids_cover_the_published_settings() -> None:
    assert {p["beta"] for p in GRIDS["combo"]} == {0.5, 1.0, 5.0}
    assert {p["horizon"] for p in GRIDS["combo"]} == {1, 5}
    configs = [c for c in grid_configs("mopo", default_config("mopo")) if isinstance(c, MopoConfig)]
    assert len(configs) == 4
    assert [(c.lam, c.horizon) for c in configs] == [(0.5, 1), (0.5, 5), (2.0, 1), (2.0, 5)]
    assert all(c.real_fraction == 0.05 for c in configs)
    with pytest.raises(InputError, match="unknown algorithm"):
        grid_configs("dqn", default_config("bc"))
    with pytest.raises(InputError, match="unknown setting"):
        default_config("combo", betta=1.0)


def test_selection_keeps_the_best_scoring_candidate(discrete_cohort: Cohort) -> None:
    c = discrete_cohort
    base = default_config("cql", n_updates=15, **FAST)
    grid = ({"alpha": 0.5}, {"alpha": 5.0})
    chosen = select_policy("cql", c.transitions, c.behavior, c.dynamics, base, grid, SelectionConfig(n_repeats=2))
    scores = [row["score"] for row in chosen.table]
    assert len(scores) == 2 and chosen.best_index == int(np.argmax(scores))
    assert chosen.table[chosen.best_index]["settings"] == grid[chosen.best_index]
    assert chosen.policy.config["alpha"] == grid[chosen.best_index]["alpha"]
    assert chosen.policy.config["selection"]["best_index"] == chosen.best_index


def test_selection_needs_the_ensemble(discrete_cohort: Cohort) -> None:
    with pytest.raises(InputError, match="dynamics"):
        select_policy("bc", discrete_cohort.transitions, discrete_cohort.behavior, None)


def test_a_custom_scorer_replaces_the_model_value(discrete_cohort: Cohort) -> None:
    c = discrete_cohort
    base = default_config("bc", n_updates=3, **FAST)
    grid = ({"lr": 1e-3}, {"lr": 1e-2})
    scores = iter([0.2, 0.7])
    chosen = select_policy("bc", c.transitions, c.behavior, None, base, grid,
                           scorer=lambda policy: {"score": next(scores), "ess": 10.0}, criterion="wdr_lower_bound")
    assert chosen.best_index == 1 and chosen.policy.config["lr"] == 1e-2
    assert chosen.policy.config["selection"]["criterion"] == "wdr_lower_bound"
    assert chosen.table[0] == {"index": 0, "settings": {"lr": 1e-3}, "score": 0.2, "ess": 10.0}
