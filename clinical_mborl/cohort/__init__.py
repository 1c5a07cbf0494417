"""Cohort stage: a `CohortSpec` turns validated EHR tables into a `TransitionSet`."""

from clinical_mborl.cohort.build import build_cohort
from clinical_mborl.cohort.features import compute_states, fill_values_from_manifest, state_names
from clinical_mborl.cohort.levels import bin_doses, doses_of_action
from clinical_mborl.cohort.manifest import ActionSpaceInfo, CohortManifest, StateFeatureInfo
from clinical_mborl.cohort.normalize import Normalizer
from clinical_mborl.cohort.spec import CohortSpec, load_cohort_spec, parse_cohort_spec
from clinical_mborl.cohort.transitions import EpisodeArrays, TransitionArrays, TransitionSet

__all__ = [
    "ActionSpaceInfo",
    "CohortManifest",
    "CohortSpec",
    "EpisodeArrays",
    "Normalizer",
    "StateFeatureInfo",
    "TransitionArrays",
    "TransitionSet",
    "bin_doses",
    "build_cohort",
    "compute_states",
    "doses_of_action",
    "fill_values_from_manifest",
    "load_cohort_spec",
    "parse_cohort_spec",
    "state_names",
]
