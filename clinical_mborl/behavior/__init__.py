"""Behaviour stage: the clinicians' dosing policy, cross-fitted and calibrated.

`fit_behavior(transitions, BehaviorConfig()) -> ClinicianPolicy`; `ClinicianPolicy.load(path)`.
"""

from clinical_mborl.behavior.config import BehaviorConfig
from clinical_mborl.behavior.fit import fit_behavior
from clinical_mborl.behavior.policy import ClinicianPolicy

__all__ = ["BehaviorConfig", "ClinicianPolicy", "fit_behavior"]
