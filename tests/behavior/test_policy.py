"""ClinicianPolicy artifacts: exact round trip, tampering refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clinical_mborl.behavior import ClinicianPolicy
from clinical_mborl.cohort import TransitionSet
from clinical_mborl.core.artifacts import read_manifest
from clinical_mborl.core.errors import ArtifactError


@pytest.mark.parametrize("kind", ["discrete", "continuous"])
def test_save_load_round_trip_is_exact(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    ts: TransitionSet = request.getfixturevalue(f"toy_{kind}")
    pol: ClinicianPolicy = request.getfixturevalue(f"{kind}_policy")
    pol.save(tmp_path / "pi_b")
    back = ClinicianPolicy.load(tmp_path / "pi_b")
    raw = ts.frame.select(ts.feature_names).to_numpy()
    if kind == "discrete":
        np.testing.assert_array_equal(back.action_probabilities(raw), pol.action_probabilities(raw))
        np.testing.assert_array_equal(back.out_of_fold_proba, pol.out_of_fold_proba)
    else:
        doses = ts.arrays().doses
        np.testing.assert_array_equal(back.log_density(raw, doses), pol.log_density(raw, doses))
        rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
        np.testing.assert_array_equal(back.sample_actions(raw, rng_a), pol.sample_actions(raw, rng_b))
    np.testing.assert_array_equal(back.out_of_fold_log_density, pol.out_of_fold_log_density)
    assert back.calibration == pol.calibration and back.config == pol.config
    assert back.feature_names == pol.feature_names
    assert read_manifest(tmp_path / "pi_b").cohort_manifest_hash == ts.manifest_hash


def test_tampered_weights_refused(discrete_policy: ClinicianPolicy, tmp_path: Path) -> None:
    path = tmp_path / "pi_b"
    discrete_policy.save(path)
    weights = path / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        ClinicianPolicy.load(path)
