"""The plausibility table: simulated usual care beside published cohorts and trials.

Every figure is computed from the canonical tables the simulator writes (so it also checks the
tables), for all stays and for an "early septic shock" subgroup comparable with the ProCESS,
ARISE and ProMISe inclusion criteria (first MAP < 65 mmHg or first lactate >= 4 mmol/L).
Each row carries its published value, source and the acceptance band the check uses.

Run: `python -m clinical_mborl.simulators.sepsis.plausibility --patients 10000 --seed 0`

>>> from clinical_mborl.simulators.sepsis.simulate import run_simulation
>>> from clinical_mborl.simulators.sepsis.tables import build_tables
>>> rows = plausibility_rows(build_tables(run_simulation(200, seed=0)))
>>> rows[0].metric
'Hospital mortality'
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

import numpy as np
import polars as pl

from clinical_mborl.core.models import StrictModel
from clinical_mborl.simulators.sepsis.charting import LACTATE_MGDL_PER_MMOL
from clinical_mborl.simulators.sepsis.config import NE_EQUIVALENCE

US_PER_HOUR = 3_600_000_000
FLUIDS = ("crystalloid", "colloid")
REFERENCES = {
    "rhee": "Rhee C et al. JAMA 2017;318:1241-9 (173,690 US sepsis hospitalisations)",
    "promise": "Mouncey PR et al. (ProMISe) NEJM 2015;372:1301-11",
    "process": "ProCESS Investigators. NEJM 2014;370:1683-93",
    "arise": "ARISE Investigators. NEJM 2014;371:1496-506",
    "cc2020": "Crit Care 2020;24:636, Table 1, sepsis cohort n=632 (PMC7641835)",
    "perner": "Smith SH, Perner A. Crit Care 2012;16:R76 (septic shock, day 1)",
    "acheampong": "Acheampong A, Vincent JL. Crit Care 2015;19:251 (sepsis, mean daily intake, week 1)",
    "rabello": "Rabello Filho R et al. Shock 2016;46:480-5 (ICU severe sepsis/shock, n=443)",
    "ssc_lactate": "Eur Respir J sepsis cohort table (n=15,022, with/without ALI), lactate on admission: erj.ersjournals.com/highwire/markup/101329",
    "aic2020": "Ann Intensive Care 2020, s13613-020-00655-x, Table 1 (septic, ~12 h after ICU admission)",
}


class PlausibilityRow(StrictModel):
    """One metric: simulated value, published value, source, and whether it lies in the band."""

    metric: str
    population: str
    simulated: str
    value: float
    published: str
    band: tuple[float, float]
    source: str

    @property
    def within(self) -> bool:
        return self.band[0] <= self.value <= self.band[1]


def _first(m: pl.DataFrame, variable: str) -> pl.DataFrame:
    return m.filter(pl.col("variable") == variable).sort("time").group_by("stay_id").first()


def _fluid_litres(tables: Mapping[str, pl.DataFrame], hours: float) -> pl.DataFrame:
    """IV fluid (crystalloid + colloid, L) given in [admission, admission + hours) per stay (0 if none)."""
    stays = tables["stays"].select("stay_id", "admit_time")
    t = tables["treatments"].filter(pl.col("treatment").is_in(FLUIDS)).join(stays, on="stay_id")
    lo, hi = pl.col("admit_time"), pl.col("admit_time") + pl.duration(microseconds=int(hours * US_PER_HOUR))
    overlap_h = ((pl.min_horizontal("end_time", hi) - pl.max_horizontal("start_time", lo)).dt.total_microseconds()
                 .clip(0) / US_PER_HOUR)
    bolus = pl.col("amount").is_not_null() & (pl.col("start_time") >= lo) & (pl.col("start_time") < hi)
    ml = pl.when(pl.col("amount").is_not_null()).then(pl.when(bolus).then(pl.col("amount")).otherwise(0.0)) \
        .otherwise(pl.col("rate") * overlap_h)
    per_stay = t.group_by("stay_id").agg((ml.sum() / 1000.0).alias("litres"))
    return stays.join(per_stay, on="stay_id", how="left").select("stay_id", pl.col("litres").fill_null(0.0))


def _iqr(x: np.ndarray, digits: int = 1) -> str:
    q = np.percentile(x, [50, 25, 75])
    return f"{q[0]:.{digits}f} ({q[1]:.{digits}f}-{q[2]:.{digits}f})"


def plausibility_rows(tables: Mapping[str, pl.DataFrame]) -> list[PlausibilityRow]:
    """The plausibility table of usual-care tables (see the module docstring)."""
    s, m, t = tables["stays"], tables["measurements"], tables["treatments"]
    lac = _first(m, "lactate").select("stay_id", pl.when(pl.col("unit") == "mg/dL")
                                      .then(pl.col("value") / LACTATE_MGDL_PER_MMOL).otherwise(pl.col("value"))
                                      .alias("lactate"))
    first_map = _first(m.filter(pl.col("value").is_between(20, 250)), "map").select("stay_id", pl.col("value").alias("map0"))
    base = s.join(lac, on="stay_id", how="left").join(first_map, on="stay_id", how="left")
    shock_ids = base.filter((pl.col("map0") < 65) | (pl.col("lactate") >= 4))["stay_id"]
    pressor = t.filter(pl.col("treatment").is_in(list(NE_EQUIVALENCE))).join(s.select("stay_id", "admit_time"), on="stay_id")
    any_pressor = pressor["stay_id"].unique()
    early_pressor = pressor.filter(pl.col("start_time") < pl.col("admit_time") + pl.duration(hours=6))["stay_id"].unique()
    f6, f24 = _fluid_litres(tables, 6.0), _fluid_litres(tables, 24.0)
    shock = pl.col("stay_id").is_in(shock_ids.implode())
    los = ((s["discharge_time"] - s["admit_time"]).dt.total_microseconds() / (24 * US_PER_HOUR)).to_numpy()
    per_kg = f24.join(s.select("stay_id", "weight_kg"), on="stay_id").drop_nulls("weight_kg")
    map12 = m.filter((pl.col("variable") == "map") & pl.col("value").is_between(20, 250)).join(
        s.select("stay_id", "admit_time", "discharge_time"), on="stay_id").filter(
        (pl.col("time") >= pl.col("admit_time") + pl.duration(hours=11))
        & (pl.col("time") < pl.col("admit_time") + pl.duration(hours=13))).group_by("stay_id").agg(pl.col("value").mean())
    n_shock = max(shock_ids.len(), 1)
    is_shock = s["stay_id"].is_in(shock_ids.implode()).to_numpy()
    died = s["died_in_hospital"].to_numpy()
    icu_died = s.select(pl.col("died_in_hospital") & (pl.col("death_time") <= pl.col("discharge_time"))).to_series()
    mort, icu, shock_mort = 100 * died.mean(), 100 * icu_died.to_numpy().mean(), 100 * died[is_shock].mean()
    vaso_all = 100 * any_pressor.len() / s.height
    vaso_6h = 100 * int(early_pressor.is_in(shock_ids.implode()).sum()) / n_shock
    shock_f6 = f6.filter(shock)["litres"].to_numpy()
    shock_f24 = f24.filter(shock)["litres"].to_numpy()
    ml_per_kg = (per_kg["litres"] * 1000 / per_kg["weight_kg"]).to_numpy()
    lac_v = base["lactate"].drop_nulls().to_numpy()
    map0 = base["map0"].drop_nulls().to_numpy()
    map12_v = map12["value"].to_numpy()
    age = s["age_years"].to_numpy()
    women = 100 * (s["sex"] == "F").to_numpy().mean()
    rows = [
        ("Hospital mortality", "all", f"{mort:.1f}% (ICU {icu:.1f}%)", mort,
         "15.0% (Rhee); 18.2-21.0% (ProCESS); 29.2-29.5% (ProMISe)", (15.0, 35.0), "rhee; process; promise"),
        ("Hospital mortality", "early septic shock", f"{shock_mort:.1f}%", shock_mort,
         "18.6-18.8% (ARISE, 90 d); 18.2-21.0% (ProCESS); 29.2-29.5% (ProMISe)", (15.0, 40.0), "arise; process; promise"),
        ("ICU length of stay, days, median (IQR)", "all", _iqr(los), float(np.median(los)),
         "2.2-2.6 (ProMISe); 2.5 (1.1-5.5)", (1.5, 4.0), "promise; cc2020"),
        ("Share on vasopressors during the stay", "all", f"{vaso_all:.1f}%", vaso_all,
         "30.9-37.0% advanced CV support (ProMISe)", (25.0, 60.0), "promise"),
        ("Share on vasopressors within 6 h", "early septic shock", f"{vaso_6h:.1f}%", vaso_6h,
         "44.1-54.9% (ProCESS); 57.8-66.6% (ARISE)", (40.0, 70.0), "process; arise"),
        ("IV fluid 0-6 h, L, mean", "early septic shock", f"{shock_f6.mean():.2f}", float(shock_f6.mean()),
         "1.7-2.0 (ARISE, after ~2.5 L pre-randomisation); 2.3-3.3 (ProCESS)", (1.7, 4.5), "arise; process"),
        ("IV fluid 0-24 h, L, median (IQR)", "early septic shock", _iqr(shock_f24), float(np.median(shock_f24)),
         "4.0 (2.3-6.3) on day 1 of septic shock", (2.3, 6.3), "perner"),
        ("IV fluid 0-24 h, mL/kg, mean", "all", f"{ml_per_kg.mean():.0f}", float(ml_per_kg.mean()),
         "48 (survivors) - 59 (non-survivors) mL/kg/day", (35.0, 70.0), "acheampong"),
        ("First lactate, mmol/L, median (IQR)", "all", _iqr(lac_v), float(np.median(lac_v)),
         "2.8 (1.6-4.6)", (1.6, 3.5), "ssc_lactate"),
        ("First lactate > 2.5 mmol/L", "all", f"{100 * np.mean(lac_v > 2.5):.1f}%", 100 * float(np.mean(lac_v > 2.5)),
         "41% (183/443)", (30.0, 55.0), "rabello"),
        ("MAP 11-13 h after admission, mmHg, median (IQR)", "all", _iqr(map12_v, 0), float(np.median(map12_v)),
         "73 (62-82)", (62.0, 82.0), "aic2020"),
        ("First MAP (before ICU treatment), mmHg, median (IQR)", "all", _iqr(map0, 0), float(np.median(map0)),
         "(untreated onset; no direct comparator) ProMISe/ProCESS enrol MAP < 65 after 1 L", (55.0, 80.0), "promise"),
        ("Age, years, mean", "all", f"{age.mean():.1f}", float(age.mean()), "66.5 (SD 15.5)", (60.0, 70.0), "rhee"),
        ("Women", "all", f"{women:.1f}%", float(women), "42.4%", (37.0, 48.0), "rhee"),
    ]
    return [PlausibilityRow(metric=a, population=b, simulated=c, value=float(d), published=e, band=f,
                            source="; ".join(REFERENCES[k.strip()] for k in g.split(";")))
            for a, b, c, d, e, f, g in rows]


def to_markdown(rows: list[PlausibilityRow], n_patients: int, seed: int) -> str:
    """A markdown table with a final column saying whether the value lies in its band."""
    lines = [f"Usual care, {n_patients} simulated stays (seed {seed}); early septic shock = first MAP < 65 "
             "or first lactate >= 4.", "",
             "| metric | population | simulated | published | band | in band | source |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.metric} | {r.population} | {r.simulated} | {r.published} | {r.band[0]:g}-{r.band[1]:g} "
                     f"| {'yes' if r.within else 'NO'} | {r.source} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Simulate usual care and print the plausibility table as markdown."""
    from clinical_mborl.simulators.sepsis.simulate import run_simulation
    from clinical_mborl.simulators.sepsis.tables import build_tables

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = plausibility_rows(build_tables(run_simulation(args.patients, args.seed)))
    print(to_markdown(rows, args.patients, args.seed), end="")


if __name__ == "__main__":
    main()
