"""Patient pseudonyms and the patient-level train/val/test split, stratified by outcome.

`patient_key` = the first 16 hex digits of sha256(salt + patient_id), where the salt is derived
from the spec hash: keys are stable for one spec, differ between specs, and never expose the
raw id. All stays of a patient go to one split. A patient's outcome is death if any of their
stays died in hospital; within each outcome stratum the patients (ordered by raw id, which is
never written out) are shuffled with the split seed and cut at the split fractions.

>>> keys = patient_keys(pl.Series(["p1", "p2"]), spec_hash="abc")
>>> len(keys[0]), keys[0] != keys[1]
(16, True)
"""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl

from clinical_mborl.cohort.spec import SplitSpec

KEY_HEX_DIGITS = 16
SPLIT_NAMES = ("train", "val", "test")


def patient_salt(spec_hash: str) -> str:
    return hashlib.sha256(f"clinical-mborl/patient-key/{spec_hash}".encode()).hexdigest()


def patient_keys(patient_ids: pl.Series, spec_hash: str) -> pl.Series:
    """Salted sha256 pseudonyms of `patient_ids` (one per element; hashing is O(unique patients))."""
    salt = patient_salt(spec_hash)
    unique = patient_ids.unique()
    mapping = {
        pid: hashlib.sha256((salt + pid).encode()).hexdigest()[:KEY_HEX_DIGITS] for pid in unique.to_list()
    }
    return patient_ids.replace_strict(mapping, return_dtype=pl.String).alias("patient_key")


def assign_splits(patients: pl.DataFrame, split: SplitSpec, order_by: str = "patient_key") -> pl.DataFrame:
    """`patients` (`patient_key`, `died`: any stay died, and `order_by`) -> adds `split`.

    Patients are ordered by `order_by` before the seeded shuffle; `cohort build` orders by the
    raw patient id, so specs that differ only in, e.g., the action space get the same split.

    >>> p = pl.DataFrame({"patient_key": [f"k{i:02d}" for i in range(20)], "died": [i % 4 == 0 for i in range(20)]})
    >>> out = assign_splits(p, SplitSpec(train=0.5, val=0.25, test=0.25, seed=1))
    >>> out.group_by("split").agg(pl.col("died").sum()).sort("split").rows()
    [('test', 1), ('train', 3), ('val', 1)]
    """
    rng = np.random.default_rng(split.seed)
    ordered = patients.sort(order_by)
    strata = ordered["died"].to_numpy() if split.stratify_by else np.zeros(ordered.height, dtype=bool)
    labels = np.empty(ordered.height, dtype=object)
    for value in (False, True):
        idx = np.flatnonzero(strata == value)
        idx = idx[rng.permutation(idx.size)]
        n_train = int(np.floor(idx.size * split.train + 0.5))  # half up, not to even
        n_val = min(int(np.floor(idx.size * split.val + 0.5)), idx.size - n_train)
        labels[idx[:n_train]] = "train"
        labels[idx[n_train:n_train + n_val]] = "val"
        labels[idx[n_train + n_val:]] = "test"
    return ordered.with_columns(pl.Series("split", labels.tolist(), dtype=pl.String))
