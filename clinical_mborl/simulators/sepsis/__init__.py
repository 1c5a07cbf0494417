"""ICU sepsis simulator: physiology, measurement process, usual care, closed-loop ground truth.

>>> from clinical_mborl.simulators.sepsis import SepsisConfig, SepsisSimulator
>>> sim = SepsisSimulator(10, seed=0, config=SepsisConfig())
>>> sim.run_until(6)
>>> sim.hour
6
"""

from clinical_mborl.simulators.sepsis.config import SepsisConfig
from clinical_mborl.simulators.sepsis.engine import SepsisSimulator
from clinical_mborl.simulators.sepsis.simulate import SimulationSummary, simulate_sepsis
from clinical_mborl.simulators.sepsis.tables import build_tables

__all__ = ["SepsisConfig", "SepsisSimulator", "SimulationSummary", "build_tables", "simulate_sepsis"]
