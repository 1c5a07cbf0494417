"""`StudyConfig`: every setting of a simulation study, with the fast defaults a 2-core CPU can afford.

A replicate must cost seconds, so the nuisance models are small and documented here:

- clinician (behaviour) model per replicate: 2 patient folds (cross-fitted), one hidden layer of
  32 units, at most 20 epochs with early stopping on an inner calibration share, temperature-scaled;
- Q-model (FQE, behind DR/WDR/FQE): bootstrapped FQE with 5 members (each an MLP 64x64 refitted
  on a patient bootstrap resample of the fit patients from its own initialisation; 4 epochs per
  iteration, batches of 1,024, learning rate 3e-3, window + 1 iterations). One fit held fixed
  (the first study) left Q-fitting error out of the interval: on one data set, four seeds of the
  same fit gave FQE values with a standard deviation of 0.08-0.14, as large as the whole RMSE.
  A cheaper setting (2 epochs of 2,048-row batches) under-fitted: every FQE value shrank toward 0
  (bias -0.1 to -0.34 on four candidates at N = 1,000), so it was not used;
- dynamics ensemble (model-based estimate): 3 members / 2 elites, 64x64, at most 10 epochs,
  5 rollouts per evaluation stay;
- patient bootstrap: B = 2,000 resamples, BCa, level 0.95 (the project's report defaults).

Study population (so that the truth and the estimate target the same thing):

- the simulator runs without readmissions (`readmission_share = 0`), as the closed loop does,
  so the cohort's population is the closed loop's;
- the cohort spec drops `criteria.min_stay_hours` (the closed-loop truth counts the short stays,
  which depend on the outcome), fixes the dose-level edges to those fitted once on the
  policy-training data (so a level means the same doses in every replicate and in the truth),
  and splits patients at random, unstratified, into train (nuisance models) and test (the
  estimate): `test_share` of each replicate's patients are evaluated.

>>> StudyConfig(patients=60, replicates=3).fingerprint() == StudyConfig(patients=60, replicates=9).fingerprint()
True
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from clinical_mborl.behavior import BehaviorConfig
from clinical_mborl.core.io import sha256_json
from clinical_mborl.core.models import StrictModel
from clinical_mborl.dynamics import DynamicsConfig
from clinical_mborl.ope import FQEConfig, OPEConfig
from clinical_mborl.ope.subgroups import SubgroupDefinition
from clinical_mborl.report.gate import GateConfig
from clinical_mborl.simulators.sepsis import SepsisConfig

DEFAULT_SPEC = "cohorts/sepsis_fluids_vasopressors.yaml"
DEFAULT_CANDIDATES = ("clinician", "no-treatment", "fluids-only", "early-vasopressor", "bc", "cql", "cql-kl")

FAST_BEHAVIOR = BehaviorConfig(n_folds=2, hidden_sizes=(32,), max_epochs=20, patience=3, batch_size=512,
                               fit_splits=("train",), eval_splits=("test",))
REFERENCE_BEHAVIOR = BehaviorConfig(n_folds=3, hidden_sizes=(64, 64), max_epochs=40, fit_splits=("train",),
                                    eval_splits=("test",))
STUDY_FQE = FQEConfig(n_members=5)
FAST_OPE = OPEConfig(n_resamples=2000, method="bca", fqe=STUDY_FQE, model_rollouts=5,
                     eval_splits=("test",), q_fit_splits=("train",))
FAST_DYNAMICS = DynamicsConfig(n_members=3, n_elites=2, hidden_sizes=(64, 64), max_epochs=10, batch_size=512)
#: the gate as pre-registered (GateConfig defaults) except the explanation check: a study has no
#: Captum explanations, and attribution sanity says nothing about the statistical evidence.
STUDY_GATE = GateConfig(require_explanation_sanity=False)


class StudyConfig(StrictModel):
    """Settings of `run_study`; `fingerprint()` identifies the replicates they produce."""

    simulator: Literal["sepsis"] = Field("sepsis", description="Simulator drawing the data sets.")
    usual_care: Literal["hourly", "at-steps", "markov"] = Field(
        "hourly", description="Who decides the doses in each data set. hourly (the calibrated default): the "
        "simulated clinicians review every 1-4 h plus escalation, so a step's doses respond to events inside "
        "the step, which no cohort state can hold (within-step confounding: withheld drugs mark patients who "
        "stayed stable). at-steps: the same clinicians review only at the cohort's decision times (no "
        "within-step confounding; they still read the latest charted values and their own history). "
        "markov: the reference clinician model acts, sampling a dose level from pi_b(a | s) on the cohort "
        "state at each decision time (the textbook OPE assumptions: no confounding by anything outside the "
        "state), and its closed-loop value is the clinician's truth.")
    spec_path: str = Field(DEFAULT_SPEC, description="Discrete cohort spec (YAML) the study spec derives from.")
    replicates: int = Field(200, ge=1, description="Independent simulated data sets R.")
    patients: int = Field(1000, ge=20, description="Simulated patients N per data set (one stay each).")
    policies: tuple[str, ...] = Field(DEFAULT_CANDIDATES, min_length=1, description="Candidates: clinician, "
                                      "no-treatment, random, fluids-only, early-vasopressor, bc, cql, cql-kl "
                                      "or a protocol YAML path. The clinician is always evaluated.")
    seed: int = Field(0, ge=0, description="Master seed: data sets, policy training, truth, bootstrap.")
    test_share: float = Field(0.5, gt=0, lt=1, description="Share of each data set's patients evaluated "
                              "(the rest fit the clinician model and the Q-model).")
    training_patients: int = Field(4000, ge=100, description="Patients of the separate policy-training data set.")
    learner_updates: int = Field(3000, ge=1, description="Gradient updates of each learned candidate.")
    truth_episodes: int = Field(20000, ge=100, description="Closed-loop episodes per candidate for its truth.")
    truth_chunk: int = Field(5000, ge=100, description="Episodes per closed-loop run (memory bound).")
    behavior: BehaviorConfig = Field(FAST_BEHAVIOR, description="Clinician model refitted per replicate.")
    reference_behavior: BehaviorConfig = Field(REFERENCE_BEHAVIOR, description="Clinician model of the "
                                               "policy-training data (support masks; softening in the truth).")
    dynamics: DynamicsConfig | None = Field(FAST_DYNAMICS, description="Ensemble per replicate for the "
                                            "model-based estimate; None skips it.")
    ope: OPEConfig = Field(FAST_OPE, description="OPE settings; the seed is replaced per replicate.")
    subgroups: SubgroupDefinition = Field(SubgroupDefinition(), description="Subgroups the gate checks.")
    gate: GateConfig = Field(STUDY_GATE, description="Pre-registered gate applied to every candidate.")

    @field_validator("policies")
    @classmethod
    def _distinct(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError(f"policies must be distinct, got {list(v)}")
        return v if "clinician" in v else ("clinician", *v)

    @property
    def candidates(self) -> tuple[str, ...]:
        """Every evaluated candidate, the clinician first."""
        return ("clinician", *[p for p in self.policies if p != "clinician"])

    def _dump(self, truths_as_set: bool = False) -> dict:
        """The settings as JSON, without the fields added later while they hold their original
        behaviour (`usual_care` hourly, `ope.adjust_for_history` off,
        `ope.fqe.clip_to_value_bounds` off, no `ope.sensitivity_lambdas`, no `gate.confounding_lambda`,
        `ope.fqe_interval` bootstrap, `ope.fqe.schedule` iterative, `ope.fqe.lr_schedule` constant,
        `ope.fqe.function_class` network, no `ope.fqe.steps_per_iteration`, no `ope.fqe.prior_spread`, `ope.fqe.prior_where` everywhere), so that folders made before
        those fields existed keep their fingerprint and resume."""
        raw = self.model_dump(mode="json", exclude={"replicates"})
        if raw["usual_care"] == "hourly":
            del raw["usual_care"]
        if not raw["ope"].get("adjust_for_history", False):
            raw["ope"].pop("adjust_for_history", None)
        if not raw["ope"]["fqe"].get("clip_to_value_bounds", False):
            raw["ope"]["fqe"].pop("clip_to_value_bounds", None)
        if not raw["ope"].get("sensitivity_lambdas"):
            raw["ope"].pop("sensitivity_lambdas", None)
        if raw["gate"].get("confounding_lambda") is None:
            raw["gate"].pop("confounding_lambda", None)
        if raw["ope"].get("fqe_interval", "bootstrap") == "bootstrap":
            raw["ope"].pop("fqe_interval", None)
        if raw["ope"]["fqe"].get("lr_schedule", "constant") == "constant":
            raw["ope"]["fqe"].pop("lr_schedule", None)
        if raw["ope"]["fqe"].get("steps_per_iteration") is None:
            raw["ope"]["fqe"].pop("steps_per_iteration", None)
        if not raw["ope"]["fqe"].get("prior_spread", 0.0):
            raw["ope"]["fqe"].pop("prior_spread", None)
        if raw["ope"]["fqe"].get("prior_where", "everywhere") == "everywhere":
            raw["ope"]["fqe"].pop("prior_where", None)
        if raw["ope"]["fqe"].get("function_class", "network") == "network":  # the penalties: linear only
            for name in ("function_class", "shared_penalty", "action_penalty"):
                raw["ope"]["fqe"].pop(name, None)
        if raw["ope"]["fqe"].get("schedule", "iterative") == "iterative":  # steps_per_stage: backward only
            raw["ope"]["fqe"].pop("schedule", None)
            raw["ope"]["fqe"].pop("steps_per_stage", None)
        # The truth's precision decides no replicate (truths are cached by their own key), so the dump
        # holds the defaults: a study can be re-summarised against more precise truths.
        if not truths_as_set:
            for name in ("truth_episodes", "truth_chunk"):
                raw[name] = type(self).model_fields[name].default
        return raw

    def fingerprint(self) -> str:
        """sha256 of what determines each replicate's results (not R, the job count or the truths'
        episodes)."""
        return sha256_json(self._dump())

    def accepted_fingerprints(self) -> set[str]:
        """`fingerprint()` and the one folders made before the twelfth session carry when they were
        run with other truth episodes than the defaults (it hashed them): both resume."""
        return {self.fingerprint(), sha256_json(self._dump(truths_as_set=True))}

    def reference_fingerprint(self, spec_sha256: str) -> str:
        """sha256 of what determines the policy-training data, the study spec and the learned policies."""
        keep = {"simulator", "seed", "test_share", "training_patients", "learner_updates", "reference_behavior"}
        raw = self.model_dump(mode="json", include=keep)
        if self.usual_care == "at-steps":  # other clinicians in the policy-training data; markov uses hourly's
            raw["usual_care"] = self.usual_care
        return sha256_json({"spec": spec_sha256, **raw})

    def simulator_settings(self, step_hours: float) -> SepsisConfig:
        """The simulator this study draws from; `step_hours`: the cohort's decision step."""
        return simulator_config(self.usual_care, step_hours)


def simulator_config(usual_care: str = "hourly", step_hours: float = 4.0) -> SepsisConfig:
    """The simulator's calibrated default without readmissions (the closed loop's population);
    with `usual_care="at-steps"` the clinicians review only every `step_hours` from admission
    ("markov" simulates as "hourly": there the clinicians only act after the cohort window).

    >>> simulator_config("at-steps", 4.0).clinician.review_at_steps_h, simulator_config().clinician.review_at_steps_h
    (4, None)
    """
    base = SepsisConfig()
    update: dict = {"population": base.population.model_copy(update={"readmission_share": 0.0})}
    if usual_care == "at-steps":
        if step_hours != int(step_hours):
            raise ValueError(f"usual_care='at-steps' needs whole-hour decision steps, got {step_hours} h")
        update["clinician"] = base.clinician.model_copy(update={"review_at_steps_h": int(step_hours)})
    elif usual_care not in ("hourly", "markov"):
        raise ValueError(f"usual_care must be 'hourly', 'at-steps' or 'markov', got {usual_care!r}")
    return base.model_copy(update=update)


def derive_seed(seed: int, *keys: int) -> int:
    """An independent non-negative 31-bit seed for the stream `keys` of the master `seed`.

    >>> derive_seed(0, 2, 5) == derive_seed(0, 2, 5) != derive_seed(0, 2, 6)
    True
    """
    state = np.random.SeedSequence(entropy=seed, spawn_key=tuple(keys)).generate_state(1)[0]
    return int(state) & 0x7FFFFFFF


#: stream keys of `derive_seed`
TRAINING_STREAM, TRUTH_STREAM, REPLICATE_STREAM = 0, 1, 2
