"""Candidate labels: folder names, protocol stems, named policies; unique; never an identifier."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinical_mborl.core.errors import InputError
from clinical_mborl.scoring.candidates import candidate_labels, slug


def test_labels_and_kinds(tmp_path: Path) -> None:
    (tmp_path / "runs" / "combo_b5").mkdir(parents=True)
    specs = ["clinician", str(tmp_path / "runs" / "combo_b5") + "/", str(tmp_path / "map.yml"),
             str(tmp_path / "nowhere"), "random"]
    got = [(c.index, c.label, c.kind) for c in candidate_labels(specs)]
    assert got == [(0, "clinician", "named"), (1, "combo_b5", "artifact"), (2, "map", "protocol"),
                   (3, "nowhere", "unknown"), (4, "random", "named")]


def test_repeated_labels_are_made_unique(tmp_path: Path) -> None:
    for d in ("a/morel", "b/morel"):
        (tmp_path / d).mkdir(parents=True)
    labels = [c.label for c in candidate_labels([str(tmp_path / "a/morel"), str(tmp_path / "b/morel"),
                                                 "clinician", "clinician", "morel (2)"])]
    assert labels == ["morel", "morel (2)", "clinician", "clinician (2)", "morel (2) (2)"]
    assert len(set(labels)) == len(labels)


def test_a_label_that_is_a_stay_or_patient_id_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "100234").mkdir()
    labels = [c.label for c in candidate_labels([str(tmp_path / "100234"), "clinician", "run-100234.yaml",
                                                 "p-7.yaml", "p-77.yaml"], identifiers=[100234, "p-77"])]
    # long ids match anywhere, short ones only as whole tokens
    assert labels == ["candidate-1", "clinician", "candidate-3", "p-7", "candidate-5"]


def test_no_candidates_is_an_input_error() -> None:
    with pytest.raises(InputError, match="at least one candidate"):
        candidate_labels([])


def test_slug_is_file_system_safe() -> None:
    assert slug("morel (2)") == "morel_2" and slug("a/b\\c") == "a_b_c" and slug("///") == "candidate"
