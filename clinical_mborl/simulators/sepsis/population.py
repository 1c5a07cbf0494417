"""Who is admitted: demographics and latent physiology parameters, one array entry per stay.

Three latent haemodynamic phenotypes (after the echocardiographic clusters of Geri et al.,
Intensive Care Med 2019) decide what treatment helps:

- 0 hypovolaemic: low intravascular volume, steep Frank-Starling curve -> fluids help;
- 1 vasoplegic: near-normal volume, deep loss of vascular tone -> early vasopressors help;
- 2 cardiodepressed: poor contractility, early Starling plateau -> fluid mostly leaks and harms.

The type is never charted; it shows only partly through MAP, heart rate, lactate, urine output
and SpO2 and through how the patient answers a fluid bolus.

>>> import numpy as np
>>> p = draw_patients(5, np.random.default_rng(0), PopulationConfig())
>>> p.n, bool((p.weight_kg > 30).all())
(5, True)
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from clinical_mborl.simulators.sepsis.config import PhysiologyConfig, PopulationConfig

PHENOTYPES = ("hypovolaemic", "vasoplegic", "cardiodepressed")


@dataclass
class Patients:
    """Per-stay constants (arrays of length n)."""

    age: np.ndarray
    female: np.ndarray  # bool
    weight_kg: np.ndarray  # true weight (physiology)
    weight_recorded: np.ndarray  # NaN where missing in the stays table
    comorbidity: np.ndarray  # 0..1 index
    phenotype: np.ndarray  # int 0..2
    severity: np.ndarray  # S0
    resolution_rate: np.ndarray  # per h
    volume0: np.ndarray  # initial V (fraction of normal blood volume)
    cardiac: np.ndarray  # C_base
    starling_k: np.ndarray
    leak_depth: np.ndarray
    vasoplegia: np.ndarray
    pressor_sensitivity: np.ndarray
    kidney_base: np.ndarray  # baseline GFR fraction
    creatinine_normal: np.ndarray  # mg/dL at K = 1
    map_normal: np.ndarray
    hr_base: np.ndarray
    lung_susceptibility: np.ndarray
    vulnerability: np.ndarray  # organ-injury multiplier
    fever_sign: np.ndarray  # +1 febrile, -1 hypothermic
    wbc_base: np.ndarray
    platelets_base: np.ndarray
    bilirubin_base: np.ndarray
    liver_weight: np.ndarray
    readmission_of: np.ndarray  # earlier stay of the same patient, or -1
    readmission_gap_days: np.ndarray  # days from the earlier stay's discharge to this admission

    @property
    def n(self) -> int:
        return int(self.age.shape[0])

    def subset(self, idx: np.ndarray) -> Patients:
        """The patients at `idx` (used by the per-patient reference loop)."""
        return Patients(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})


def draw_patients(
    n: int, rng: np.random.Generator, cfg: PopulationConfig, phys: PhysiologyConfig | None = None
) -> Patients:
    """Draw `n` independent stays from the population model (vectorised)."""
    phys = phys or PhysiologyConfig()
    age = np.clip(rng.normal(cfg.age_mean, cfg.age_sd, n), 18.0, 95.0)
    female = rng.random(n) < cfg.female_share
    median_w = np.where(female, cfg.weight_median_kg[0], cfg.weight_median_kg[1])
    weight = np.clip(median_w * np.exp(rng.normal(0.0, cfg.weight_log_sd, n)), 38.0, 200.0)
    weight = np.round(weight, 1)
    partner, gap_days = _pair_readmissions(n, rng, cfg.readmission_share)
    later = np.flatnonzero(partner >= 0)
    female[later] = female[partner[later]]
    age[later] = np.clip(age[partner[later]] + gap_days[later] / 365.25, 18.0, 96.0)
    weight[later] = np.round(weight[partner[later]] * np.exp(rng.normal(0.0, 0.04, later.size)), 1)
    recorded = np.where(rng.random(n) < cfg.weight_missing_share, np.nan, weight)
    # Comorbidity rises with age (Charlson-like index scaled to 0..1).
    comorbidity = np.clip(rng.beta(1.6, 4.0, n) + 0.004 * (age - 64.0), 0.0, 1.0)
    phenotype = rng.choice(3, size=n, p=np.asarray(cfg.phenotype_shares) / sum(cfg.phenotype_shares))
    severity = np.exp(rng.normal(cfg.severity_log_mean, cfg.severity_log_sd, n))
    severity *= np.array([1.0, 1.1, 1.0])[phenotype]
    rate = cfg.resolution_rate_per_h * np.exp(rng.normal(0.0, cfg.resolution_log_sd, n))
    rate = np.where(rng.random(n) < cfg.non_resolving_share, cfg.non_resolving_rate, rate)
    u = rng.random(n)
    volume0 = np.select(
        [phenotype == 0, phenotype == 1],
        [0.58 + 0.2 * u, 0.8 + 0.15 * u],
        0.9 + 0.15 * u,
    )
    cardiac = np.where(phenotype == 2, rng.uniform(0.62, 0.85, n), np.clip(rng.normal(1.0, 0.08, n), 0.75, 1.2))
    starling_k = np.asarray(phys.starling_k)[phenotype] * np.exp(rng.normal(0.0, 0.08, n))
    leak_depth = np.asarray(phys.leak_depth)[phenotype] * np.exp(rng.normal(0.0, 0.15, n))
    vasoplegia = np.clip(np.asarray(phys.vasoplegia)[phenotype] * np.exp(rng.normal(0.0, 0.2, n)), 0.05, 0.7)
    sensitivity = np.exp(rng.normal(0.0, 0.35, n))
    ckd = rng.random(n) < cfg.ckd_share + 0.2 * comorbidity
    kidney_base = np.where(ckd, rng.uniform(0.35, 0.65, n), 1.0)
    creat_norm = np.where(female, 0.75, 0.95) * np.exp(rng.normal(0.0, 0.1, n))
    hypertensive = rng.random(n) < cfg.hypertension_share
    map_normal = phys.map_normal + 8.0 * hypertensive + rng.normal(0.0, 4.0, n)
    return Patients(
        age=age,
        female=female,
        weight_kg=weight,
        weight_recorded=recorded,
        comorbidity=comorbidity,
        phenotype=phenotype.astype(np.int64),
        severity=severity,
        resolution_rate=rate,
        volume0=volume0,
        cardiac=cardiac,
        starling_k=starling_k,
        leak_depth=leak_depth,
        vasoplegia=vasoplegia,
        pressor_sensitivity=sensitivity,
        kidney_base=kidney_base,
        creatinine_normal=creat_norm,
        map_normal=map_normal,
        hr_base=rng.normal(82.0, 8.0, n),
        lung_susceptibility=np.exp(rng.normal(0.0, 0.45, n)),
        vulnerability=np.clip(1.0 + comorbidity + (age - 64.0) / 40.0, 0.5, 3.0),
        fever_sign=np.where(rng.random(n) < cfg.hypothermic_share, -1.0, 1.0),
        wbc_base=np.exp(rng.normal(np.log(8.0), 0.25, n)) * np.where(rng.random(n) < 0.08, 0.25, 1.0),
        platelets_base=np.exp(rng.normal(np.log(240.0), 0.3, n)),
        bilirubin_base=np.exp(rng.normal(np.log(0.6), 0.3, n)),
        liver_weight=np.exp(rng.normal(0.0, 0.4, n)),
        readmission_of=partner,
        readmission_gap_days=gap_days,
    )


def _pair_readmissions(n: int, rng: np.random.Generator, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Make a `share` of stays later stays of another stay's patient: (earlier index or -1, gap days).

    The later stay copies sex, ages by the gap and keeps a similar weight. Pairs whose earlier
    stay ends in death are dissolved when the tables are written (no one is readmitted dead).
    """
    partner = np.full(n, -1, dtype=np.int64)
    gap_days = np.zeros(n)
    k = int(round(share * n))
    if k == 0 or n < 2 * k:
        return partner, gap_days
    chosen = rng.permutation(n)[: 2 * k]
    partner[chosen[:k]] = chosen[k:]
    gap_days[chosen[:k]] = rng.uniform(60.0, 700.0, k)
    return partner, gap_days

