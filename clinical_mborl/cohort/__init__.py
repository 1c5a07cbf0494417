"""Cohort stage: a `CohortSpec` turns validated EHR tables into a `TransitionSet`."""

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
    "load_cohort_spec",
    "parse_cohort_spec",
]
