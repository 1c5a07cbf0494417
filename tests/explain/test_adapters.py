import numpy as np
import pytest
import torch

from clinical_mborl.cohort.toy import make_toy_transitions
from clinical_mborl.core.errors import InputError
from clinical_mborl.explain.adapters import explain_learned_policy, learned_policy_target
from clinical_mborl.explain.explanation import ExplainConfig
from clinical_mborl.policies.constraints import ConstraintConfig
from clinical_mborl.policies.learned import LearnedPolicy
from clinical_mborl.policies.networks import CategoricalActor, DiscreteQ, TanhGaussianActor

CFG = ExplainConfig(max_rows=24, shapley_samples=30, sanity_rows=12, gradient_shap_samples=4, sanity_repeats=2)


def _policy(ts, head, network):
    torch.manual_seed(0)
    return LearnedPolicy(name="t", algo="t", head=head, network=network, network_spec={}, normalizer=ts.normalizer,
                         feature_names=ts.feature_names, action_space=ts.manifest.action_space,
                         constraint=ConstraintConfig(support_threshold=0.0))


@pytest.mark.parametrize("head,net", [("q", DiscreteQ), ("logits", CategoricalActor)])
def test_discrete_policy_contrast_is_recommended_minus_clinician(head, net):
    ts = make_toy_transitions(40, seed=0)
    torch.manual_seed(0)
    policy = _policy(ts, head, net(4, ts.n_actions, [16, 16]))
    test = ts.split("test").arrays(normalised=False)
    target, label = learned_policy_target(policy, test.states.astype(np.float64), test.actions)
    assert label.startswith("Q(" if head == "q" else "logit(")
    with torch.no_grad():
        out = policy.network(torch.as_tensor(ts.normalizer.transform(test.states)))
        rec = policy.action_probabilities(test.states).argmax(1)
        expected = out[np.arange(len(rec)), rec] - out[np.arange(len(rec)), test.actions]
        got = target(torch.as_tensor(ts.normalizer.transform(test.states)))
    assert torch.allclose(got, expected)
    if head == "q":  # the greedy Q action is never worse than the clinician's
        assert (got >= -1e-6).all()
    e = explain_learned_policy(policy, ts, config=CFG)
    assert e.summary.target == label and e.summary.completeness.passed
    assert e.integrated_gradients.shape[1] == 4


def test_continuous_policy_explains_one_dose_dimension():
    ts = make_toy_transitions(40, seed=0, continuous=True)
    dims = ts.manifest.action_space.dimensions
    torch.manual_seed(0)
    policy = _policy(ts, "tanh_gaussian", TanhGaussianActor(4, 2, [16], [d.dose_max for d in dims]))
    e = explain_learned_policy(policy, ts, config=CFG, dimension=1)
    assert e.summary.target.startswith("recommended norepinephrine")
    assert np.isfinite(e.integrated_gradients).all()
    with pytest.raises(InputError):
        learned_policy_target(policy, np.zeros((2, 4)), np.zeros((2, 2)), dimension=5)


def test_feature_mismatch_is_refused():
    ts = make_toy_transitions(20, seed=0)
    other = make_toy_transitions(20, seed=0)
    policy = _policy(ts, "q", DiscreteQ(4, ts.n_actions, [8]))
    policy.feature_names = ("a", "b", "c", "d")
    with pytest.raises(InputError):
        explain_learned_policy(policy, other, config=CFG)
