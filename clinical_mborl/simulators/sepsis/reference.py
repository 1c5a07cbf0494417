"""A reference cohort built from simulated usual care, for ground truth without a user cohort.

Built-in policies (clinician, oracle, random, no-treatment) need a cohort manifest for the
spec's fill values and dose levels. When no cohort is given, one is built the way a user would:
`simulate_sepsis` then `cohort build` with the spec, in a temporary folder.

>>> ts = reference_cohort(load_cohort_spec("cohorts/sepsis_fluids_vasopressors.yaml"), 500, 0)  # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from clinical_mborl.cohort import CohortSpec, TransitionSet
from clinical_mborl.cohort.build import build_cohort
from clinical_mborl.simulators.sepsis.config import SepsisConfig
from clinical_mborl.simulators.sepsis.simulate import simulate_sepsis

REFERENCE_PATIENTS = 2000
REFERENCE_SEED_OFFSET = 1_000_003
"""The reference cohort uses seed + this offset, so its patients differ from the evaluated ones."""


def reference_cohort(
    spec: CohortSpec, n_patients: int = REFERENCE_PATIENTS, seed: int = 0, config: SepsisConfig | None = None,
    workdir: str | Path | None = None,
) -> TransitionSet:
    """Simulate `n_patients` stays under usual care and build `spec`'s cohort from them."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        ehr, out = Path(tmp) / "ehr", Path(tmp) / "cohort"
        simulate_sepsis(n_patients, seed + REFERENCE_SEED_OFFSET, ehr, config=config)
        build_cohort(spec, ehr, out, progress=False)
        return TransitionSet.load(out)
