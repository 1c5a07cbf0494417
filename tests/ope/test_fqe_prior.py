"""Randomized prior functions in FQE's members: the data cancel the priors where they pin Q down,
and the members keep the priors' disagreement where no row does."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from clinical_mborl.core.errors import InputError
from clinical_mborl.ope.fqe import FQEConfig, fit_fqe
from clinical_mborl.ope.fqe_batches import member_weights
from clinical_mborl.ope.q_network import QNetwork, prior_gain

from .tabular import fqe_data, simulate, tabular_features, tabular_policies
from .test_fqe_members import TABULAR_MEMBERS, _weighted_empirical_q

WITH_PRIOR = TABULAR_MEMBERS.model_copy(update={"prior_spread": 1.0})


def _without_cell(state: int, action: int):
    """The tabular problem's transitions minus every row that gives `action` in `state`."""
    mdp, pi_b, pi_e = tabular_policies(3.0)
    ep = simulate(mdp, pi_b, 600, np.random.default_rng(0))
    data = fqe_data(mdp, ep, pi_e)
    rows_state = data.features.reshape(len(data.actions), mdp.horizon, mdp.n_states).sum(axis=1).argmax(axis=1)
    return mdp, ep, pi_e, data.rows(~((rows_state == state) & (data.actions == action)))


def test_the_prior_leaves_the_trainable_initialisation_alone_and_is_never_trained():
    torch.manual_seed(0)
    plain = QNetwork(4, 3, (8,), n_members=2)
    torch.manual_seed(0)
    primed = QNetwork(4, 3, (8,), n_members=2, with_prior=True)
    for a, b in zip(plain.parameters(), primed.parameters(), strict=True):
        assert torch.equal(a, b)
    x = torch.randn(20, 4)
    assert torch.equal(plain(x), primed(x))  # gain 0 until set
    primed.prior_gain = prior_gain(primed, x, spread=0.3, scale=2.0)
    assert torch.allclose(primed(x), plain(x) + primed.prior_gain * primed.prior(x))
    assert all(not p.requires_grad for p in primed.buffers())
    with pytest.raises(ValueError, match="with_prior"):
        plain.prior_gain = 1.0


def test_members_with_priors_still_reach_their_own_fixed_point_where_there_are_rows():
    mdp, pi_b, pi_e = tabular_policies(3.0)
    ep = simulate(mdp, pi_b, 600, np.random.default_rng(0))
    data = fqe_data(mdp, ep, pi_e)
    model = fit_fqe(data, mdp.n_actions, mdp.gamma, mdp.horizon, WITH_PRIOR)
    feats = tabular_features(mdp).reshape(-1, mdp.horizon * mdp.n_states)
    q = model.member_q_values(feats).reshape(3, mdp.horizon, mdp.n_states, mdp.n_actions)
    per_episode = np.zeros((3, ep.mask.shape[0]))
    per_episode[:, data.patient] = member_weights(data.patient, 3, WITH_PRIOR.seed).T
    for m in range(3):
        q_emp, seen = _weighted_empirical_q(mdp, ep, pi_e, per_episode[m])
        assert np.abs(q[m] - q_emp)[seen > 0].max() < 0.02


def test_members_keep_the_priors_spread_at_a_dose_never_given_in_a_state():
    mdp, _, _, data = _without_cell(state=0, action=1)
    feats = tabular_features(mdp).reshape(-1, mdp.horizon * mdp.n_states)
    seen = np.zeros((mdp.horizon * mdp.n_states, mdp.n_actions), bool)
    seen[data.features.argmax(axis=1), data.actions] = True
    unseen = np.zeros_like(seen)
    unseen[np.arange(mdp.horizon) * mdp.n_states, 1] = True  # state 0, dose 1, at every step
    assert not (seen & unseen).any() and (~seen & ~unseen).sum() == 0  # every other cell has rows
    spread = {}
    for name, config in (("plain", TABULAR_MEMBERS), ("prior", WITH_PRIOR)):
        sd = fit_fqe(data, mdp.n_actions, mdp.gamma, mdp.horizon, config).member_q_values(feats).std(axis=0)
        spread[name] = (sd[unseen].mean(), sd[seen].mean())
    (plain_unseen, plain_seen), (prior_unseen, prior_seen) = spread["plain"], spread["prior"]
    # where rows pin Q down the priors are cancelled, up to what the unseen cell passes back through the
    # evaluation policy's targets
    assert prior_seen < plain_seen + 0.03
    assert prior_unseen > 2 * plain_unseen and prior_unseen > 3 * prior_seen


def test_prior_fits_are_deterministic():
    mdp, _, _, data = _without_cell(state=1, action=0)
    feats = tabular_features(mdp).reshape(-1, mdp.horizon * mdp.n_states)
    a, b = (fit_fqe(data, mdp.n_actions, mdp.gamma, mdp.horizon, WITH_PRIOR).member_q_values(feats)
            for _ in range(2))
    assert np.array_equal(a, b)


@pytest.mark.parametrize("update", [{"n_members": 1}, {"schedule": "backward"},
                                    {"function_class": "linear", "hidden_sizes": ()}])
def test_a_prior_needs_members_of_the_iterative_network(update):
    with pytest.raises(ValueError, match="prior_spread"):
        FQEConfig(prior_spread=0.1, **update)


def _with_mask(data, mdp, off: np.ndarray):
    """`data` with the off-support mask [H*S, A] of each row's (t, s) and next (t, s) appended."""
    cell, nxt = data.features.argmax(axis=1), data.next_features.argmax(axis=1)
    live = data.next_features.any(axis=1)
    next_off = np.where(live[:, None], off[nxt], 0.0)
    return dataclasses.replace(data, features=np.c_[data.features, off[cell]].astype(np.float32),
                               next_features=np.c_[data.next_features, next_off].astype(np.float32))


def test_a_masked_prior_applies_only_where_the_mask_says():
    torch.manual_seed(0)
    net = QNetwork(4, 3, (8,), n_members=2, with_prior=True, prior_mask=True)
    x, mask = torch.randn(20, 4), (torch.rand(20, 3) < 0.5).float()
    net.prior_gain = 1.0
    inputs = torch.cat([x, mask], dim=1)
    plain = net(torch.cat([x, torch.zeros_like(mask)], dim=1))
    assert torch.allclose(net(inputs), plain + net.prior(inputs) * mask)
    with pytest.raises(ValueError, match="with_prior"):
        QNetwork(4, 3, (8,), prior_mask=True)


def test_an_off_support_prior_leaves_the_fit_alone_where_the_mask_is_empty_and_spreads_where_it_is_not():
    mdp, _, _, data = _without_cell(state=0, action=1)
    cells = mdp.horizon * mdp.n_states
    feats = tabular_features(mdp).reshape(-1, cells)
    masked = WITH_PRIOR.model_copy(update={"prior_where": "off_support"})
    empty = np.zeros((cells, mdp.n_actions), np.float32)
    plain = fit_fqe(data, mdp.n_actions, mdp.gamma, mdp.horizon, TABULAR_MEMBERS).member_q_values(feats)
    nothing_off = fit_fqe(_with_mask(data, mdp, empty), mdp.n_actions, mdp.gamma, mdp.horizon,
                          masked).member_q_values(np.c_[feats, empty])
    np.testing.assert_allclose(nothing_off, plain, atol=1e-6)  # no cancelling to do: the plain fit
    off = empty.copy()
    off[np.arange(mdp.horizon) * mdp.n_states, 1] = 1.0  # state 0, dose 1: never given
    sd = fit_fqe(_with_mask(data, mdp, off), mdp.n_actions, mdp.gamma, mdp.horizon,
                 masked).member_q_values(np.c_[feats, off]).std(axis=0)
    plain_sd = plain.std(axis=0)
    seen = off == 0
    assert sd[~seen].mean() > 3 * plain_sd[~seen].mean()
    assert sd[seen].mean() < plain_sd[seen].mean() + 0.03


def test_off_support_needs_a_prior_and_the_mask_columns():
    with pytest.raises(ValueError, match="prior_spread > 0"):
        FQEConfig(prior_where="off_support")
    mdp, _, _, data = _without_cell(state=0, action=1)
    masked = WITH_PRIOR.model_copy(update={"prior_where": "off_support"})
    with pytest.raises(InputError, match="0/1 support mask"):  # plain one-hot features carry no mask
        fit_fqe(dataclasses.replace(data, features=data.features * 0.5), mdp.n_actions, mdp.gamma, mdp.horizon,
                masked)
