"""DynamicsEnsemble: predict/step semantics, disagreement, artifact round trip."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch

from clinical_mborl.cohort import TransitionSet
from clinical_mborl.core.errors import ArtifactError
from clinical_mborl.dynamics import DynamicsEnsemble


def _inputs(ts: TransitionSet, n: int = 40) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    a = ts.split("train").arrays()
    return torch.as_tensor(a.states[:n]), torch.as_tensor(a.actions[:n]), torch.as_tensor(a.step[:n])


def _forced(ens: DynamicsEnsemble, term_class: int, p_death_after: float, reward: float) -> DynamicsEnsemble:
    """A copy whose heads ignore the input: fixed termination class, outcome p, intermediate reward."""
    ens = copy.deepcopy(ens)
    head, width = ens.network.head, ens.network.out_dim
    t0 = 2 * width
    head.weight[:, :, t0:] = 0.0
    head.bias[:, :, t0 : t0 + 3] = -50.0
    head.bias[:, :, t0 + term_class] = 50.0
    head.bias[:, :, -1] = math.log(p_death_after / (1 - p_death_after))
    ens.scaling.reward_mean.fill_(reward)
    ens.scaling.reward_std.fill_(0.0)
    return ens


def test_predict_shapes(ensemble: DynamicsEnsemble, toy: TransitionSet) -> None:
    s, a, k = _inputs(toy)
    p = ensemble.predict(s, a, k)
    m, n, d = ensemble.n_members, s.shape[0], s.shape[1]
    assert p.next_mean.shape == p.next_std.shape == (m, n, d)
    assert p.reward_mean.shape == p.reward_std.shape == p.outcome_death_logit.shape == (m, n)
    assert p.term_logits.shape == (m, n, 3)
    assert torch.all(p.next_std > 0)
    assert ensemble.n_steps == toy.manifest.n_steps and ensemble.gamma == toy.manifest.gamma
    assert ensemble.feature_names == toy.feature_names and ensemble.action_space == toy.manifest.action_space


def test_death_and_discharge_rewards(ensemble: DynamicsEnsemble, toy: TransitionSet) -> None:
    s, a, _ = _inputs(toy)
    steps = torch.zeros(len(s), dtype=torch.int64)
    g = torch.Generator().manual_seed(0)
    dead = _forced(ensemble, 1, 0.5, reward=0.25).step(s, a, steps, g)
    assert dead.done.all() and dead.died.all() and not dead.truncated.any()
    torch.testing.assert_close(dead.rewards, torch.full((len(s),), 0.25 - 1.0))
    home = _forced(ensemble, 2, 0.5, reward=0.25).step(s, a, steps, g)
    assert home.done.all() and not home.died.any()
    torch.testing.assert_close(home.rewards, torch.full((len(s),), 0.25 + 1.0))


def test_window_end_truncates_with_expected_outcome(ensemble: DynamicsEnsemble, toy: TransitionSet) -> None:
    s, a, _ = _inputs(toy)
    ens = _forced(ensemble, 0, 0.2, reward=0.0)
    g = torch.Generator().manual_seed(0)
    last = torch.full((len(s),), ens.n_steps - 1)
    out = ens.step(s, a, last, g)
    assert out.truncated.all() and not out.done.any()
    torch.testing.assert_close(out.rewards, torch.full((len(s),), 0.2 * -1.0 + 0.8 * 1.0))
    mid = ens.step(s, a, last - 2, g)
    assert not mid.truncated.any() and not mid.done.any()
    torch.testing.assert_close(mid.rewards, torch.zeros(len(s)))


def test_step_uses_elites_and_is_seeded(ensemble: DynamicsEnsemble, toy: TransitionSet) -> None:
    s, a, k = _inputs(toy)
    one = ensemble.step(s, a, k, torch.Generator().manual_seed(3))
    two = ensemble.step(s, a, k, torch.Generator().manual_seed(3))
    for name, t in vars(one).items():
        assert torch.equal(t, getattr(two, name)), name
    assert set(one.member.tolist()) <= set(ensemble.elites)
    other = ensemble.step(s, a, k, torch.Generator().manual_seed(4))
    assert not torch.equal(one.next_states, other.next_states)


def test_disagreement_and_uncertainty(ensemble: DynamicsEnsemble, toy: TransitionSet) -> None:
    s, a, k = _inputs(toy, n=10)
    out = ensemble.step(s, a, k, torch.Generator().manual_seed(0))
    p = ensemble.predict(s, a, k)
    e = ensemble.elites
    for i in range(len(s)):
        pairs = [float((p.next_mean[x, i] - p.next_mean[y, i]).norm()) for x in e for y in e]
        assert math.isclose(float(out.disagreement[i]), max(pairs), rel_tol=1e-4, abs_tol=1e-6)
        norms = [float(p.next_std[x, i].norm()) for x in e]
        assert math.isclose(float(out.uncertainty[i]), max(norms), rel_tol=1e-5)
    full = ensemble.data_disagreement(toy.split("train"))
    s_all, a_all, k_all = _inputs(toy, n=len(toy.split("train")))
    assert math.isclose(full, float(ensemble.step(s_all, a_all, k_all, torch.Generator()).disagreement.max()),
                        rel_tol=1e-6)


def test_dose_features_accept_indices_and_doses(ensemble: DynamicsEnsemble, toy: TransitionSet) -> None:
    joint = torch.tensor([0, 4, 8])
    doses = torch.as_tensor(toy.manifest.action_space.doses_of(joint.numpy()), dtype=torch.float32)
    torch.testing.assert_close(ensemble.dose_features(joint), ensemble.dose_features(doses))
    assert ensemble.dose_features(joint).shape == (3, 2)


def test_save_load_round_trip_is_exact(ensemble: DynamicsEnsemble, toy: TransitionSet, tmp_path: Path) -> None:
    ensemble.save(tmp_path / "dyn")
    back = DynamicsEnsemble.load(tmp_path / "dyn")
    s, a, k = _inputs(toy)
    p, q = ensemble.predict(s, a, k), back.predict(s, a, k)
    for name, t in vars(p).items():
        assert torch.equal(t, getattr(q, name)), name
    x = ensemble.step(s, a, k, torch.Generator().manual_seed(1))
    y = back.step(s, a, k, torch.Generator().manual_seed(1))
    assert torch.equal(x.next_states, y.next_states) and torch.equal(x.rewards, y.rewards)
    assert back.elites == ensemble.elites and back.config == ensemble.config
    assert back.metrics == ensemble.metrics and back.reward == ensemble.reward
    assert back.cohort_manifest_hash == toy.manifest_hash


def test_tampered_weights_refused(ensemble: DynamicsEnsemble, tmp_path: Path) -> None:
    ensemble.save(tmp_path / "dyn")
    w = tmp_path / "dyn" / "weights.safetensors"
    data = bytearray(w.read_bytes())
    data[len(data) // 2] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        DynamicsEnsemble.load(tmp_path / "dyn")
