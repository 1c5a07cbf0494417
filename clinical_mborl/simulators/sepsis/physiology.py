"""Latent physiology: one hourly step for all patients at once (numpy, no per-patient loop).

State per patient (see docs/simulator.md for every equation and its source):

- S inflammation, decays at the patient's resolution rate (antibiotics, source control);
- V intravascular volume as a fraction of normal blood volume (BV = 70 mL/kg);
- O tissue (interstitial) fluid excess in litres; FO% = 100 O / weight (Bouchard 2009);
- L lactate (mmol/L), K kidney function (GFR fraction), Cr creatinine (mg/dL);
- D non-renal organ injury (0 none .. ~4 multi-organ failure); arrhythmia hours remaining.

Haemodynamics (Guyton / Ohm's law with a baroreflex exponent):
    SV factor  f(V) = V^2 / (V^2 + K^2) (1 + K^2)               Frank-Starling, saturating
    CO_rel     = C f(V) / (1 + p (SVR - 1)+ (1 - C_base))        afterload hurts weak hearts
    SVR_rel    = 1 - a tanh(S) + Emax s d^h / (d^h + EC50^h)      vasoplegia + Emax pressor response
    MAP        = MAP_normal CO_rel^0.6 SVR_rel                    exponent 0.6: reflex vasoconstriction
    P          = sqrt(CO_rel) logistic((MAP - 55) / 4) SpO2/97 / (1 + c (SVR - 1.1)+)
    H          = (1 - P / 0.85)+        hypoperfusion; excess vasoconstriction lowers tissue flow

>>> import numpy as np
>>> from clinical_mborl.simulators.sepsis.config import SepsisConfig
>>> from clinical_mborl.simulators.sepsis.population import draw_patients
>>> cfg = SepsisConfig()
>>> p = draw_patients(3, np.random.default_rng(0), cfg.population, cfg.physiology)
>>> s = initial_state(p, cfg.physiology, np.random.default_rng(1))
>>> bool((observe(s, p, HourDoses.zeros(3), cfg.physiology).map > 0).all())
True
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from clinical_mborl.simulators.sepsis.config import OutcomeConfig, PhysiologyConfig
from clinical_mborl.simulators.sepsis.population import Patients

MAP_EXPONENT = 0.6


@dataclass
class PhysState:
    """Latent state arrays (length n)."""

    inflammation: np.ndarray
    volume: np.ndarray
    tissue_fluid_l: np.ndarray
    lactate: np.ndarray
    kidney: np.ndarray
    creatinine: np.ndarray
    injury: np.ndarray
    arrhythmia_h: np.ndarray
    map_noise: np.ndarray

    def copy(self) -> PhysState:
        return PhysState(**{f.name: getattr(self, f.name).copy() for f in fields(self)})

    def subset(self, idx: np.ndarray) -> PhysState:
        return PhysState(**{f.name: getattr(self, f.name)[idx].copy() for f in fields(self)})


@dataclass
class HourDoses:
    """What ran during one hour, per patient (hour means for infusions)."""

    crystalloid_ml: np.ndarray
    colloid_ml: np.ndarray
    ne_eq: np.ndarray  # total norepinephrine-equivalent, ug/kg/min
    adrenergic: np.ndarray  # beta-adrenergic load (NE + 1.5 epi + 2 dopamine-eq), drives arrhythmia
    epinephrine: np.ndarray  # ug/kg/min, raises lactate (beta-2)

    @classmethod
    def zeros(cls, n: int) -> HourDoses:
        return cls(*(np.zeros(n) for _ in range(5)))


@dataclass
class Observables:
    """Noise-free clinical values derived from the latent state."""

    map: np.ndarray
    heart_rate: np.ndarray
    spo2: np.ndarray
    resp_rate: np.ndarray
    temperature: np.ndarray
    gcs: np.ndarray
    urine_ml_h: np.ndarray
    lactate: np.ndarray
    creatinine: np.ndarray
    bilirubin: np.ndarray
    platelets: np.ndarray
    wbc: np.ndarray
    pf_ratio: np.ndarray
    cardiac_output: np.ndarray
    hypoperfusion: np.ndarray
    fluid_overload_pct: np.ndarray


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def initial_state(p: Patients, cfg: PhysiologyConfig, rng: np.random.Generator) -> PhysState:
    """State at sepsis onset: hours of untreated sepsis have already raised lactate and injury."""
    n = p.n
    s = p.severity
    kidney = p.kidney_base * (1.0 - 0.3 * np.tanh(s) * rng.uniform(0.3, 1.0, n))
    creat = p.creatinine_normal / p.kidney_base
    creat = creat + 0.5 * (p.creatinine_normal / kidney - creat)
    state = PhysState(
        inflammation=s.copy(),
        volume=p.volume0.copy(),
        tissue_fluid_l=rng.uniform(0.0, 1.0, n),
        lactate=np.ones(n),
        kidney=kidney,
        creatinine=creat,
        injury=0.5 * np.tanh(s) * p.vulnerability * rng.uniform(0.4, 1.4, n),
        arrhythmia_h=np.zeros(n),
        map_noise=rng.normal(0.0, cfg.noise_map, n),
    )
    obs = observe(state, p, HourDoses.zeros(n), cfg)
    l_ss = _lactate_production(state, obs.hypoperfusion, HourDoses.zeros(n), cfg) / _lactate_clearance(state, p, cfg)
    state.lactate = 1.0 + rng.uniform(0.4, 0.8, n) * np.clip(l_ss - 1.0, 0.0, None)
    return state


def haemodynamics(
    state: PhysState, p: Patients, ne_eq: np.ndarray, cfg: PhysiologyConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(MAP mmHg, CO relative to normal, SVR relative to normal) for the given NE-eq dose."""
    s = np.tanh(state.inflammation)
    contract = p.cardiac * (1.0 - cfg.cardiac_depression * s) * np.where(state.arrhythmia_h > 0, 0.7, 1.0)
    v2 = state.volume**2
    k2 = p.starling_k**2
    stroke = v2 / (v2 + k2) * (1.0 + k2)
    sens = p.pressor_sensitivity / (1.0 + cfg.pressor_acidosis * np.clip(state.lactate - 4.0, 0.0, None))
    d = np.clip(ne_eq, 0.0, None) ** cfg.pressor_hill
    effect = cfg.pressor_emax * sens * d / (d + cfg.pressor_ec50**cfg.pressor_hill)
    svr = 1.0 - p.vasoplegia * s + effect
    co = contract * stroke / (1.0 + cfg.afterload_penalty * np.clip(svr - 1.0, 0.0, None)
                              * np.clip(1.0 - p.cardiac, 0.0, None))
    mean_ap = p.map_normal * co**MAP_EXPONENT * svr * np.exp(state.map_noise)
    return np.clip(mean_ap, 15.0, 200.0), co, svr


def _lung_index(state: PhysState, p: Patients, fo_pct: np.ndarray, cfg: PhysiologyConfig) -> np.ndarray:
    return (cfg.lung_inflammation * p.lung_susceptibility * np.tanh(state.inflammation)
            + cfg.lung_overload * np.clip(fo_pct - 3.0, 0.0, None) + 0.12 * state.injury)


def severinghaus_spo2(pao2: np.ndarray) -> np.ndarray:
    """Oxygen saturation (%) from PaO2 (mmHg), Severinghaus 1979."""
    return 100.0 / (1.0 + 23400.0 / (pao2**3 + 150.0 * pao2))


def observe(state: PhysState, p: Patients, doses: HourDoses, cfg: PhysiologyConfig) -> Observables:
    """Noise-free vitals and labs implied by the state while `doses` run."""
    mean_ap, co, svr = haemodynamics(state, p, doses.ne_eq, cfg)
    s = np.tanh(state.inflammation)
    fo_pct = 100.0 * state.tissue_fluid_l / p.weight_kg
    lung = _lung_index(state, p, fo_pct, cfg)
    spo2 = severinghaus_spo2(105.0 * np.exp(-lung))
    m0, ms = cfg.autoreg_map
    constriction = 1.0 + cfg.vasoconstriction_penalty * np.clip(svr - 1.1, 0.0, None)
    perfusion = np.sqrt(co) * _logistic((mean_ap - m0) / ms) * spo2 / 97.0 / constriction
    hypo = np.clip(1.0 - perfusion / cfg.hypoperfusion_threshold, 0.0, 1.0)
    temp = 37.0 + np.where(p.fever_sign > 0, 1.8, 1.2) * p.fever_sign * s
    arr = state.arrhythmia_h > 0
    hr = (p.hr_base + 0.7 * np.clip(75.0 - mean_ap, 0.0, None) + 12.0 * np.clip(temp - 37.0, 0.0, None)
          + 40.0 * np.clip(1.0 - state.volume, 0.0, None) + 25.0 * (1.0 - np.exp(-doses.adrenergic / 0.3))
          + 30.0 * arr)
    vol_factor = np.clip((state.volume - 0.5) / 0.45, 0.0, 1.3)
    urine = (p.weight_kg * 0.7 * np.clip(state.kidney, 0.0, None) ** 0.7 * _logistic((mean_ap - 60.0) / 5.0)
             * vol_factor * (1.0 - 0.6 * s)
             + 10.0 * state.kidney * (1.0 - s) * np.clip(state.tissue_fluid_l, 0.0, None))
    gcs = 15.0 - 2.0 * state.injury - 6.0 * (1.0 - _logistic((mean_ap - m0) / ms)) - s
    return Observables(
        map=mean_ap,
        heart_rate=np.clip(hr, 35.0, 200.0),
        spo2=spo2,
        resp_rate=np.clip(14.0 + 2.0 * np.clip(state.lactate - 1.5, 0.0, None) + 10.0 * lung + 4.0 * s, 8.0, 50.0),
        temperature=temp,
        gcs=np.clip(gcs, 3.0, 15.0),
        urine_ml_h=urine,
        lactate=state.lactate,
        creatinine=state.creatinine,
        bilirubin=p.bilirubin_base * np.exp(0.7 * state.injury * p.liver_weight),
        platelets=p.platelets_base * np.exp(-0.45 * s - 0.25 * state.injury),
        wbc=p.wbc_base * (1.0 + 1.3 * s),
        pf_ratio=470.0 * np.exp(-1.3 * lung),
        cardiac_output=co,
        hypoperfusion=hypo,
        fluid_overload_pct=fo_pct,
    )


def _lactate_production(state: PhysState, hypo: np.ndarray, doses: HourDoses, cfg: PhysiologyConfig) -> np.ndarray:
    a, b, c = cfg.lactate_production
    isch = np.clip(doses.ne_eq - cfg.ischaemia_threshold, 0.0, None)
    return a + b * np.tanh(state.inflammation) + c * hypo + cfg.epinephrine_lactate * doses.epinephrine + 2.0 * isch


def _lactate_clearance(state: PhysState, p: Patients, cfg: PhysiologyConfig) -> np.ndarray:
    return cfg.lactate_clearance / (1.0 + 0.5 * state.injury * p.liver_weight)


def organ_score(obs: Observables) -> np.ndarray:
    """Continuous SOFA-like score (0..24) from true values; cardiovascular part from MAP only.

    Piecewise-linear through the SOFA thresholds (Vincent 1996) so the hazard is smooth. The
    cardiovascular term uses MAP, not the vasopressor dose, so treating is never itself scored.
    """
    return (np.interp(obs.pf_ratio, [100, 200, 300, 400, 450], [4, 3, 2, 1, 0])
            + np.interp(obs.creatinine, [1.0, 1.2, 2.0, 3.5, 5.0], [0, 1, 2, 3, 4])
            + np.interp(obs.bilirubin, [1.0, 1.2, 2.0, 6.0, 12.0], [0, 1, 2, 3, 4])
            + np.interp(obs.platelets, [20, 50, 100, 150, 170], [4, 3, 2, 1, 0])
            + np.interp(obs.gcs, [5, 7.5, 11, 13.5, 15], [4, 3, 2, 1, 0])
            + np.interp(obs.map, [45, 55, 65, 70], [4, 3, 1, 0]))


def death_hazard(obs: Observables, state: PhysState, p: Patients, cfg: OutcomeConfig) -> np.ndarray:
    """Per-hour death probability: 1 - exp(-exp(linear predictor))."""
    lp = (cfg.hazard_intercept + cfg.hazard_sofa * organ_score(obs)
          + cfg.hazard_hypotension * np.clip(65.0 - obs.map, 0.0, None)
          + cfg.hazard_profound * np.clip(55.0 - obs.map, 0.0, None)
          + cfg.hazard_lactate * np.clip(np.log(obs.lactate / 2.0), 0.0, None)
          + cfg.hazard_age * np.clip(p.age - 65.0, 0.0, None)
          + cfg.hazard_comorbidity * p.comorbidity
          + cfg.hazard_arrhythmia * (state.arrhythmia_h > 0)
          + cfg.hazard_overload * np.clip(obs.fluid_overload_pct - 10.0, 0.0, None))
    return 1.0 - np.exp(-np.exp(lp))


def step(
    state: PhysState, p: Patients, doses: HourDoses, cfg: PhysiologyConfig, noise: np.ndarray
) -> tuple[PhysState, Observables]:
    """Advance one hour under `doses`; `noise` is [4, n]: two rows U(0,1) then two rows N(0,1).

    Returns the new state and the mid-hour observables (used for the hazard of this hour).
    """
    n = p.n
    bv_ml = cfg.blood_volume_ml_per_kg * p.weight_kg
    new = state.copy()
    # 1. Fluids enter the circulation (albumin expands more, SAFE 2004).
    new.volume = new.volume + (doses.crystalloid_ml + cfg.colloid_factor * doses.colloid_ml) / bv_ml
    mid = observe(new, p, doses, cfg)
    hypo = mid.hypoperfusion
    s = np.tanh(new.inflammation)
    # 2. Capillary leak above the equilibrium volume, refill below it (exact exponential relaxation).
    v_eq = 1.0 - p.leak_depth * new.inflammation
    k_perm = cfg.leak_rate[0] + cfg.leak_rate[1] * s
    above = new.volume > v_eq
    leaked = np.where(above, (new.volume - v_eq) * (1.0 - np.exp(-k_perm)), 0.0)
    available = np.clip(new.tissue_fluid_l, 0.0, None) * 1000.0 / bv_ml
    refill = np.where(above, 0.0, np.minimum((v_eq - new.volume) * (1.0 - np.exp(-cfg.refill_rate * (1 - 0.7 * s))),
                                             available))
    new.volume = new.volume - leaked + refill
    new.tissue_fluid_l = new.tissue_fluid_l + (leaked - refill) * bv_ml / 1000.0
    # 3. Urine (60% from the circulation) and insensible losses (35 mL/h, +10%/degC fever).
    new.volume = np.clip(new.volume - 0.6 * mid.urine_ml_h / bv_ml, 0.3, 2.0)
    insensible = 0.035 * (1.0 + 0.1 * np.clip(mid.temperature - 37.0, 0.0, None))
    new.tissue_fluid_l = np.clip(new.tissue_fluid_l - 0.4 * mid.urine_ml_h / 1000.0 - insensible, -1.5, 30.0)
    # 4. Lactate: production by hypoperfusion, inflammation, beta-2 agonism; hepatic clearance.
    k_cl = _lactate_clearance(new, p, cfg)
    l_ss = _lactate_production(new, hypo, doses, cfg) / k_cl
    new.lactate = np.clip(l_ss + (new.lactate - l_ss) * np.exp(-k_cl), 0.4, 25.0)
    # 5. Kidney: injured by hypoperfusion, venous congestion (FO%) and inflammation; slow recovery.
    ka, kb, kc = cfg.kidney_injury
    injury_k = (ka * hypo + kb * np.clip(mid.fluid_overload_pct - 5.0, 0.0, None) + kc * s) * new.kidney
    recover_k = cfg.kidney_recovery * (p.kidney_base - new.kidney) * (1.0 - hypo)
    new.kidney = np.clip(new.kidney - injury_k + recover_k, 0.05, p.kidney_base)
    target_cr = p.creatinine_normal / new.kidney
    new.creatinine = target_cr + (new.creatinine - target_cr) * np.exp(-1.0 / cfg.creatinine_tau_h)
    # 6. Organ injury: hypoperfusion, overload, inflammation, pressor ischaemia; recovery when perfused.
    da, db, dc, dd = cfg.organ_injury
    isch = np.clip(doses.ne_eq - cfg.ischaemia_threshold, 0.0, None)
    grow = p.vulnerability * (da * hypo + db * np.clip(mid.fluid_overload_pct - 8.0, 0.0, None) + dc * s) + dd * isch
    heal = cfg.organ_recovery * new.injury * (1.0 - hypo) * (1.0 - 0.5 * s)
    new.injury = np.clip(new.injury + grow - heal, 0.0, 8.0)
    # 7. Arrhythmia: new onset rises steeply with beta-adrenergic load (SOAP II: dopamine worse).
    p_arr = cfg.arrhythmia_base + cfg.arrhythmia_slope * np.clip(doses.adrenergic - cfg.arrhythmia_threshold,
                                                                  0.0, None) ** 1.5
    onset = (noise[0] < p_arr) & (new.arrhythmia_h <= 0)
    duration = np.ceil(-cfg.arrhythmia_hours * np.log(np.clip(noise[1], 1e-12, 1.0)))
    new.arrhythmia_h = np.where(onset, duration, np.clip(new.arrhythmia_h - 1.0, 0.0, None))
    # 8. Inflammation resolves (log random walk), MAP noise is an AR(1) process.
    new.inflammation = new.inflammation * np.exp(-p.resolution_rate + cfg.noise_inflammation * noise[2])
    new.map_noise = 0.7 * new.map_noise + np.sqrt(1 - 0.49) * cfg.noise_map * noise[3]
    assert new.volume.shape == (n,)
    return new, mid
