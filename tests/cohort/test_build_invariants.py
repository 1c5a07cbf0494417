"""Property tests of every CONTRACTS.md §3 invariant on random small EHR tables."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from clinical_mborl.cohort.build import build_cohort
from clinical_mborl.cohort.features import compute_states, fill_values_from_manifest, state_names
from clinical_mborl.cohort.spec import CohortSpec
from clinical_mborl.cohort.transitions import NEXT_PREFIX, TransitionSet
from tests.cohort.factories import ehr_tables, meas, small_spec, treat, write_tables
from tests.cohort.oracles import (
    EPOCH,
    oracle_doses,
    oracle_exclusions,
    oracle_state,
    stay_window,
    valid_rows,
)

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def build(tables: dict[str, pl.DataFrame], spec: CohortSpec, root: Path) -> TransitionSet:
    write_tables(tables, root / "ehr")
    build_cohort(spec, root / "ehr", root / "out", progress=False)
    return TransitionSet.load(root / "out")


def build_or_none(tables: dict[str, pl.DataFrame], spec: CohortSpec, root: Path) -> TransitionSet | None:
    """None when no stay passes the criteria (a legitimate outcome for random tables)."""
    if all(v is not None for v in oracle_exclusions(spec, tables).values()):
        event("no stay included")
        return None
    event("built")
    return build(tables, spec, root)


@SETTINGS
@given(tables=ehr_tables())
def test_flow_terminals_splits_chaining_and_oracles(tables: dict[str, pl.DataFrame]) -> None:
    spec = small_spec()
    with tempfile.TemporaryDirectory() as tmp:
        ts = build_or_none(tables, spec, Path(tmp))
    expected = oracle_exclusions(spec, tables)
    if ts is None:
        return
    f, m = ts.frame, ts.manifest
    # stays in = included + excluded, each excluded stay under its first failing reason
    included = set(f["stay_id"].unique().to_list())
    assert included == {s for s, r in expected.items() if r is None}
    assert m.stays_in == tables["stays"].height == len(included) + sum(s.stays_removed for s in m.exclusion_flow)
    removed = {s.reason: s.stays_removed for s in m.exclusion_flow}
    assert {r: n for r, n in removed.items() if n} == dict(Counter(r for r in expected.values() if r))
    # exactly one terminal or truncation per stay, at its last step
    per_stay = f.group_by("stay_id").agg(
        pl.len().alias("n"), pl.col("step").max().alias("last"),
        (pl.col("done") | pl.col("truncated")).sum().alias("ends"),
        (pl.col("done") & pl.col("truncated")).sum().alias("both"),
        (pl.col("done") | pl.col("truncated")).arg_max().alias("end_at"),
    )
    assert (per_stay["ends"] == 1).all() and (per_stay["both"] == 0).all()
    assert (per_stay["end_at"] == per_stay["last"]).all() and (per_stay["n"] == per_stay["last"] + 1).all()
    assert not (f["died"] & ~f["done"]).any()
    # no patient in two splits; keys are pseudonyms
    assert (f.group_by("patient_key").agg(pl.col("split").n_unique())["split"] == 1).all()
    assert not set(f["patient_key"]) & set(tables["stays"]["patient_id"])
    # next state of step t = state of step t+1
    names = list(ts.feature_names)
    nxt = f.select("stay_id", *[pl.col(NEXT_PREFIX + n).alias(n) for n in names])
    assert f.sort("stay_id", "step").group_by("stay_id", maintain_order=True).agg(
        pl.col(names).slice(1)).explode(names).drop_nulls().equals(
        nxt.group_by("stay_id", maintain_order=True).agg(pl.col(names).slice(0, pl.len() - 1))
        .explode(names).drop_nulls())
    _check_against_oracles(spec, tables, ts)


def _check_against_oracles(spec: CohortSpec, tables: dict[str, pl.DataFrame], ts: TransitionSet) -> None:
    rows = valid_rows(spec, tables)
    stays = {s["stay_id"]: s for s in tables["stays"].iter_rows(named=True)}
    fills = fill_values_from_manifest(ts.manifest)
    for stay_id, group in ts.frame.group_by("stay_id"):
        sid = str(stay_id[0])
        w = stay_window(spec, stays[sid])
        weight = stays[sid]["weight_kg"] or fills["weight_kg"]
        want_doses = oracle_doses(spec, tables, sid, weight)
        assert group.height == w["n_steps"]
        for r in group.sort("step").iter_rows(named=True):
            k = r["step"]
            for d, prefix in ((w["t0"] + k * w["step"], ""), (w["t0"] + (k + 1) * w["step"], NEXT_PREFIX)):
                d = min(d, w["end"])
                for f, want in zip(spec.features, oracle_state(spec, rows, sid, d), strict=True):
                    got = r[prefix + f.name]
                    assert got == pytest.approx(fills[f.name] if want is None else want, rel=1e-12, abs=1e-12)
                    if f.missing_indicator:
                        assert r[prefix + f.name + "_missing"] == float(want is None)
            for j, a in enumerate(spec.actions):
                assert r[a.name] == pytest.approx(want_doses[k][j], rel=1e-9, abs=1e-12)
            assert r["done"] == (k == w["n_steps"] - 1 and w["ends_in_window"])


@SETTINGS
@given(tables=ehr_tables())
def test_build_states_equal_compute_states_at_the_same_decision_times(tables: dict[str, pl.DataFrame]) -> None:
    spec = small_spec()
    with tempfile.TemporaryDirectory() as tmp:
        ts = build_or_none(tables, spec, Path(tmp))
    if ts is None:
        return
    stays = {s["stay_id"]: s for s in tables["stays"].iter_rows(named=True)}
    f = ts.frame.sort("stay_id", "step")
    times = []
    for sid, k in f.select("stay_id", "step").iter_rows():
        w = stay_window(spec, stays[sid])
        times.append([min(w["t0"] + (k + i) * w["step"], w["end"]) for i in (0, 1)])
    to_dt = [[EPOCH + dt.timedelta(microseconds=t) for t in pair] for pair in times]
    dec = pl.DataFrame({"stay_id": f["stay_id"].to_list() * 2,
                        "decision_time": [p[0] for p in to_dt] + [p[1] for p in to_dt]})
    got = compute_states(spec, tables["stays"], tables["measurements"], dec,
                         fill_values=fill_values_from_manifest(ts.manifest))
    names = state_names(spec)
    want = np.vstack([f.select(names).to_numpy(), f.select(NEXT_PREFIX + n for n in names).to_numpy()])
    np.testing.assert_allclose(got.select(names).to_numpy(), want, rtol=1e-12, atol=1e-12)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables=ehr_tables(max_stays=3), data=st.data())
def test_data_charted_at_or_after_a_decision_never_changes_earlier_states(
    tables: dict[str, pl.DataFrame], data: st.DataObject
) -> None:
    spec = small_spec(zero_fill=True)  # fill values cannot move with the perturbation
    with tempfile.TemporaryDirectory() as tmp:
        before = build_or_none(tables, spec, Path(tmp))
    if before is None:
        return
    sid, k = data.draw(st.sampled_from(before.frame.select("stay_id", "step").rows()))
    s = tables["stays"].filter(pl.col("stay_id") == sid).row(0, named=True)
    w = stay_window(spec, s)
    t_k = EPOCH + dt.timedelta(microseconds=w["t0"] + k * w["step"])
    later = t_k + dt.timedelta(minutes=data.draw(st.integers(0, 300)))
    extra = [meas(sid, t_k, "map", 249.0, "mmHg"), meas(sid, later, "lactate", 29.0, "mmol/L"),
             meas(sid, later, "gcs", 3.0, "points"), meas(sid, t_k, "urine", 1999.0, "mL")]
    bolus = [treat(sid, t_k - dt.timedelta(microseconds=1), 0, "crystalloid", 1999.0, "mL")]
    perturbed = {**tables,
                 "measurements": pl.concat([tables["measurements"], pl.DataFrame(extra, schema=tables["measurements"].schema)]),
                 "treatments": pl.concat([tables["treatments"], pl.DataFrame(bolus, schema=tables["treatments"].schema)])}
    with tempfile.TemporaryDirectory() as tmp:
        after = build(perturbed, spec, Path(tmp))
    cols = [f.name for f in spec.features] + [f.name + "_missing" for f in spec.features if f.missing_indicator]
    a, b = (ts.frame.filter(pl.col("stay_id") == sid).sort("step") for ts in (before, after))
    assert a.filter(pl.col("step") <= k).select(cols).equals(b.filter(pl.col("step") <= k).select(cols))
    # ... while the next state of step k (charted during its action) does see the new MAP
    assert b.filter(pl.col("step") == k)[NEXT_PREFIX + "map_mmhg"][0] != a.filter(pl.col("step") == k)[NEXT_PREFIX + "map_mmhg"][0]
    # the bolus given just before decision k is not part of action k; it belongs to step k-1
    assert a.filter(pl.col("step") >= k)["fluid_ml"].equals(b.filter(pl.col("step") >= k)["fluid_ml"])
    if k > 0:
        got = b.filter(pl.col("step") == k - 1)["fluid_ml"][0] - a.filter(pl.col("step") == k - 1)["fluid_ml"][0]
        assert got == pytest.approx(1999.0)
