"""clinical-mborl: model-based offline RL for dosing policies from EHR."""

__version__ = "0.1.0"
