"""Policies stage: dosing policies learned offline, constrained to the clinician.

Learners (`train_<algo>(transitions, behavior, dynamics, config) -> LearnedPolicy`): behaviour
cloning (`bc`), discrete CQL (`cql`), MOPO (`mopo`), MOReL (`morel`) and COMBO (`combo`); each
with an `<Algo>Config` whose `constraint` (`ConstraintConfig`) ties it to the clinician.
`select_policy` searches the algorithm's small grid (`grids.GRIDS`) offline. `load_policy`
resolves an artifact folder, a protocol YAML, `clinician`, `random` or `no-treatment`.

>>> from clinical_mborl.policies import train_policy, default_config  # doctest: +SKIP
>>> policy = train_policy("combo", ts, clinician, ensemble, default_config("combo", beta=5.0))  # doctest: +SKIP
>>> policy.save("out/combo")  # doctest: +SKIP
"""

from clinical_mborl.policies.baselines import NoTreatmentPolicy, RandomPolicy
from clinical_mborl.policies.bc import BcConfig, train_bc
from clinical_mborl.policies.combo import ComboConfig, train_combo
from clinical_mborl.policies.constraints import ConstraintConfig
from clinical_mborl.policies.cql import CqlConfig, train_cql
from clinical_mborl.policies.grids import GRIDS, grid_configs
from clinical_mborl.policies.learned import LearnedPolicy, OutputSettings
from clinical_mborl.policies.loading import load_policy
from clinical_mborl.policies.mopo import MopoConfig, train_mopo
from clinical_mborl.policies.morel import MorelConfig, train_morel
from clinical_mborl.policies.protocols import (
    ProtocolPolicy,
    ProtocolSpec,
    load_protocol,
    parse_protocol,
)
from clinical_mborl.policies.selection import (
    ModelValue,
    Selection,
    SelectionConfig,
    model_based_value,
    select_policy,
)
from clinical_mborl.policies.train import ALGORITHMS, default_config, train_policy

__all__ = [
    "ALGORITHMS",
    "GRIDS",
    "BcConfig",
    "ComboConfig",
    "ConstraintConfig",
    "CqlConfig",
    "LearnedPolicy",
    "ModelValue",
    "MopoConfig",
    "MorelConfig",
    "NoTreatmentPolicy",
    "OutputSettings",
    "ProtocolPolicy",
    "ProtocolSpec",
    "RandomPolicy",
    "Selection",
    "SelectionConfig",
    "default_config",
    "grid_configs",
    "load_policy",
    "load_protocol",
    "model_based_value",
    "parse_protocol",
    "select_policy",
    "train_bc",
    "train_combo",
    "train_cql",
    "train_mopo",
    "train_morel",
    "train_policy",
]
