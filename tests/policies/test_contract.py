"""One contract suite for every learner x action kind (ARCHITECTURE.md "Tests")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from clinical_mborl.core.errors import ArtifactError, InputError
from clinical_mborl.core.policy import ContinuousPolicy, Policy
from clinical_mborl.policies import LearnedPolicy, default_config, train_policy
from clinical_mborl.policies.config import LearnerConfig
from clinical_mborl.policies.constraints import ClinicianPrior, support_mask
from clinical_mborl.policies.train import MODEL_BASED

from .conftest import FAST, FAST_MODEL, Cohort

CASES = [(algo, kind) for algo in ("bc", "cql", "mopo", "morel", "combo")
         for kind in ("discrete", "continuous") if not (algo == "cql" and kind == "continuous")]
_CACHE: dict[tuple[str, str, int], LearnedPolicy] = {}


def _config(algo: str, seed: int = 0, **extra: object) -> LearnerConfig:
    fast = {**(FAST_MODEL if algo in MODEL_BASED else FAST), **extra}
    return default_config(algo, n_updates=25, seed=seed, **fast)


def _trained(algo: str, c: Cohort, seed: int = 0) -> LearnedPolicy:
    key = (algo, c.kind, seed)
    if key not in _CACHE:
        _CACHE[key] = train_policy(algo, c.transitions, c.behavior, c.dynamics, _config(algo, seed))
    return _CACHE[key]


@pytest.fixture
def case(request: pytest.FixtureRequest, discrete_cohort: Cohort, continuous_cohort: Cohort) -> tuple[str, Cohort]:
    algo, kind = request.param
    return algo, discrete_cohort if kind == "discrete" else continuous_cohort


def _outputs(policy: LearnedPolicy, c: Cohort) -> np.ndarray:
    x = c.raw_states()
    if policy.action_kind == "discrete":
        return policy.action_probabilities(x)
    doses = policy.sample_actions(x, np.random.default_rng(1))
    return np.concatenate([policy.mean_doses(x), doses, policy.log_density(x, doses)[:, None]], axis=1)


@pytest.mark.parametrize("case", CASES, indirect=True, ids=[f"{a}-{k}" for a, k in CASES])
class TestEveryLearner:
    def test_speaks_the_policy_protocol(self, case: tuple[str, Cohort]) -> None:
        algo, c = case
        policy = _trained(algo, c)
        assert isinstance(policy, Policy)
        assert policy.feature_names == c.transitions.feature_names
        assert policy.action_kind == c.kind
        assert policy.algo == algo and len(policy.history) > 0
        if c.kind == "continuous":
            assert isinstance(policy, ContinuousPolicy)
            with pytest.raises(TypeError):
                policy.action_probabilities(c.raw_states())

    def test_probabilities_sum_to_one_inside_the_support_mask(self, case: tuple[str, Cohort]) -> None:
        algo, c = case
        policy = _trained(algo, c)
        x = c.raw_states()
        if c.kind == "continuous":
            doses = policy.sample_actions(x, np.random.default_rng(0))
            dose_max = np.array([d.dose_max for d in c.transitions.manifest.action_space.dimensions])
            assert ((doses >= 0) & (doses <= dose_max + 1e-6)).all()
            assert np.isfinite(policy.log_density(x, doses)).all()
            return
        p = policy.action_probabilities(x)
        assert p.shape == (x.shape[0], c.transitions.n_actions)
        np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-9)
        assert (p >= 0).all()
        prior = ClinicianPrior(c.behavior, c.transitions.normalizer, c.transitions.manifest.action_space)
        mask = support_mask(prior.log_proba(torch.as_tensor(c.transitions.normalizer.transform(x))),
                            policy.constraint.support_threshold)
        assert mask is not None and not bool(mask.all()), "toy clinician should rule some actions out"
        assert p[~mask.numpy()].max() == 0.0
        sampled = policy.sample_actions(x, np.random.default_rng(0))
        assert mask.numpy()[np.arange(len(sampled)), sampled].all()

    def test_save_load_gives_identical_outputs(self, case: tuple[str, Cohort], tmp_path: Path) -> None:
        algo, c = case
        policy = _trained(algo, c)
        policy.save(tmp_path / "p")
        loaded = LearnedPolicy.load(tmp_path / "p", behavior=c.behavior)
        np.testing.assert_array_equal(_outputs(policy, c), _outputs(loaded, c))
        assert loaded.cohort_manifest_hash == c.transitions.manifest_hash
        assert loaded.config == policy.config and loaded.history == policy.history

    def test_same_seed_same_policy_other_seed_other_policy(self, case: tuple[str, Cohort]) -> None:
        algo, c = case
        first = _trained(algo, c)
        again = train_policy(algo, c.transitions, c.behavior, c.dynamics, _config(algo, seed=0))
        for (name, a), b in zip(first.network.state_dict().items(), again.network.state_dict().values(), strict=True):
            assert torch.equal(a, b), name
        np.testing.assert_array_equal(_outputs(first, c), _outputs(again, c))
        other = _trained(algo, c, seed=1)
        assert not np.array_equal(_outputs(first, c), _outputs(other, c))

    def test_tampered_weights_are_refused(self, case: tuple[str, Cohort], tmp_path: Path) -> None:
        algo, c = case
        path = _trained(algo, c).save(tmp_path / "p")
        weights = path / "policy.safetensors"
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF
        weights.write_bytes(bytes(data))
        with pytest.raises(ArtifactError, match="sha256 mismatch"):
            LearnedPolicy.load(path, behavior=c.behavior)

    def test_needs_the_clinician_when_the_support_mask_is_on(self, case: tuple[str, Cohort]) -> None:
        algo, c = case
        if algo == "bc" and c.kind == "continuous":  # BC over doses never consults pi_b
            policy = train_policy(algo, c.transitions, None, None, _config(algo))
            assert np.isfinite(policy.mean_doses(c.raw_states())).all()
            return
        with pytest.raises(InputError, match="clinician"):
            train_policy(algo, c.transitions, None, c.dynamics, _config(algo))


@pytest.mark.parametrize("algo", ["mopo", "morel", "combo"])
def test_model_based_learners_need_the_ensemble(algo: str, discrete_cohort: Cohort) -> None:
    c = discrete_cohort
    with pytest.raises(InputError, match="dynamics"):
        train_policy(algo, c.transitions, c.behavior, None, _config(algo))


def test_cql_refuses_continuous_doses(continuous_cohort: Cohort) -> None:
    c = continuous_cohort
    with pytest.raises(InputError, match="discrete CQL"):
        train_policy("cql", c.transitions, c.behavior, None, _config("cql"))


def test_unconstrained_learners_train_without_a_clinician(discrete_cohort: Cohort) -> None:
    c = discrete_cohort
    off = {"support_threshold": 0.0}
    policy = train_policy("combo", c.transitions, None, c.dynamics, _config("combo", constraint=off))
    p = policy.action_probabilities(c.raw_states())
    assert (p > 0).all()  # nothing is masked
