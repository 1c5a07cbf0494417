"""The truth is the value of what OPE estimates: the softened policy, the simulated clinician."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from clinical_mborl.cohort.toy import make_toy_transitions
from clinical_mborl.core.errors import InputError
from clinical_mborl.ope import OPEConfig, soften
from clinical_mborl.policies import NoTreatmentPolicy, RandomPolicy
from clinical_mborl.simulators.sepsis.policies import UsualCare
from clinical_mborl.studies import parallel, truth
from clinical_mborl.studies.candidates import (
    SoftenedPolicy,
    build_candidate,
    resolve_kind,
    truth_policy,
)
from clinical_mborl.studies.config import StudyConfig


@pytest.fixture()
def toy():
    ts = make_toy_transitions(20, seed=0)
    return ts, np.random.default_rng(0).normal(size=(7, len(ts.feature_names))) + 50.0


def test_softened_policy_is_the_mixture_ope_evaluates(toy):
    ts, x = toy
    pe = NoTreatmentPolicy(ts.feature_names, ts.manifest.action_space)
    pb = RandomPolicy(ts.feature_names, ts.manifest.action_space)
    soft = SoftenedPolicy(pe, pb, 0.2)
    want = soften(pe.action_probabilities(x), pb.action_probabilities(x), 0.2)
    assert np.allclose(soft.action_probabilities(x), want)
    draws = soft.sample_actions(np.repeat(x[:1], 4000, axis=0), np.random.default_rng(1))
    assert abs(np.mean(draws == 0) - want[0, 0]) < 0.03
    assert soft.name == pe.name and soft.feature_names == ts.feature_names


def test_truth_policy_matches_the_softening_setting(toy):
    ts, _ = toy
    pe = NoTreatmentPolicy(ts.feature_names, ts.manifest.action_space)
    pb = RandomPolicy(ts.feature_names, ts.manifest.action_space)
    assert isinstance(truth_policy("clinician", None, pb, 0.01), UsualCare)
    assert isinstance(truth_policy("no-treatment", pe, pb, 0.01), SoftenedPolicy)
    assert truth_policy("no-treatment", pe, pb, 0.0) is pe


@pytest.mark.parametrize("eps", [0.0, 0.05])
def test_the_closed_loop_receives_the_softened_candidate(monkeypatch, toy, eps):
    ts, x = toy
    pb = RandomPolicy(ts.feature_names, ts.manifest.action_space)
    seen = {}

    def fake_closed_loop(policy, spec, manifest, n_episodes, seed, config=None):
        seen.update(policy=policy, n=n_episodes, seed=seed, readmissions=config.population.readmission_share)
        return SimpleNamespace(value=0.3, value_ci_low=0.2, value_ci_high=0.4, included=n_episodes - 1,
                               mortality=0.25, policy=policy.name)

    reference = SimpleNamespace(
        manifest=ts.manifest, behavior=pb, spec=ts.manifest.spec,
        candidate=lambda name, f, s: build_candidate(name, f, s, {}))
    monkeypatch.setattr(truth, "evaluate_in_closed_loop", fake_closed_loop)
    monkeypatch.setattr(parallel, "_STATE", {"config": StudyConfig(ope=OPEConfig(soften_epsilon=eps)),
                                             "reference": reference})
    out = truth.truth_chunk_task(("no-treatment", 2, 101))
    assert seen["n"] == 101 and seen["readmissions"] == 0.0 and out["included"] == 100
    direct = NoTreatmentPolicy(ts.feature_names, ts.manifest.action_space).action_probabilities(x)
    got = seen["policy"].action_probabilities(x)
    assert np.allclose(got, soften(direct, pb.action_probabilities(x), eps))
    assert isinstance(seen["policy"], SoftenedPolicy) == (eps > 0)
    truth.truth_chunk_task(("clinician", 2, 101))
    assert isinstance(seen["policy"], UsualCare)


def test_pooling_chunks_weights_by_included_episodes():
    chunks = [{"value": 0.5, "se": 0.02, "included": 300, "deaths": 60, "episodes": 301, "seconds": 1.0},
              {"value": 0.1, "se": 0.04, "included": 100, "deaths": 40, "episodes": 100, "seconds": 2.0}]
    rec = truth.pool_chunks("p", "p", 0.01, "softened", chunks)
    assert rec.value == pytest.approx(0.4)
    assert rec.mc_se == pytest.approx(np.sqrt((300 * 0.02) ** 2 + (100 * 0.04) ** 2) / 400)
    assert (rec.mortality, rec.episodes, rec.included, rec.chunks) == (0.25, 401, 400, 2)


def test_truth_cache_key_depends_on_softening_and_episodes():
    a = truth.truth_key("bc", StudyConfig(), "ref")
    assert a == truth.truth_key("bc", StudyConfig(replicates=7, patients=99), "ref")
    assert a != truth.truth_key("bc", StudyConfig(ope=OPEConfig(soften_epsilon=0.05)), "ref")
    assert a != truth.truth_key("bc", StudyConfig(truth_episodes=999), "ref")
    assert truth.chunk_sizes(StudyConfig(truth_episodes=12000, truth_chunk=5000)) == [5000, 5000, 2000]


def test_unknown_candidates_are_refused():
    with pytest.raises(InputError, match="expected clinician"):
        resolve_kind("morel-please")


def _record(values: np.ndarray, included: int = 500, se: float = 0.05) -> truth.TruthRecord:
    return truth.pool_chunks("x", "x", 0.01, "softened", [
        {"value": float(v), "se": se, "included": included, "deaths": 0} for v in values])


def test_pooled_truth_keeps_its_chunk_means_in_order():
    rec = _record(np.array([0.3, 0.5, 0.4]), included=7)
    assert rec.chunk_values == [0.3, 0.5, 0.4] and rec.chunk_included == [7, 7, 7]


def test_paired_difference_error_matches_the_spread_of_differences_under_common_random_numbers():
    rng = np.random.default_rng(0)
    k, draws = 20, 4000
    patients = rng.normal(0.0, 0.05, size=(draws, k))  # the same simulated patients in chunk k for both
    # (each chunk mean's own SE, 0.05, is what `_record` gives the pooled value's independent error)
    a = 0.53 + patients + rng.normal(0.0, 0.01, size=(draws, k))
    b = 0.50 + patients + rng.normal(0.0, 0.01, size=(draws, k))
    diffs, ses = zip(*(truth.paired_difference(_record(x), _record(y)) for x, y in zip(a, b, strict=True)),
                     strict=True)
    # the estimated SE is right on average (squared), and far below the independent-samples formula
    assert np.mean(np.square(ses)) == pytest.approx(np.var(diffs), rel=0.1)
    assert np.mean(diffs) == pytest.approx(0.03, abs=1e-3)
    rec_a, rec_b = _record(a[0]), _record(b[0])
    assert truth.paired_difference(rec_a, rec_b)[1] < 0.5 * np.hypot(rec_a.mc_se, rec_b.mc_se)


def test_paired_difference_falls_back_to_the_conservative_error_with_few_chunks():
    a, b = _record(np.full(truth.MIN_PAIRED_CHUNKS - 1, 0.5)), _record(np.full(truth.MIN_PAIRED_CHUNKS - 1, 0.4))
    assert truth.paired_difference(a, b) == pytest.approx((0.1, np.hypot(a.mc_se, b.mc_se)))
    old = a.model_copy(update={"chunk_values": [], "chunk_included": []})  # cached before chunk means were kept
    assert truth.paired_difference(old, b)[1] == pytest.approx(np.hypot(a.mc_se, b.mc_se))


def test_truth_chunks_are_pooled_in_chunk_order_whatever_order_the_workers_finish(monkeypatch, tmp_path):
    def finish_backwards(fn, tasks, jobs, ref_dir, config_json):
        for name, index, n in reversed(tasks):
            yield (name, index, n), {"value": index / 10, "se": 0.01, "included": n, "policy_name": name,
                                     "deaths": 0, "seconds": 0.0}

    monkeypatch.setattr(truth, "iter_tasks", finish_backwards)
    config = StudyConfig(policies=("no-treatment",), truth_episodes=300, truth_chunk=100)
    got = truth.compute_truths(config, tmp_path, "ref", jobs=1, log=lambda s: None)
    assert got["no-treatment"].chunk_values == [0.0, 0.1, 0.2] == got["clinician"].chunk_values
    assert truth.load_truths(tmp_path)[got["clinician"].key] == got["clinician"]


def test_a_longer_truth_reuses_the_chunks_of_a_shorter_one(monkeypatch, tmp_path):
    ran: list[tuple[str, int, int]] = []

    def fake_tasks(fn, tasks, jobs, ref_dir, config_json):
        for name, index, n in tasks:
            ran.append((name, index, n))
            yield (name, index, n), {"value": index / 10 + (name == "clinician"), "se": 0.01, "included": n,
                                     "policy_name": name, "deaths": 0, "seconds": 0.0}

    monkeypatch.setattr(truth, "iter_tasks", fake_tasks)
    short = StudyConfig(policies=("no-treatment",), truth_episodes=300, truth_chunk=100)
    first = truth.compute_truths(short, tmp_path, "ref", jobs=1, log=lambda s: None)
    assert len(ran) == 6
    ran.clear()
    longer = truth.compute_truths(short.model_copy(update={"truth_episodes": 500}), tmp_path, "ref", jobs=1,
                                  log=lambda s: None)
    assert sorted(ran) == [(c, k, 100) for c in ("clinician", "no-treatment") for k in (3, 4)]  # only the new ones
    for c in ("clinician", "no-treatment"):
        assert longer[c].chunk_values[:3] == first[c].chunk_values and len(longer[c].chunk_values) == 5
        assert longer[c].episodes == 500 and first[c].episodes == 300
    ran.clear()
    other_size = truth.compute_truths(short.model_copy(update={"truth_chunk": 150}), tmp_path, "ref", jobs=1,
                                      log=lambda s: None)  # other chunk sizes are other patients: all new
    assert len(ran) == 4 and other_size["clinician"].chunks == 2
