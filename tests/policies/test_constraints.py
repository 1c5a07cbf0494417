"""The clinician constraint: support mask, KL-regularised soft values, settings validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from clinical_mborl.core.errors import InputError
from clinical_mborl.policies.constraints import (
    ClinicianPrior,
    ConstraintConfig,
    density_penalty,
    kl_to_clinician,
    regularised_logits,
    soft_value,
    support_mask,
)

from .conftest import Cohort

Q = arrays(np.float64, (3, 5), elements=st.floats(-20, 20))
PROBS = arrays(np.float64, (3, 5), elements=st.floats(1e-6, 1.0))


@given(PROBS, st.floats(0.0, 0.5))
@settings(max_examples=50, deadline=None)
def test_the_support_mask_always_keeps_the_clinicians_favourite(p: np.ndarray, threshold: float) -> None:
    log_pb = torch.as_tensor(p / p.sum(1, keepdims=True)).log()
    mask = support_mask(log_pb, threshold)
    if threshold == 0:
        assert mask is None
        return
    assert mask is not None
    assert mask[torch.arange(3), log_pb.argmax(1)].all()
    others = ~torch.nn.functional.one_hot(log_pb.argmax(1), 5).bool()
    assert torch.equal(mask & others, (log_pb >= math.log(threshold)) & others)


@given(Q, PROBS, st.floats(0.01, 2.0), st.floats(0.0, 2.0))
@settings(max_examples=50, deadline=None)
def test_soft_value_is_the_optimum_of_the_regularised_objective(q: np.ndarray, p: np.ndarray,
                                                                  tau: float, w: float) -> None:
    """V = max_pi E_pi[Q] + tau H(pi) - w KL(pi || pi_b), attained by softmax(regularised logits)."""
    qt = torch.as_tensor(q)
    log_pb = torch.as_tensor(p / p.sum(1, keepdims=True)).log()
    mask = support_mask(log_pb, 0.1)
    assert mask is not None
    v = soft_value(qt, log_pb, mask, tau, w)
    log_pi = regularised_logits(qt, log_pb, mask, tau, w).log_softmax(-1)
    pi = log_pi.exp()
    objective = (pi * qt).sum(-1) - tau * (pi * log_pi).sum(-1) - w * kl_to_clinician(log_pi, log_pb)
    torch.testing.assert_close(v, objective, rtol=1e-6, atol=1e-5)
    best_allowed = torch.where(mask, qt + w * log_pb, torch.full_like(qt, -1e30)).amax(-1)
    assert (v >= best_allowed - 1e-6).all()  # a soft max is at least the hard max


def test_kl_is_zero_at_the_clinician() -> None:
    log_pb = torch.tensor([[0.2, 0.3, 0.5]]).log()
    assert kl_to_clinician(log_pb, log_pb).abs().item() < 1e-7
    assert kl_to_clinician(torch.tensor([[1.0, 1e-9, 1e-9]]).log(), log_pb).item() > 1.0


def test_density_penalty_is_a_hinge_below_the_threshold() -> None:
    config = ConstraintConfig(support_threshold=0.1, support_penalty=2.0)
    log_d = torch.tensor([math.log(0.5), math.log(0.1), math.log(0.01)])
    torch.testing.assert_close(density_penalty(log_d, config), torch.tensor([0.0, 0.0, 2.0 * math.log(10.0)]))
    assert not density_penalty(log_d, ConstraintConfig(support_threshold=0.0)).any()


@pytest.mark.parametrize("kind, settings_, message", [
    ("discrete", {"kl_weight": -1.0}, r"\['kl_weight'\] must be >= 0"),
    ("discrete", {"support_threshold": 1.0}, r"support_threshold is a probability in \[0, 1\)"),
    ("continuous", {"kl_weight": 0.5}, r"kl_weight applies to discrete dose levels"),
])
def test_impossible_settings_are_input_errors(kind: str, settings_: dict[str, float], message: str) -> None:
    with pytest.raises(InputError, match=message):
        ConstraintConfig(**settings_).validate(kind, behavior=object())  # type: ignore[arg-type]


def test_missing_clinician_is_an_input_error_unless_the_constraint_is_off() -> None:
    with pytest.raises(InputError, match="needs the clinician policy"):
        ConstraintConfig().validate("discrete", behavior=None)
    ConstraintConfig(support_threshold=0.0, bc_weight=1.0).validate("discrete", behavior=None)
    ConstraintConfig(support_threshold=0.0).validate("continuous", behavior=None)


def test_dataset_rows_get_out_of_fold_probabilities(discrete_cohort: Cohort) -> None:
    c = discrete_cohort
    prior = ClinicianPrior(c.behavior, c.transitions.normalizer, c.transitions.manifest.action_space)
    oof = prior.dataset_log_proba(c.transitions, "train").exp().numpy()
    np.testing.assert_allclose(oof, c.behavior.out_of_fold_proba_for(c.transitions), rtol=1e-5, atol=1e-7)
    val = prior.dataset_log_proba(c.transitions, "val")  # not fitted on: predictions
    states = torch.as_tensor(c.transitions.split("val").arrays().states)
    torch.testing.assert_close(val, prior.log_proba(states))


def test_continuous_likelihood_is_relative_to_the_dose_box(continuous_cohort: Cohort) -> None:
    c = continuous_cohort
    space = c.transitions.manifest.action_space
    prior = ClinicianPrior(c.behavior, c.transitions.normalizer, space)
    a = c.transitions.split("train").arrays()
    states, doses = torch.as_tensor(a.states[:20]), torch.as_tensor(a.doses[:20])
    raw = c.behavior.log_density(c.transitions.normalizer.inverse(a.states[:20]), a.doses[:20])
    box = (a.doses[:20] > 0) @ np.log([d.dose_max for d in space.dimensions])
    np.testing.assert_allclose(prior.log_density_scaled(states, doses).numpy(), raw + box, rtol=1e-4, atol=1e-4)
