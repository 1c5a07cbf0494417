"""Patient pseudonyms and the stratified patient-level split."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_mborl.cohort.spec import SplitSpec
from clinical_mborl.cohort.splits import assign_splits, patient_keys


def test_patient_keys_are_salted_by_the_spec_and_never_the_raw_id() -> None:
    ids = pl.Series(["P1", "P2", "P1"])
    a, b = patient_keys(ids, "spec-a"), patient_keys(ids, "spec-b")
    assert a[0] == a[2] and a[0] != a[1] and a[0] != b[0]
    assert all(len(k) == 16 and k not in ("P1", "P2") for k in a)
    assert patient_keys(ids, "spec-a").equals(a)


@settings(max_examples=50, deadline=None)
@given(died=st.lists(st.booleans(), min_size=1, max_size=60), seed=st.integers(0, 10))
def test_split_is_stratified_seeded_and_covers_every_patient_once(died: list[bool], seed: int) -> None:
    patients = pl.DataFrame({"patient_key": [f"k{i:03d}" for i in range(len(died))], "died": died})
    spec = SplitSpec(train=0.7, val=0.15, test=0.15, seed=seed)
    out = assign_splits(patients, spec)
    assert out.height == len(died) and out["patient_key"].n_unique() == len(died)
    for value in (False, True):
        n = sum(d == value for d in died)
        got = out.filter(pl.col("died") == value)["split"].value_counts()
        counts = dict(got.iter_rows())
        assert counts.get("train", 0) == int(np.floor(0.7 * n + 0.5))
    assert assign_splits(patients.reverse(), spec).sort("patient_key").equals(out.sort("patient_key"))
