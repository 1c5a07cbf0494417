import numpy as np
import polars as pl
import pytest
import torch

from clinical_mborl.cohort.manifest import StateFeatureInfo
from clinical_mborl.core.errors import InputError
from clinical_mborl.explain.contrast import action_contrast
from clinical_mborl.explain.explanation import (
    ExplainConfig,
    explain_policy,
    load_explanation,
    save_explanation,
)

from .nets import trained_q_net

NAMES = ["map_mmhg", "lactate_mmol_l", "lactate_mmol_l_missing", "heart_rate_bpm", "creat_mg_dl", "age_years"]
UNITS = ["mmHg", "mmol/L", "", "bpm", "mg/dL", "years"]


def _features() -> list[StateFeatureInfo]:
    out = []
    for n, u in zip(NAMES, UNITS, strict=True):
        ind = n.endswith("_missing")
        out.append(StateFeatureInfo(name=n, unit=u, kind="indicator" if ind else "measurement",
                                    transform="none" if ind else "zscore", mean=0.0 if ind else 50.0,
                                    std=1.0 if ind else 10.0))
    return out


@pytest.fixture(scope="module")
def explanation():
    rng = np.random.default_rng(0)
    raw = 50.0 + 10.0 * rng.normal(size=(40, 6))
    raw[:, 2] = rng.integers(0, 2, 40)
    background = 50.0 + 10.0 * rng.normal(size=(100, 6))
    background[:, 2] = rng.integers(0, 2, 100)
    target = action_contrast(trained_q_net(), torch.full((40,), 3), torch.as_tensor(rng.integers(0, 3, 40)))
    cfg = ExplainConfig(max_rows=30, shapley_samples=60, sanity_rows=16, top_k=3, gradient_shap_samples=8)
    return explain_policy(target, raw, _features(), background, cfg), raw


def test_explanation_shapes_checks_and_groups(explanation):
    e, _ = explanation
    assert e.integrated_gradients.shape == e.gradient_shap.shape == (30, 6)
    assert e.grouped.shape == (30, 5)
    s = e.summary
    assert ["lactate_mmol_l", "lactate_mmol_l_missing"] in s.groups
    assert s.completeness.passed and s.sanity.passed and s.passed
    assert len(s.global_importance) == 6
    imp = [f.integrated_gradients for f in s.global_importance]
    assert imp == sorted(imp, reverse=True)


def test_top_features_are_in_clinical_units(explanation):
    e, raw = explanation
    row = e.summary.rows[0]
    assert len(row.top) == 3
    for tf in row.top:
        j = NAMES.index(tf.feature)
        assert tf.value == pytest.approx(e.states_raw[0, j])
        assert tf.unit == UNITS[j]
    # explained rows are a subsample of the raw states, values untouched (not normalised)
    assert all(any(np.allclose(r, x) for x in raw) for r in e.states_raw[:5])
    assert abs(row.contrast - e.contrast[0]) < 1e-9


def test_save_load_round_trip_without_identifiers(tmp_path, explanation):
    e, _ = explanation
    out = save_explanation(e, tmp_path / "expl")
    back = load_explanation(out)
    np.testing.assert_allclose(back.integrated_gradients, e.integrated_gradients)
    np.testing.assert_allclose(back.grouped, e.grouped)
    assert back.summary == e.summary
    cols = pl.read_parquet(out / "attributions.parquet").columns
    assert not any("stay_id" in c or "patient" in c for c in cols)


def test_wrong_feature_count_is_input_error():
    with pytest.raises(InputError):
        explain_policy(action_contrast(trained_q_net(), torch.zeros(2), torch.zeros(2)), np.zeros((2, 3)),
                       _features(), np.zeros((5, 6)))
