"""Closed-loop ground truth: run any policy on the simulator and measure its true value.

At every decision time of the cohort spec (window start + k * step_hours) the state of each
running stay is built from the simulated CHARTED data by `clinical_mborl.cohort.features.
compute_states`, the function `cohort build` uses, with the fill values of the cohort manifest
the policy was trained on. The policy's action (a joint dose level -> that level's median dose,
or continuous doses) is held for the step: the fluid as a crystalloid infusion of dose/step mL/h,
the vasopressor as norepinephrine at the dose. After the window the simulated clinician resumes
usual care until discharge or death, so hospital mortality is defined. The value is the
discounted return as the spec defines it, computed from the closed-loop tables with the cohort's
reward code (`episode_returns`); intervals are Monte Carlo 95% intervals over independent
episodes (normal approximation for the value, Wilson for mortality).

>>> from clinical_mborl.simulators.sepsis.policies import UsualCare
>>> r = evaluate_in_closed_loop(UsualCare(), spec, manifest, n_episodes=200, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from clinical_mborl import __version__
from clinical_mborl.cohort.features import (
    apply_fill,
    compute_states,
    fill_values_from_manifest,
    state_names,
)
from clinical_mborl.cohort.manifest import CohortManifest
from clinical_mborl.cohort.spec import CohortSpec
from clinical_mborl.cohort.treatment_history import treatment_history
from clinical_mborl.core.errors import InputError
from clinical_mborl.core.models import StrictModel
from clinical_mborl.core.policy import Policy
from clinical_mborl.simulators.sepsis.config import SepsisConfig
from clinical_mborl.simulators.sepsis.engine import SepsisSimulator
from clinical_mborl.simulators.sepsis.policies import Oracle, UsualCare, nearest_level_doses
from clinical_mborl.simulators.sepsis.returns import episode_returns
from clinical_mborl.simulators.sepsis.tables import build_tables, snapshot, stay_ids

Z95 = 1.959963984540054


class GroundTruthResult(StrictModel):
    """True value and hospital mortality of a policy, each with a Monte Carlo 95% interval."""

    simulator: str = "sepsis"
    policy: str
    seed: int
    episodes: int
    included: int
    spec_name: str
    spec_hash: str
    step_hours: float
    window_hours: tuple[float, float]
    gamma: float
    value: float
    value_ci_low: float
    value_ci_high: float
    mortality: float
    mortality_ci_low: float
    mortality_ci_high: float
    icu_mortality: float
    interval: str = "Monte Carlo 95%: value mean +- 1.96 SE over episodes; mortality Wilson"
    package_version: str = __version__


@dataclass
class ClosedLoopRun:
    """Everything a closed-loop run produced (for tests and diagnostics)."""

    simulator: SepsisSimulator
    tables: dict[str, pl.DataFrame]
    states: pl.DataFrame  # stay_id, step, decision_time, raw state columns (null = missing)
    doses: pl.DataFrame  # stay_id, step, one column per action dimension (applied doses)


def _dose_roles(spec: CohortSpec) -> tuple[int, int, float, float]:
    """(fluid dimension, vasopressor dimension, their equivalence factors) or InputError."""
    fluid = [j for j, a in enumerate(spec.actions) if "crystalloid" in a.treatments and a.aggregation == "amount_sum"]
    pressor = [j for j, a in enumerate(spec.actions) if "norepinephrine" in a.treatments and a.aggregation == "max_rate"]
    units_ok = len(spec.actions) == 2 and fluid and pressor and spec.actions[fluid[0]].unit == "mL" and \
        spec.actions[pressor[0]].unit == "ug/kg/min"
    if not units_ok:
        raise InputError(
            f"cohort spec {spec.name}: the sepsis simulator applies exactly two action dimensions, crystalloid "
            "amount_sum in mL and norepinephrine max_rate in ug/kg/min; got "
            f"{[(a.name, a.aggregation, a.unit) for a in spec.actions]}. Use cohorts/sepsis_*.yaml."
        )
    f, v = fluid[0], pressor[0]
    return f, v, spec.actions[f].treatments["crystalloid"], spec.actions[v].treatments["norepinephrine"]


def _check_time(spec: CohortSpec) -> tuple[int, int, int]:
    t = spec.time
    ints = [float(x).is_integer() for x in (t.step_hours, t.window_start_hours, t.window_end_hours)]
    if not all(ints) or t.window_start_hours < 0:
        raise InputError(
            f"cohort spec {spec.name}: the simulator steps hourly from admission, so step_hours and the window "
            f"must be whole hours with window_start_hours >= 0; got step {t.step_hours}, window "
            f"[{t.window_start_hours}, {t.window_end_hours}]."
        )
    return int(t.window_start_hours), int(t.step_hours), spec.time.n_steps


def _policy_doses(policy: Any, sim: SepsisSimulator, idx: np.ndarray, states: np.ndarray, manifest: CohortManifest,
                  rng: np.random.Generator) -> np.ndarray:
    """Doses [len(idx), dims] in the spec's dimension order and units."""
    space = manifest.action_space
    if isinstance(policy, Oracle):
        desired = policy.doses(sim, idx)
        f, v, f_eq, v_eq = _dose_roles(manifest.spec)
        ordered = np.zeros((idx.size, 2))
        ordered[:, f], ordered[:, v] = desired[:, 0] * f_eq, desired[:, 1] * v_eq
        if space.kind == "discrete":
            return nearest_level_doses(ordered, space)[1]
        hi = np.array([d.dose_max for d in space.dimensions])
        return np.clip(ordered, 0.0, np.where(hi > 0, hi, np.inf))
    actions = np.asarray(policy.sample_actions(states, rng))
    if space.kind == "discrete":
        return space.doses_of(actions.astype(np.int64))
    return np.clip(np.asarray(actions, dtype=np.float64).reshape(idx.size, -1), 0.0, None)


def run_closed_loop(
    policy: Policy | UsualCare | Oracle,
    spec: CohortSpec,
    manifest: CohortManifest,
    n_episodes: int,
    seed: int,
    config: SepsisConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ClosedLoopRun:
    """Simulate `n_episodes` stays with `policy` in control during the spec's window."""
    if n_episodes < 1 or seed < 0:
        raise InputError(f"closed loop: episodes must be >= 1 and seed >= 0, got {n_episodes} and {seed}.")
    start_h, step_h, n_steps = _check_time(spec)
    f, v, f_eq, v_eq = _dose_roles(spec)
    names = state_names(spec)
    control = not isinstance(policy, UsualCare)
    if control and not isinstance(policy, Oracle) and tuple(policy.feature_names) != tuple(names):
        raise InputError(f"policy {policy.name}: expects features {list(policy.feature_names)}, but spec "
                         f"{spec.name} builds {names}; use the cohort the policy was trained on.")
    base = config or SepsisConfig()
    cfg = base.model_copy(update={"population": base.population.model_copy(update={"readmission_share": 0.0})})
    sim = SepsisSimulator(n_episodes, seed, cfg)
    ids = stay_ids(n_episodes)
    fills = fill_values_from_manifest(manifest)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(99,)))
    state_parts: list[pl.DataFrame] = []
    dose_parts: list[pl.DataFrame] = []
    dose_names = [a.name for a in spec.actions]
    for k in range(n_steps):
        hour = start_h + k * step_h
        sim.run_until(hour)
        idx = np.flatnonzero(sim.active)
        if progress is not None:
            progress(k, n_steps)
        if not control or idx.size == 0:
            continue
        stay_id = pl.Series("stay_id", ids, dtype=pl.String).gather(idx)
        x = np.zeros((idx.size, len(names)))
        if not isinstance(policy, Oracle):  # the oracle reads the latent state, not the chart
            stays, measurements = snapshot(sim, idx, ids)
            decisions = stays.select("stay_id", (pl.col("admit_time") + pl.duration(hours=hour)).alias("decision_time"))
            raw = compute_states(spec, stays, measurements, decisions)
            if spec.treatment_features:  # from the doses this loop applied before the decision
                given = pl.concat(dose_parts) if dose_parts else pl.DataFrame(
                    schema={"stay_id": pl.String, "step": pl.Int64, **dict.fromkeys(dose_names, pl.Float64)})
                now = pl.DataFrame({"stay_id": stay_id, "step": np.full(idx.size, k, np.int64)})
                raw = pl.concat([raw, treatment_history(spec, given, now, key="stay_id")], how="horizontal")
            x = apply_fill(spec, raw.select(names), fills).to_numpy().astype(np.float64)
            state_parts.append(raw.with_columns(pl.lit(k, dtype=pl.Int64).alias("step")))
        doses = _policy_doses(policy, sim, idx, x, manifest, rng)
        sim.hold(idx, doses[:, f] / f_eq / step_h, doses[:, v] / v_eq)
        dose_parts.append(pl.DataFrame({"stay_id": stay_id, "step": np.full(idx.size, k, np.int64),
                                        **{n: doses[:, j] for j, n in enumerate(dose_names)}}))
    sim.run_until(start_h + n_steps * step_h)
    sim.release(np.flatnonzero(sim.active))
    sim.run_until_done()
    if progress is not None:
        progress(n_steps, n_steps)
    states = pl.concat(state_parts) if state_parts else pl.DataFrame()
    dose_frame = pl.concat(dose_parts) if dose_parts else pl.DataFrame()
    return ClosedLoopRun(sim, build_tables(sim, ids), states, dose_frame)


def mean_interval(x: np.ndarray) -> tuple[float, float, float]:
    """(mean, low, high): normal-approximation 95% interval of a mean over independent episodes."""
    m = float(np.mean(x))
    se = float(np.std(x, ddof=1) / np.sqrt(x.size)) if x.size > 1 else float("inf")
    return m, m - Z95 * se, m + Z95 * se


def wilson_interval(k: int, n: int) -> tuple[float, float, float]:
    """(proportion, low, high): Wilson score 95% interval.

    >>> [round(v, 3) for v in wilson_interval(20, 100)]
    [0.2, 0.133, 0.289]
    """
    p = k / n
    denom = 1.0 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * np.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    lo = 0.0 if k == 0 else max(0.0, float(centre - half))
    hi = 1.0 if k == n else min(1.0, float(centre + half))
    return p, lo, hi


def evaluate_in_closed_loop(
    policy: Policy | UsualCare | Oracle,
    spec: CohortSpec,
    manifest: CohortManifest,
    n_episodes: int,
    seed: int,
    config: SepsisConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> GroundTruthResult:
    """True value (discounted return per the spec) and hospital mortality of `policy`, with 95% MC intervals."""
    run = run_closed_loop(policy, spec, manifest, n_episodes, seed, config, progress)
    returns = episode_returns(spec, run.tables, fill_values_from_manifest(manifest))
    if returns.height < 2:
        raise InputError(f"closed loop: only {returns.height} episode(s) passed the cohort criteria; "
                         "expected at least 2. Run more --episodes.")
    value, lo, hi = mean_interval(returns["return"].to_numpy())
    deaths = int(returns["died_in_hospital"].sum())
    mort, mlo, mhi = wilson_interval(deaths, returns.height)
    included = run.tables["stays"].filter(pl.col("stay_id").is_in(returns["stay_id"].implode()))
    icu = included.filter(pl.col("died_in_hospital") & (pl.col("death_time") <= pl.col("discharge_time"))).height
    t = spec.time
    return GroundTruthResult(
        policy=policy.name, seed=seed, episodes=n_episodes, included=returns.height, spec_name=spec.name,
        spec_hash=spec.spec_hash(), step_hours=t.step_hours, window_hours=(t.window_start_hours, t.window_end_hours),
        gamma=spec.gamma, value=value, value_ci_low=lo, value_ci_high=hi, mortality=mort,
        mortality_ci_low=mlo, mortality_ci_high=mhi, icu_mortality=icu / returns.height,
    )
