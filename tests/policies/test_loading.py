"""`load_policy`: artifact folders, protocol files and the named reference policies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clinical_mborl.cohort.toy import make_toy_transitions
from clinical_mborl.core.errors import InputError
from clinical_mborl.core.policy import Policy
from clinical_mborl.policies import (
    LearnedPolicy,
    NoTreatmentPolicy,
    RandomPolicy,
    default_config,
    load_policy,
    train_policy,
)

from .conftest import FAST, Cohort


@pytest.fixture(scope="module")
def bc_artifact(tmp_path_factory: pytest.TempPathFactory, discrete_cohort: Cohort) -> Path:
    c = discrete_cohort
    policy = train_policy("bc", c.transitions, c.behavior, None, default_config("bc", n_updates=5, **FAST))
    return policy.save(tmp_path_factory.mktemp("art") / "bc")


def test_named_reference_policies(cohort: Cohort) -> None:
    ts, x = cohort.transitions, cohort.raw_states(5)
    rng = np.random.default_rng(0)
    assert load_policy("clinician", ts, cohort.behavior) is cohort.behavior
    rand, none = load_policy("random", ts), load_policy("no-treatment", ts)
    assert isinstance(rand, RandomPolicy) and isinstance(none, NoTreatmentPolicy)
    assert isinstance(rand, Policy) and isinstance(none, Policy)
    if cohort.kind == "discrete":
        np.testing.assert_allclose(rand.action_probabilities(x).sum(1), 1.0)
        assert (none.sample_actions(x, rng) == 0).all()
    else:
        doses = rand.sample_actions(x, rng)
        assert np.isfinite(rand.log_density(x, doses)).all()
        assert (none.sample_actions(x, rng) == 0).all()
        assert (none.log_density(x, np.zeros((5, 2))) == np.inf).all()


def test_clinician_needs_the_behaviour_policy(discrete_cohort: Cohort) -> None:
    with pytest.raises(InputError, match="--behavior"):
        load_policy("clinician", discrete_cohort.transitions)


def test_artifact_folders_load_as_learned_policies(bc_artifact: Path, discrete_cohort: Cohort) -> None:
    policy = load_policy(str(bc_artifact), discrete_cohort.transitions, discrete_cohort.behavior)
    assert isinstance(policy, LearnedPolicy) and policy.algo == "bc"


def test_a_masked_policy_cannot_act_without_the_clinician(bc_artifact: Path, discrete_cohort: Cohort) -> None:
    with pytest.raises(InputError, match="needs the clinician policy to act"):
        load_policy(str(bc_artifact), discrete_cohort.transitions)


def test_artifacts_from_another_cohort_are_refused(bc_artifact: Path, discrete_cohort: Cohort) -> None:
    other = make_toy_transitions(30, seed=5)
    with pytest.raises(InputError, match="another cohort build"):
        load_policy(str(bc_artifact), other, discrete_cohort.behavior)
    assert isinstance(load_policy(str(bc_artifact), other, discrete_cohort.behavior, same_cohort=False), LearnedPolicy)
    with pytest.raises(InputError, match="action space differs"):
        load_policy(str(bc_artifact), make_toy_transitions(30, seed=0, n_levels=4), discrete_cohort.behavior)


def test_protocol_files_load(tmp_path: Path, discrete_cohort: Cohort) -> None:
    path = tmp_path / "p.yml"
    path.write_text("name: pressor\nrules: [{when: {map_mmhg: {lt: 65}}, then: {norepinephrine_ug_kg_min: 1}}]\n")
    policy = load_policy(str(path), discrete_cohort.transitions)
    assert policy.name == "pressor"


def test_unknown_specs_say_what_is_accepted(tmp_path: Path, discrete_cohort: Cohort) -> None:
    for spec in ("clinican", str(tmp_path), str(tmp_path / "missing.yaml")):
        with pytest.raises(InputError, match="expected a policy artifact folder"):
            load_policy(spec, discrete_cohort.transitions)
