"""`CohortSpec`: the clinical and data definition of a decision problem, loaded from YAML.

Every clinical constant (step width, ranges, unit conversions, dose bins, rewards) lives here,
never inside functions. Unknown keys and duplicate YAML keys are errors.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from clinical_mborl.core.errors import InputError
from clinical_mborl.core.io import sha256_json
from clinical_mborl.core.models import StrictModel

SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
PositiveFloat = Annotated[float, Field(gt=0)]


def snake_name(what: str, v: str) -> str:
    """`v` if it is snake_case; else ValueError naming `what` (e.g. "feature name")."""
    if not SNAKE.match(v):
        raise ValueError(f"{what} must be snake_case, got '{v}'")
    return v


class UnitConversion(StrictModel):
    """value_in_target_unit = value * factor + offset."""

    factor: float = 1.0
    offset: float = 0.0


class TimeSpec(StrictModel):
    step_hours: PositiveFloat = Field(4.0, description="Width of one decision step in hours.")
    anchor: Literal["admission"] = Field("admission", description="Time zero of the window.")
    window_start_hours: float = Field(0.0, description="Window start relative to the anchor (h).")
    window_end_hours: PositiveFloat = Field(72.0, description="Window end relative to the anchor (h).")
    lookback_hours: float = Field(
        24.0, ge=0, description="Data charted this long before the window start may seed the first state."
    )

    @model_validator(mode="after")
    def _window_ordered(self) -> TimeSpec:
        if self.window_end_hours <= self.window_start_hours:
            raise ValueError("window_end_hours must be greater than window_start_hours")
        return self

    @property
    def n_steps(self) -> int:
        import math

        return int(math.ceil((self.window_end_hours - self.window_start_hours) / self.step_hours - 1e-9))


class CriteriaSpec(StrictModel):
    """Inclusion and exclusion criteria, applied in the order listed in the exclusion flow."""

    min_age_years: float | None = 18.0
    max_age_years: float | None = None
    min_stay_hours: float = Field(4.0, ge=0, description="Stays shorter than this are excluded.")
    require_features: list[str] = Field(
        default_factory=list,
        description="State features that must have at least one valid value in the window.",
    )
    require_weight: bool = Field(False, description="Exclude stays without weight_kg.")


class FeatureSpec(StrictModel):
    """One state feature built from the `measurements` table."""

    name: str = Field(description="Output column, snake_case with unit, e.g. map_mmhg.")
    source: str = Field(description="`measurements.variable` value(s) this feature reads.")
    aliases: list[str] = Field(default_factory=list, description="Other variable names for the same quantity.")
    unit: str = Field(description="Target unit; rows already in it are kept as is.")
    conversions: dict[str, UnitConversion] = Field(
        default_factory=dict, description="Source unit -> conversion into `unit`. Other units are an error."
    )
    valid_range: tuple[float, float] = Field(
        description="Converted values outside [lo, hi] are charting artefacts: removed and counted."
    )
    aggregation: Literal["last", "mean", "min", "max", "sum", "count"] = "last"
    max_carry_hours: float = Field(
        24.0, ge=0, description="Forward-fill a value at most this long; older is treated as missing."
    )
    fill: Literal["train_median", "zero"] = Field(
        "train_median", description="Value used when nothing recent enough exists."
    )
    missing_indicator: bool = Field(True, description="Add `<name>_missing` (1 = imputed).")
    transform: Literal["zscore", "log_zscore", "none"] = "zscore"

    @field_validator("name")
    @classmethod
    def _snake(cls, v: str) -> str:
        return snake_name("feature name", v)

    @model_validator(mode="after")
    def _range(self) -> FeatureSpec:
        if self.valid_range[0] >= self.valid_range[1]:
            raise ValueError(f"valid_range of {self.name} must be (lo, hi) with lo < hi")
        if self.transform == "log_zscore" and self.valid_range[0] < 0:
            raise ValueError(f"log_zscore on {self.name} needs a non-negative valid_range")
        return self

    @property
    def variables(self) -> list[str]:
        return [self.source, *self.aliases]


class StaticFeatureSpec(StrictModel):
    """A stay-level feature from the `stays` table (constant over steps)."""

    name: Literal["age_years", "sex_female", "weight_kg"]
    transform: Literal["zscore", "none"] = "zscore"
    missing_indicator: bool = False


class ActionDimensionSpec(StrictModel):
    """One dose dimension built from the `treatments` table."""

    name: str = Field(description="Dose column, snake_case with unit, e.g. iv_fluid_ml.")
    treatments: dict[str, float] = Field(
        description="Source treatment name -> equivalence factor (e.g. norepinephrine-equivalents)."
    )
    aggregation: Literal["amount_sum", "max_rate"] = Field(
        description="amount_sum: total amount given within the step (pro-rated for infusions); "
        "max_rate: the highest infusion rate running during the step."
    )
    unit: str
    conversions: dict[str, UnitConversion] = Field(
        default_factory=dict, description="Source amount/rate unit -> conversion into `unit`."
    )
    per_kg_units: list[str] = Field(
        default_factory=list,
        description="Source units that are not per kg and must be divided by weight_kg to reach `unit`.",
    )
    binning: Literal["quantile", "edges", "continuous"] = "quantile"
    n_levels: int = Field(5, ge=2, description="Levels including level 0 = none (quantile binning).")
    edges: list[float] | None = Field(
        None, description="Explicit upper edges of levels 1..L-1 for binning='edges' (increasing)."
    )
    max_dose: float | None = Field(None, description="Doses above this are an input error (implausible).")

    @field_validator("name")
    @classmethod
    def _snake(cls, v: str) -> str:
        return snake_name("action dimension name", v)

    @model_validator(mode="after")
    def _edges(self) -> ActionDimensionSpec:
        if self.binning == "edges":
            if not self.edges:
                raise ValueError(f"{self.name}: binning 'edges' needs `edges`")
            if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)) or self.edges[0] <= 0:
                raise ValueError(f"{self.name}: edges must be positive and strictly increasing")
        return self

    @property
    def levels(self) -> int:
        if self.binning == "edges":
            assert self.edges is not None
            return len(self.edges) + 2
        return self.n_levels


class TreatmentFeatureSpec(StrictModel):
    """A state feature from the doses already given in the window (the treatment history).

    Clinicians titrate: whether a vasopressor is given depends on whether one is running, and
    another bolus on how much fluid has gone in (the AI Clinician's state holds both). Both are
    built from the action dimension's doses of the steps *before* the decision, so they use only
    what was given before it: `previous` is the dose of the previous step, `cumulative` the sum
    over all previous steps of the window (only for `amount_sum` dimensions); 0 at the first step.
    """

    name: str = Field(description="Output column, snake_case with unit, e.g. iv_fluid_ml_cumulative.")
    action: str = Field(description="The action dimension (`actions[].name`) whose doses it reads.")
    kind: Literal["previous", "cumulative"]
    transform: Literal["zscore", "log_zscore", "none"] = Field(
        "log_zscore", description="Doses are skewed with many zeros: log1p then z-score by default.")

    @field_validator("name")
    @classmethod
    def _snake(cls, v: str) -> str:
        return snake_name("treatment feature name", v)


class IntermediateReward(StrictModel):
    """reward_t += weight * term, evaluated on the clinical-unit state."""

    feature: str
    kind: Literal["delta", "below", "above"] = Field(
        description="delta: next - current; below/above: 1 if next state is below/above threshold."
    )
    weight: float
    threshold: float | None = None

    @model_validator(mode="after")
    def _threshold(self) -> IntermediateReward:
        if self.kind in ("below", "above") and self.threshold is None:
            raise ValueError(f"intermediate reward on {self.feature}: kind '{self.kind}' needs threshold")
        return self


class RewardSpec(StrictModel):
    outcome: Literal["died_in_hospital"] = "died_in_hospital"
    survival_reward: float = 1.0
    death_reward: float = -1.0
    intermediate: list[IntermediateReward] = Field(default_factory=list)
    outcome_on_truncation: bool = Field(
        True,
        description="Give the outcome reward at the last step also when the window ends first "
        "(AI Clinician convention); learners do not bootstrap past the window end.",
    )


class SplitSpec(StrictModel):
    train: float = Field(0.7, gt=0, lt=1)
    val: float = Field(0.15, ge=0, lt=1)
    test: float = Field(0.15, gt=0, lt=1)
    seed: int = 0
    stratify_by: Literal["died_in_hospital"] | None = "died_in_hospital"

    @model_validator(mode="after")
    def _sum(self) -> SplitSpec:
        if abs(self.train + self.val + self.test - 1.0) > 1e-6:
            raise ValueError("split fractions must sum to 1")
        return self


class CohortSpec(StrictModel):
    """A complete cohort definition. See `cohorts/*.yaml`."""

    schema_version: Literal[1] = 1
    name: str
    description: str = Field(description="Clinical definition of the cohort.")
    sources: list[str] = Field(default_factory=list)
    assumptions: list[str] = Field(default_factory=list)
    time: TimeSpec = TimeSpec()
    criteria: CriteriaSpec = CriteriaSpec()
    features: list[FeatureSpec]
    static_features: list[StaticFeatureSpec] = Field(default_factory=list)
    treatment_features: list[TreatmentFeatureSpec] = Field(
        default_factory=list, exclude_if=lambda v: not v,  # left out of dumps (and spec hashes) when empty
        description="Treatment-history state features (previous or cumulative doses "
        "of an action dimension), after the measurement and static features and their indicators.")
    actions: list[ActionDimensionSpec]
    reward: RewardSpec = RewardSpec()
    gamma: float = Field(0.99, gt=0, le=1)
    split: SplitSpec = SplitSpec()
    duplicates: Literal["drop_exact", "error"] = Field(
        "drop_exact", description="Exact duplicate measurement rows: drop (counted) or refuse."
    )

    @model_validator(mode="after")
    def _consistent(self) -> CohortSpec:
        names = [f.name for f in self.features] + [s.name for s in self.static_features]
        everything = names + [t.name for t in self.treatment_features]
        dup = {n for n in everything if everything.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate feature names: {sorted(dup)}")
        known = set(names)
        for req in self.criteria.require_features:
            if req not in known:
                raise ValueError(f"criteria.require_features names unknown feature '{req}'")
        for term in self.reward.intermediate:
            if term.feature not in known:
                raise ValueError(f"reward.intermediate names unknown feature '{term.feature}'")
        kinds = {a.binning == "continuous" for a in self.actions}
        if len(kinds) > 1:
            raise ValueError("mix of continuous and discrete action dimensions is not supported")
        anames = [a.name for a in self.actions]
        if len(set(anames)) != len(anames):
            raise ValueError("duplicate action dimension names")
        variables = [v for f in self.features for v in f.variables]
        shared = sorted({v for v in variables if variables.count(v) > 1})
        if shared:
            raise ValueError(f"measurement variable(s) {shared} feed more than one feature; each feeds one")
        by_name = {a.name: a for a in self.actions}
        for t in self.treatment_features:
            if t.name in by_name or t.name.endswith("_missing"):
                raise ValueError(f"treatment feature {t.name}: the name is taken by a dose column or an indicator")
            if t.action not in by_name:
                raise ValueError(f"treatment feature {t.name} names unknown action dimension '{t.action}'")
            if t.kind == "cumulative" and by_name[t.action].aggregation != "amount_sum":
                raise ValueError(f"treatment feature {t.name}: 'cumulative' needs an amount_sum dimension; "
                                 f"{t.action} is {by_name[t.action].aggregation} (use 'previous')")
        treatments = [t for a in self.actions for t in a.treatments]
        shared = sorted({t for t in treatments if treatments.count(t) > 1})
        if shared:
            raise ValueError(f"treatment(s) {shared} feed more than one action dimension; each feeds one")
        return self

    @property
    def action_kind(self) -> Literal["discrete", "continuous"]:
        return "continuous" if self.actions[0].binning == "continuous" else "discrete"

    def spec_hash(self) -> str:
        return sha256_json(self.model_dump(mode="json"))


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}'", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_cohort_spec(text: str, source: str = "<string>") -> CohortSpec:
    """Parse YAML text into a CohortSpec; every problem becomes one InputError."""
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise InputError(f"cohort spec {source}: invalid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise InputError(f"cohort spec {source}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return CohortSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise InputError(f"cohort spec {source}: {exc.error_count()} problem(s): {problems}") from exc


def load_cohort_spec(path: str | Path) -> CohortSpec:
    """Load and validate `cohorts/<name>.yaml`.

    >>> spec = load_cohort_spec("cohorts/sepsis_fluids_vasopressors.yaml")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"cohort spec {path}: file not found; pass a YAML file such as cohorts/sepsis_fluids_vasopressors.yaml")
    return parse_cohort_spec(path.read_text(), source=str(path))
