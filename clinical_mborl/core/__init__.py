"""Shared foundations: errors, strict models, atomic I/O, artifacts, seeding, the Policy protocol."""

from clinical_mborl.core.errors import (
    ArtifactError,
    ClinicalMBORLError,
    InputError,
    NotFittedError,
    RefusedError,
    ValidationFailed,
    Violation,
)
from clinical_mborl.core.models import StrictModel

__all__ = [
    "ArtifactError",
    "ClinicalMBORLError",
    "InputError",
    "NotFittedError",
    "RefusedError",
    "StrictModel",
    "ValidationFailed",
    "Violation",
]
