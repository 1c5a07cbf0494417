"""Row-by-row Python re-implementations of the cohort rules (the tests' independent oracles)."""

from __future__ import annotations

import datetime as dt
import math
import statistics
from typing import Any

import polars as pl

from clinical_mborl.cohort.spec import CohortSpec

US = 1_000_000
HOUR = 3600 * US
EPOCH = dt.datetime(1970, 1, 1)


def us(t: dt.datetime) -> int:
    return (t - EPOCH) // dt.timedelta(microseconds=1)


def stay_window(spec: CohortSpec, s: dict[str, Any]) -> dict[str, int]:
    """t0, stay_end, n_steps, ends_in_window of one stay (microseconds)."""
    tm = spec.time
    admit = us(s["admit_time"])
    event = us(s["discharge_time"])
    if s["death_time"] is not None:
        event = min(event, us(s["death_time"]))
    t0 = admit + round(tm.window_start_hours * HOUR)
    wend = admit + round(tm.window_end_hours * HOUR)
    end = min(event, wend)
    step = round(tm.step_hours * HOUR)
    n = math.ceil((end - t0) / step) if end > t0 else 0
    return {"t0": t0, "end": end, "n_steps": n, "ends_in_window": event <= wend, "step": step,
            "lb": t0 - round(tm.lookback_hours * HOUR), "hours": (event - admit) / HOUR}


def valid_rows(spec: CohortSpec, tables: dict[str, pl.DataFrame]) -> dict[tuple[str, int], list[tuple[int, float]]]:
    """(stay_id, feature index) -> [(time_us, converted value)] after dedupe, units, range, lookback."""
    stays = {s["stay_id"]: s for s in tables["stays"].iter_rows(named=True)}
    seen: set[tuple] = set()
    out: dict[tuple[str, int], list[tuple[int, float]]] = {}
    for r in tables["measurements"].iter_rows(named=True):
        key = (r["stay_id"], r["time"], r["variable"], r["value"], r["unit"])
        if key in seen:
            continue
        seen.add(key)
        for i, f in enumerate(spec.features):
            if r["variable"] not in f.variables:
                continue
            if r["unit"] == f.unit:
                value = r["value"]
            else:
                c = f.conversions[r["unit"]]
                value = r["value"] * c.factor + c.offset
            if not f.valid_range[0] <= value <= f.valid_range[1]:
                continue
            if r["stay_id"] not in stays or us(r["time"]) < stay_window(spec, stays[r["stay_id"]])["lb"]:
                continue
            out.setdefault((r["stay_id"], i), []).append((us(r["time"]), value))
    return out


def oracle_state(spec: CohortSpec, rows: dict, stay_id: str, d: int) -> list[float | None]:
    """Unfilled measurement features of `stay_id` at decision time `d` (microseconds)."""
    step = round(spec.time.step_hours * HOUR)
    values: list[float | None] = []
    for i, f in enumerate(spec.features):
        before = sorted((t, v) for t, v in rows.get((stay_id, i), []) if t < d)
        if not before:
            values.append(None)
            continue
        tau = before[-1][0]
        j = 0
        while not d - (j + 1) * step <= tau < d - j * step:
            j += 1
        if j > 0 and d - tau > round(f.max_carry_hours * HOUR):
            values.append(None)
            continue
        lo, hi = d - (j + 1) * step, d - j * step
        window = [v for t, v in before if lo <= t < hi]
        agg = {"last": lambda w: w[-1], "mean": statistics.fmean, "min": min, "max": max,
               "sum": math.fsum, "count": lambda w: float(len(w))}[f.aggregation]
        values.append(float(agg(window)))
    return values


def oracle_doses(spec: CohortSpec, tables: dict[str, pl.DataFrame], stay_id: str, weight: float) -> list[list[float]]:
    """Dose per step (rows) and dimension (columns) for one stay; `weight` = filled weight."""
    s = tables["stays"].filter(pl.col("stay_id") == stay_id).row(0, named=True)
    w = stay_window(spec, s)
    doses = [[0.0] * len(spec.actions) for _ in range(w["n_steps"])]
    seen: set[tuple] = set()
    for r in tables["treatments"].iter_rows(named=True):
        key = tuple(r.values())
        if key in seen or r["stay_id"] != stay_id:
            seen.add(key)
            continue
        seen.add(key)
        for j, a in enumerate(spec.actions):
            if r["treatment"] not in a.treatments:
                continue
            use_amount = a.aggregation == "amount_sum" and r["amount"] is not None
            x, unit = (r["amount"], r["amount_unit"]) if use_amount else (r["rate"], r["rate_unit"])
            if x is None:
                continue
            native = a.unit if use_amount or a.aggregation == "max_rate" else a.unit + "/h"
            c = a.conversions.get(unit)
            x = x * (c.factor if c else 1.0) + (c.offset if c else 0.0)
            assert c is not None or unit == native or unit in a.per_kg_units
            if unit in a.per_kg_units:
                x /= weight
            x *= a.treatments[r["treatment"]]
            s_us, e_us = us(r["start_time"]), us(r["end_time"])
            for k in range(w["n_steps"]):
                lo, hi = w["t0"] + k * w["step"], min(w["t0"] + (k + 1) * w["step"], w["end"])
                if s_us == e_us:
                    if use_amount and lo <= s_us < hi:
                        doses[k][j] += x
                    continue
                overlap = min(e_us, hi) - max(s_us, lo)
                if overlap <= 0:
                    continue
                if a.aggregation == "max_rate":
                    doses[k][j] = max(doses[k][j], x)
                elif use_amount:
                    doses[k][j] += x * overlap / (e_us - s_us)
                else:
                    doses[k][j] += x * overlap / HOUR
    return doses


def oracle_exclusions(spec: CohortSpec, tables: dict[str, pl.DataFrame]) -> dict[str, str | None]:
    """stay_id -> first failing criterion (None = included), by the rules in `criteria`."""
    rows = valid_rows(spec, tables)
    names = [f.name for f in spec.features]
    out: dict[str, str | None] = {}
    c = spec.criteria
    for s in tables["stays"].iter_rows(named=True):
        w = stay_window(spec, s)
        checks = []
        if c.min_age_years is not None:
            checks.append((f"age_years < {c.min_age_years:g}", s["age_years"] < c.min_age_years))
        if c.max_age_years is not None:
            checks.append((f"age_years > {c.max_age_years:g}", s["age_years"] > c.max_age_years))
        checks.append((f"stay shorter than {c.min_stay_hours:g} h", w["hours"] < c.min_stay_hours))
        checks.append(("no decision step in the window", w["n_steps"] <= 0))
        if c.require_weight:
            checks.append(("weight_kg missing", s["weight_kg"] is None))
        for feature in c.require_features:
            got = rows.get((s["stay_id"], names.index(feature)), [])
            checks.append((f"no valid {feature} in the window", not any(t < w["end"] for t, _ in got)))
        out[s["stay_id"]] = next((name for name, failed in checks if failed), None)
    return out
