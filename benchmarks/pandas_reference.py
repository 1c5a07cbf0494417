"""A plain pandas implementation of the cohort transform, the benchmark's reference.

It follows the same rules as `clinical_mborl.cohort` (see `timegrid` and `features`), written
the way one would in pandas: a time-bin index per measurement, `groupby` aggregation per
(stay, feature, bin), `merge_asof` for carry-forward on the decision grid, and a direct window
filter for the off-grid state at each stay's end. It computes the criteria, the unfilled states
and next states, the doses per step and the terminal flags (not the split, fill values, levels
or normalisation, which are small). Output: one row per transition, `stay_id`, `step`, the
features (NaN = missing), `next_<feature>`, one column per dose dimension, `done`, `truncated`.

>>> import sys; sys.path.insert(0, "benchmarks")  # doctest: +SKIP
>>> frame = pandas_transitions(spec, "ehr/")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from clinical_mborl.cohort.spec import CohortSpec

HOUR_US = 3_600_000_000
AGG = {"last": "last", "mean": "mean", "min": "min", "max": "max", "sum": "sum", "count": "count"}


def _us(series: pd.Series) -> np.ndarray:
    return series.astype("datetime64[us]").astype("int64").to_numpy()


def stay_windows(spec: CohortSpec, stays: pd.DataFrame) -> pd.DataFrame:
    tm, step = spec.time, round(spec.time.step_hours * HOUR_US)
    w = pd.DataFrame({"stay_id": stays["stay_id"], "age": stays["age_years"], "weight": stays["weight_kg"]})
    admit = _us(stays["admit_time"])
    discharge = _us(stays["discharge_time"])
    death = stays["death_time"].astype("datetime64[us]")
    death_us = np.where(death.isna(), np.iinfo(np.int64).max, death.fillna(pd.Timestamp(0)).astype("int64"))
    event = np.minimum(discharge, death_us)
    w["t0"] = admit + round(tm.window_start_hours * HOUR_US)
    wend = admit + round(tm.window_end_hours * HOUR_US)
    w["end"] = np.minimum(event, wend)
    w["lb"] = w["t0"] - round(tm.lookback_hours * HOUR_US)
    w["ends_in_window"] = event <= wend
    w["hours"] = (event - admit) / HOUR_US
    span = w["end"] - w["t0"]
    w["n_steps"] = np.where(span > 0, -(-span // step), 0)
    return w


def measurements_usable(spec: CohortSpec, m: pd.DataFrame, w: pd.DataFrame) -> pd.DataFrame:
    conv = pd.DataFrame([
        {"variable": v, "unit": u, "feat": i, "factor": c[0], "offset": c[1], "lo": f.valid_range[0], "hi": f.valid_range[1]}
        for i, f in enumerate(spec.features) for v in f.variables
        for u, c in {f.unit: (1.0, 0.0), **{k: (x.factor, x.offset) for k, x in f.conversions.items()}}.items()
    ])
    m = m[m["variable"].isin(conv["variable"].unique())].drop_duplicates()
    m = m.merge(conv, on=["variable", "unit"], how="left")
    if m["feat"].isna().any():
        raise ValueError("unconvertible unit")
    m["value"] = m["value"] * m["factor"] + m["offset"]
    m = m.merge(w[["stay_id", "lb", "end"]], on="stay_id", how="inner")
    m["t"] = _us(m["time"])
    keep = (m["t"] >= m["lb"]) & (m["t"] < m["end"]) & (m["value"] >= m["lo"]) & (m["value"] <= m["hi"])
    m = m.loc[keep, ["stay_id", "feat", "t", "value"]]
    m["feat"] = m["feat"].astype("int64")
    return m.sort_values(["stay_id", "feat", "t", "value"], kind="stable").reset_index(drop=True)


def apply_criteria(spec: CohortSpec, w: pd.DataFrame, m: pd.DataFrame) -> pd.DataFrame:
    c = spec.criteria
    ok = pd.Series(True, index=w.index)
    if c.min_age_years is not None:
        ok &= w["age"] >= c.min_age_years
    if c.max_age_years is not None:
        ok &= w["age"] <= c.max_age_years
    ok &= (w["hours"] >= c.min_stay_hours) & (w["n_steps"] > 0)
    if c.require_weight:
        ok &= w["weight"].notna()
    names = [f.name for f in spec.features]
    for feature in c.require_features:
        ok &= w["stay_id"].isin(m.loc[m["feat"] == names.index(feature), "stay_id"].unique())
    return w[ok].reset_index(drop=True)


def grid_states(spec: CohortSpec, m: pd.DataFrame, w: pd.DataFrame) -> pd.DataFrame:
    """States at the decisions t0 + k * step, k = 0..T-1, through time bins and merge_asof."""
    step = round(spec.time.step_hours * HOUR_US)
    m = m.merge(w[["stay_id", "t0"]], on="stay_id")
    m["b"] = (m["t"] - m["t0"]) // step
    dec = w.loc[w.index.repeat(w["n_steps"]), ["stay_id", "t0"]]
    dec["k"] = dec.groupby("stay_id").cumcount()
    dec["d"] = dec["t0"] + dec["k"] * step
    dec["b"] = dec["k"] - 1
    out = dec[["stay_id", "k", "d"]].reset_index(drop=True)
    for i, f in enumerate(spec.features):
        mf = m[m["feat"] == i]
        bins = mf.groupby(["stay_id", "b"], sort=False).agg(v=("value", AGG[f.aggregation]), tau=("t", "max"))
        bins = bins.reset_index().sort_values("b")
        left = dec[["stay_id", "k", "d", "b"]].sort_values("b")
        got = pd.merge_asof(left, bins, on="b", by="stay_id", direction="backward")
        fresh = got["tau"] >= got["d"] - step
        ok = fresh | (got["d"] - got["tau"] <= round(f.max_carry_hours * HOUR_US))
        got[f.name] = got["v"].where(ok).astype("float64")
        out = out.merge(got[["stay_id", "k", f.name]], on=["stay_id", "k"], how="left")
    return out


def end_states(spec: CohortSpec, m: pd.DataFrame, w: pd.DataFrame) -> pd.DataFrame:
    """The state at each stay's end (off the grid when the last step is partial)."""
    step = round(spec.time.step_hours * HOUR_US)
    out = w[["stay_id", "n_steps", "end"]].rename(columns={"n_steps": "k", "end": "d"}).reset_index(drop=True)
    for i, f in enumerate(spec.features):
        mf = m[m["feat"] == i].merge(out, on="stay_id")
        mf = mf[mf["t"] < mf["d"]]
        tau = mf.groupby("stay_id")["t"].max().rename("tau")
        mf = mf.merge(tau, on="stay_id")
        j = (mf["d"] - mf["tau"] - 1) // step
        hi = mf["d"] - j * step
        keep = (mf["t"] >= hi - step) & (mf["t"] < hi) & ((j == 0) | (mf["d"] - mf["tau"] <= round(f.max_carry_hours * HOUR_US)))
        agg = mf[keep].groupby("stay_id")["value"].agg(AGG[f.aggregation]).rename(f.name).astype("float64")
        out = out.merge(agg, on="stay_id", how="left")
    return out.drop(columns="d")


def step_doses(spec: CohortSpec, t: pd.DataFrame, w: pd.DataFrame, weight_fill: float) -> pd.DataFrame:
    step = round(spec.time.step_hours * HOUR_US)
    rows = []
    t = t.drop_duplicates()
    for a in spec.actions:
        sub = t[t["treatment"].isin(list(a.treatments))].merge(w[["stay_id", "t0", "end", "weight"]], on="stay_id")
        use_amount = (a.aggregation == "amount_sum") & sub["amount"].notna()
        x = np.where(use_amount, sub["amount"], sub["rate"])
        unit = np.where(use_amount, sub["amount_unit"], sub["rate_unit"])
        units = pd.Series(unit)
        factor = units.map({k: c.factor for k, c in a.conversions.items()}).fillna(1.0).to_numpy()
        offset = units.map({k: c.offset for k, c in a.conversions.items()}).fillna(0.0).to_numpy()
        per_kg = np.isin(unit, a.per_kg_units)
        weight = sub["weight"].fillna(weight_fill).to_numpy()
        v = (x * factor + offset) / np.where(per_kg, weight, 1.0) * sub["treatment"].map(a.treatments).to_numpy()
        s, e = _us(sub["start_time"]), _us(sub["end_time"])
        t0, end = sub["t0"].to_numpy(), sub["end"].to_numpy()
        bolus = s == e
        usable = ~np.isnan(x) & ~(bolus & ~use_amount)
        inside = np.where(bolus, (s >= t0) & (s < end), (e > t0) & (s < end)) & usable
        first = (np.maximum(s, t0) - t0) // step
        last = np.where(bolus, first, (np.minimum(e, end) - 1 - t0) // step)
        n = np.where(inside, last - first + 1, 0)
        idx = np.repeat(np.arange(len(sub)), n)
        k = first[idx] + (np.arange(idx.size) - np.repeat(np.cumsum(n) - n, n))
        lo = t0[idx] + k * step
        hi = np.minimum.reduce([lo + step, end[idx], e[idx]])
        overlap = hi - np.maximum(s[idx], lo)
        if a.aggregation == "max_rate":
            c = v[idx]
        else:
            amount = use_amount.to_numpy()[idx]
            c = np.where(bolus[idx], v[idx], np.where(amount, v[idx] * overlap / np.maximum(e[idx] - s[idx], 1),
                                                      v[idx] * overlap / HOUR_US))
        df = pd.DataFrame({"stay_id": sub["stay_id"].to_numpy()[idx], "k": k, "c": c})
        agg = df.groupby(["stay_id", "k"])["c"].agg("max" if a.aggregation == "max_rate" else "sum")
        rows.append(agg.rename(a.name))
    return pd.concat(rows, axis=1).fillna(0.0).reset_index()


def pandas_transitions(spec: CohortSpec, ehr_dir: str | Path) -> pd.DataFrame:
    ehr = Path(ehr_dir)
    stays = pd.read_parquet(ehr / "stays.parquet")
    w = stay_windows(spec, stays)
    m = measurements_usable(spec, pd.read_parquet(ehr / "measurements.parquet"), w)
    w = apply_criteria(spec, w, m)
    m = m[m["stay_id"].isin(w["stay_id"])]
    names = [f.name for f in spec.features]
    states = pd.concat([grid_states(spec, m, w).drop(columns="d"), end_states(spec, m, w)])
    states = states.sort_values(["stay_id", "k"]).reset_index(drop=True)
    nxt = states.groupby("stay_id")[names].shift(-1).add_prefix("next_")
    frame = pd.concat([states, nxt], axis=1).merge(w[["stay_id", "n_steps", "ends_in_window"]], on="stay_id")
    frame = frame[frame["k"] < frame["n_steps"]]
    doses = step_doses(spec, pd.read_parquet(ehr / "treatments.parquet"), w, float(w["weight"].median()))
    frame = frame.merge(doses, on=["stay_id", "k"], how="left").fillna({a.name: 0.0 for a in spec.actions})
    last = frame["k"] == frame["n_steps"] - 1
    frame["done"] = last & frame["ends_in_window"]
    frame["truncated"] = last & ~frame["ends_in_window"]
    return frame.rename(columns={"k": "step"}).drop(columns=["n_steps", "ends_in_window"]).reset_index(drop=True)
