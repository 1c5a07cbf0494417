"""Typed configuration of the sepsis simulator: every number the model uses lives here.

Each field's description gives the equation it enters and where its shape comes from; the
equations themselves are in `physiology.py` and `docs/simulator.md`. `SepsisConfig()` is the
calibrated default (clinician mortality about 25%, see the plausibility table).

>>> cfg = SepsisConfig()
>>> cfg.physiology.pressor_ec50
0.15
"""

from __future__ import annotations

from pydantic import Field

from clinical_mborl.core.models import StrictModel


class PopulationConfig(StrictModel):
    """Who is admitted: demographics and the latent patient types."""

    age_mean: float = Field(64.0, description="Age ~ N(mean, sd) clipped to [18, 95] (SOAP median 64 y).")
    age_sd: float = Field(16.0, gt=0)
    female_share: float = Field(0.42, ge=0, le=1, description="Rhee 2017: 42.4% women.")
    weight_median_kg: tuple[float, float] = Field(
        (72.0, 84.0), description="Median weight (female, male); weight ~ lognormal(log median, sd)."
    )
    weight_log_sd: float = Field(0.22, gt=0)
    weight_missing_share: float = Field(0.03, ge=0, le=1, description="Share of stays without weight_kg.")
    phenotype_shares: tuple[float, float, float] = Field(
        (0.45, 0.35, 0.20),
        description="Latent haemodynamic type: hypovolaemic (fluid-responsive), vasoplegic, "
        "cardiodepressed (fluid-unresponsive); after Geri et al. 2019 cardiovascular clusters.",
    )
    severity_log_mean: float = Field(-0.6, description="Inflammation S0 ~ lognormal(mean, sd).")
    severity_log_sd: float = Field(0.55, gt=0)
    resolution_rate_per_h: float = Field(
        0.03, gt=0, description="Median rate r of dS/dt = -r S once antibiotics run (half-life ~23 h)."
    )
    resolution_log_sd: float = Field(0.5, gt=0)
    non_resolving_share: float = Field(
        0.08, ge=0, le=1, description="Share with uncontrolled source: r = non_resolving_rate."
    )
    non_resolving_rate: float = Field(0.004, gt=0)
    ckd_share: float = Field(0.15, ge=0, le=1, description="Chronic kidney disease: baseline GFR 0.35-0.65.")
    hypertension_share: float = Field(0.45, ge=0, le=1, description="Baseline MAP +8 mmHg.")
    hypothermic_share: float = Field(0.12, ge=0, le=1, description="Respond to sepsis with hypothermia.")
    readmission_share: float = Field(
        0.02, ge=0, le=0.2, description="Share of surviving stays re-used as a later stay of another patient."
    )


class PhysiologyConfig(StrictModel):
    """Haemodynamics, fluid compartments, organs (see physiology.py for the equations)."""

    blood_volume_ml_per_kg: float = Field(70.0, description="BV = 70 mL/kg; V is volume / BV.")
    map_normal: float = Field(90.0, description="MAP = map_normal * CO_rel * SVR_rel (Ohm's law).")
    starling_k: tuple[float, float, float] = Field(
        (0.65, 0.55, 0.32),
        description="Frank-Starling half-saturation K per phenotype: SV ~ V^2/(V^2+K^2)(1+K^2); "
        "a small K means an early plateau (fluid-unresponsive).",
    )
    cardiac_depression: float = Field(0.15, description="C = C_base (1 - cd S): septic cardiomyopathy.")
    leak_depth: tuple[float, float, float] = Field(
        (0.22, 0.15, 0.12), description="Leak equilibrium V_eq = 1 - depth * S, per phenotype."
    )
    leak_rate: tuple[float, float] = Field(
        (0.05, 0.35), description="k_perm = a + b S per hour: relaxation of V above V_eq into the tissue."
    )
    refill_rate: float = Field(0.08, description="Transcapillary refill (per h) toward V_eq from tissue fluid.")
    colloid_factor: float = Field(1.4, description="Albumin expands 1.4x crystalloid (SAFE 2004).")
    vasoplegia: tuple[float, float, float] = Field(
        (0.22, 0.5, 0.28), description="Tone T = 1 - a min(S, 1.5) per phenotype (vasoplegia depth)."
    )
    pressor_emax: float = Field(0.9, description="Emax of the norepinephrine-equivalent SVR response.")
    pressor_ec50: float = Field(0.15, description="EC50 (ug/kg/min NE-eq) of the Emax model (Hill).")
    pressor_hill: float = Field(1.3, description="Hill coefficient of the vasopressor dose-response.")
    pressor_acidosis: float = Field(0.08, description="Sensitivity / (1 + a (lactate - 4)+): acidosis blunts pressors.")
    afterload_penalty: float = Field(0.35, description="CO / (1 + p (SVR-1)+ (1-C_base)): weak hearts lose output.")
    autoreg_map: tuple[float, float] = Field(
        (55.0, 4.0), description="Organ perfusion factor logistic((MAP - m) / s): autoregulation."
    )
    hypoperfusion_threshold: float = Field(0.85, description="H = max(0, 1 - P / threshold).")
    vasoconstriction_penalty: float = Field(
        1.0, description="P / (1 + c (SVR - 1.1)+): vasoconstriction beyond need lowers splanchnic flow.")
    lactate_clearance: float = Field(0.3, description="k_cl per h; dL = prod - k_cl L (hepatic).")
    lactate_production: tuple[float, float, float] = Field(
        (0.3, 0.15, 3.0), description="prod = a + b S + c H (mmol/L/h), plus beta-agonist and ischaemia terms."
    )
    epinephrine_lactate: float = Field(1.5, description="Extra lactate production per ug/kg/min epinephrine.")
    kidney_injury: tuple[float, float, float] = Field(
        (0.05, 0.008, 0.004),
        description="dK = -(a H + b (FO% - 5)+ + c S) + recovery: hypoperfusion, congestion, inflammation.",
    )
    kidney_recovery: float = Field(0.01, description="Per h recovery toward baseline when perfused.")
    creatinine_tau_h: float = Field(16.0, description="Cr relaxes to Cr_base/K with this time constant.")
    organ_injury: tuple[float, float, float, float] = Field(
        (0.1, 0.012, 0.012, 0.25),
        description="dD = vul (a H + b (FO% - 8)+ + c S) + d ischaemia - recovery.",
    )
    organ_recovery: float = Field(0.03, description="Per h recovery of D when perfused.")
    ischaemia_threshold: float = Field(0.5, description="NE-eq dose above which digital/mesenteric ischaemia grows.")
    arrhythmia_base: float = Field(0.0015, description="Per-h new arrhythmia probability at no catecholamine.")
    arrhythmia_threshold: float = Field(0.1, description="Adrenergic load (NE-eq) above which risk rises.")
    arrhythmia_slope: float = Field(0.04, description="+ slope * (adrenergic dose - threshold)+^1.5 per h.")
    arrhythmia_hours: float = Field(6.0, description="Mean duration; C x 0.7, HR + 30 while it lasts.")
    lung_overload: float = Field(0.08, description="Lung index += a (FO% - 3)+: oedema lowers PaO2.")
    lung_inflammation: float = Field(0.35, description="Lung index += susceptibility * b * S.")
    noise_map: float = Field(0.04, description="OU noise (relative sd) on MAP, autocorrelation 0.7 per h.")
    noise_inflammation: float = Field(0.04, description="Log-S random walk sd per h.")


class OutcomeConfig(StrictModel):
    """Death and discharge."""

    hazard_intercept: float = Field(-8.9, description="log h/h = b0 + b_sofa SOFA + ... (Cox-like).")
    hazard_sofa: float = Field(0.36, description="Per SOFA point (continuous SOFA from true values).")
    hazard_hypotension: float = Field(0.09, description="Per mmHg of MAP below 65 (Maheshwari 2018).")
    hazard_profound: float = Field(0.15, description="Extra per mmHg of MAP below 55 (refractory shock).")
    hazard_lactate: float = Field(0.35, description="Per unit log(lactate / 2)+.")
    hazard_age: float = Field(0.025, description="Per year of age above 65.")
    hazard_comorbidity: float = Field(0.8, description="Per unit comorbidity index (0..1).")
    hazard_arrhythmia: float = Field(1.2, description="While an arrhythmia lasts.")
    hazard_overload: float = Field(0.04, description="Per % fluid overload above 10% (Bouchard 2009).")
    stable_hours: int = Field(24, description="Hours meeting stability criteria before discharge may occur.")
    discharge_rate: float = Field(0.08, description="Per-h discharge probability once stable long enough.")
    min_stay_hours: int = Field(12, description="No discharge earlier.")
    max_stay_hours: int = Field(720, description="Stays end (discharge alive) at this cap (30 days).")
    post_icu_death: tuple[float, float, float] = Field(
        (-4.6, 0.35, 1.5),
        description="In-hospital death after ICU discharge: logit p = a + b SOFA + c comorbidity.",
    )


class MeasurementConfig(StrictModel):
    """Charting process: frequencies, noise, units, duplicates."""

    vital_probability: dict[str, float] = Field(
        default_factory=lambda: {"map": 0.92, "heart_rate": 0.93, "spo2": 0.9, "resp_rate": 0.8,
                                 "temperature": 0.28, "gcs": 0.22, "urine_output": 0.85},
        description="Per-hour probability a vital is charted (urine: volume since last charting).",
    )
    vital_noise: dict[str, float] = Field(
        default_factory=lambda: {"map": 4.0, "heart_rate": 4.0, "spo2": 1.2, "resp_rate": 2.0,
                                 "temperature": 0.25, "gcs": 0.7, "urine_output": 0.06},
        description="Additive sd (urine: relative sd).",
    )
    lab_noise: dict[str, float] = Field(
        default_factory=lambda: {"lactate": 0.07, "creatinine": 0.05, "bilirubin": 0.08,
                                 "platelets": 0.07, "wbc": 0.08},
        description="Relative (log-normal) sd of lab values (analytical + biological variation).",
    )
    lab_intervals_h: tuple[int, ...] = Field((6, 8, 12, 24), description="Routine lab interval per stay.")
    lactate_repeat_h: tuple[int, int] = Field((2, 5), description="Repeat lactate while > 2 mmol/L.")
    lab_result_delay_h: int = Field(1, description="Hours before the clinician sees a lab result.")
    fahrenheit_share: float = Field(0.15, description="Temperature rows in degF.")
    lactate_mgdl_share: float = Field(0.10, description="Stays whose lab reports lactate in mg/dL.")
    creatinine_umol_share: float = Field(0.10, description="Stays whose lab reports creatinine in umol/L.")
    duplicate_share: float = Field(0.005, description="Share of measurement rows duplicated exactly.")
    artefact_share: float = Field(0.001, description="MAP/HR rows replaced by transducer artefacts (0 or 300).")
    pre_admission_minutes: tuple[int, int] = Field((15, 150), description="Admission panel charted before admit.")


class ClinicianConfig(StrictModel):
    """Usual care: a protocol with per-stay style (see clinician.py for its documented weaknesses)."""

    review_every_h: tuple[int, ...] = Field((1, 2, 3, 4), description="Reassessment interval choices.")
    review_probs: tuple[float, ...] = Field((0.3, 0.35, 0.2, 0.15))
    review_at_steps_h: int | None = Field(
        None, ge=1, description="None (calibrated usual care): reviews every `review_every_h` from a per-stay "
        "phase, plus escalation between reviews, so the doses of a cohort's 4-hour step respond to what "
        "happens inside it. k: reviews only at hours 0, k, 2k, ... (a cohort's decision times with "
        "step_hours = k), without escalation in between: a counterfactual arm in which the step's "
        "doses depend only on what was charted before the step.",
    )
    map_target: tuple[float, float] = Field((60.0, 70.0), description="MAP target ~ U(lo, hi).")
    bolus_ml: tuple[float, ...] = Field((250.0, 500.0, 1000.0))
    bolus_probs: tuple[float, ...] = Field((0.1, 0.55, 0.35))
    boluses_before_pressor: tuple[int, ...] = Field(
        (1, 2, 3, 4, 5), description="Weakness: vasopressors only after this many boluses (late start)."
    )
    boluses_before_pressor_probs: tuple[float, ...] = Field((0.15, 0.3, 0.3, 0.15, 0.1))
    pressor_start: tuple[float, ...] = Field((0.02, 0.04, 0.06, 0.1), description="Start dose, ug/kg/min.")
    pressor_step: tuple[float, float] = Field((1.2, 1.6), description="Titration factor per review ~ U.")
    pressor_max: tuple[float, ...] = Field((0.3, 0.5, 0.8, 1.2), description="Ceiling (> 0.5 is toxic).")
    pressor_max_probs: tuple[float, ...] = Field((0.3, 0.35, 0.25, 0.1))
    act_probability: tuple[float, float] = Field((0.6, 0.95), description="P(act on an indication) ~ U.")
    overload_aware_share: float = Field(0.35, description="Stop fluid when SpO2 < 92 or > 50 mL/kg given.")
    lactate_driven_share: float = Field(0.6, description="Bolus for lactate > 4 even at target MAP.")
    oliguria_driven_share: float = Field(0.5, description="Bolus for urine < 0.5 mL/kg/h.")
    fluid_hard_cap_ml_per_kg: float = Field(110.0, description="Everyone stops fluid boluses beyond this.")
    maintenance_ml_h: tuple[float, ...] = Field((0.0, 75.0, 100.0, 125.0, 150.0))
    colloid_user_share: float = Field(0.3, description="Clinicians who give albumin for some boluses.")
    primary_agent_probs: tuple[float, float, float] = Field(
        (0.9, 0.05, 0.05), description="First vasopressor: norepinephrine, dopamine, phenylephrine."
    )
    second_agent_probs: tuple[float, float, float] = Field(
        (0.55, 0.33, 0.12), description="Add-on above 0.25 NE-eq: none, vasopressin, epinephrine."
    )
    ug_min_share: float = Field(0.25, description="Clinicians charting norepinephrine in ug/min.")


class SepsisConfig(StrictModel):
    """All simulator settings; `SepsisConfig()` is the calibrated default."""

    population: PopulationConfig = PopulationConfig()
    physiology: PhysiologyConfig = PhysiologyConfig()
    outcome: OutcomeConfig = OutcomeConfig()
    measurement: MeasurementConfig = MeasurementConfig()
    clinician: ClinicianConfig = ClinicianConfig()
    start_date: str = Field("2150-01-01", description="Admissions are spread over 3 years from this date.")


NE_EQUIVALENCE: dict[str, float] = {
    "norepinephrine": 1.0,
    "epinephrine": 1.0,
    "vasopressin": 2.5,
    "phenylephrine": 0.1,
    "dopamine": 0.01,
}
"""Norepinephrine-equivalent factors (per ug/kg/min; vasopressin per units/min), Goradia 2021."""
