import json

import pytest
import torch

from clinical_mborl.core.artifacts import load_artifact, save_artifact, verify_artifact
from clinical_mborl.core.errors import ArtifactError


def _save(tmp_path):
    path = tmp_path / "art"
    save_artifact(
        path,
        kind="unit",
        config={"hidden": 8},
        tensors={"weights": {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(3)}},
        extras={"metrics": {"nll": 0.5}},
        cohort_manifest_hash="abc",
        seed=3,
    )
    return path


def test_round_trip_is_exact(tmp_path):
    art = load_artifact(_save(tmp_path), expected_kind="unit")
    assert torch.equal(art.tensors["weights"]["w"], torch.arange(6.0).reshape(2, 3))
    assert art.config == {"hidden": 8}
    assert art.extras["metrics"] == {"nll": 0.5}
    assert art.manifest.seed == 3 and art.manifest.cohort_manifest_hash == "abc"
    assert set(art.manifest.files) == {"config.json", "weights.safetensors", "metrics.json"}


def test_tampered_weights_are_refused(tmp_path):
    path = _save(tmp_path)
    raw = bytearray((path / "weights.safetensors").read_bytes())
    raw[-1] ^= 0x01
    (path / "weights.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        load_artifact(path)


def test_edited_config_and_extra_files_are_refused(tmp_path):
    path = _save(tmp_path)
    (path / "config.json").write_text(json.dumps({"hidden": 9}))
    with pytest.raises(ArtifactError):
        verify_artifact(path)
    path = _save(tmp_path)
    (path / "evil.pkl").write_bytes(b"x")
    with pytest.raises(ArtifactError, match="unexpected"):
        verify_artifact(path)


def test_wrong_kind_and_missing_folder(tmp_path):
    path = _save(tmp_path)
    with pytest.raises(ArtifactError, match="expected kind"):
        verify_artifact(path, expected_kind="policy")
    with pytest.raises(ArtifactError, match="no manifest.json"):
        verify_artifact(tmp_path / "nope")
    assert ArtifactError("x").exit_code == 2


def test_overwrite_replaces_folder_atomically(tmp_path):
    path = _save(tmp_path)
    save_artifact(path, kind="unit", config={"hidden": 2}, tensors={})
    assert load_artifact(path).config == {"hidden": 2}
    assert not (path / "weights.safetensors").exists()
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_manifest_records_the_thread_count_and_cpu_in_force_at_save(tmp_path):
    """Same seed, other thread count: other float sums. The manifest says which was used."""
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            path = tmp_path / f"t{threads}"
            save_artifact(path, kind="unit", config={}, tensors={"weights": {"w": torch.ones(1)}})
            compute = load_artifact(path).manifest.compute
            assert compute["torch_threads"] == str(threads)
            assert compute["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
            assert compute["cpu_model"]
    finally:
        torch.set_num_threads(before)


def test_manifest_written_before_compute_was_recorded_still_loads(tmp_path):
    path = _save(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    del manifest["compute"]
    (path / "manifest.json").write_text(json.dumps(manifest))
    assert load_artifact(path, expected_kind="unit").manifest.compute == {}
