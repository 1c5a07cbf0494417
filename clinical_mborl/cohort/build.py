"""`build_cohort`: canonical EHR tables + a `CohortSpec` -> `transitions.parquet` + `manifest.json`.

The steps, in order (each in its own module): validate the input (`ehr.check_ehr`), stay windows
(`timegrid`), measurement rows with unit conversion, valid ranges and exact duplicates
(`measurements`), criteria and cohort flow (`criteria`), patient pseudonyms and split
(`splits`), states at every decision time (`features`, the temporal rule is documented there
and in `timegrid`), fill values fitted on train, doses per step (`actions`), rewards and
terminal flags (`rewards`), dose levels fitted on train (`levels`), normalisation fitted on
train, and the manifest (`summary`). Every input row not used is counted in `dropped_rows`.
The output folder is written atomically: a failure leaves no partial files.

>>> manifest = build_cohort(load_cohort_spec("cohorts/sepsis_fluids_vasopressors.yaml"),
...                         "ehr/", "out/cohort")  # doctest: +SKIP
>>> manifest.counts["train"].stays  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
from tqdm import tqdm

from clinical_mborl.cohort import actions, features
from clinical_mborl.cohort.criteria import apply_criteria
from clinical_mborl.cohort.levels import fit_dimension
from clinical_mborl.cohort.manifest import ActionSpaceInfo, CohortManifest
from clinical_mborl.cohort.measurements import scan_spec_measurements
from clinical_mborl.cohort.rewards import add_rewards
from clinical_mborl.cohort.spec import CohortSpec
from clinical_mborl.cohort.splits import assign_splits, patient_keys
from clinical_mborl.cohort.summary import (
    count_dropped,
    fit_fill_values,
    make_manifest,
    state_feature_infos,
)
from clinical_mborl.cohort.timegrid import TimeGrid, grid_decisions, stay_windows
from clinical_mborl.cohort.transitions import MANIFEST_FILE, NEXT_PREFIX, TRANSITIONS_FILE
from clinical_mborl.cohort.treatment_history import treatment_history
from clinical_mborl.core.errors import InputError
from clinical_mborl.core.io import atomic_directory, atomic_write_text, sha256_file


@dataclass(frozen=True)
class EHRInput:
    """The three canonical tables (stays eager, the large ones lazy) and the sha256 of each file."""

    stays: pl.DataFrame
    measurements: pl.LazyFrame
    treatments: pl.LazyFrame
    source_files: dict[str, str]


def open_ehr(ehr_dir: str | Path, validate: bool = True, streaming_validation: bool = False) -> EHRInput:
    """Read (and by default validate with `check_ehr`) the canonical tables in `ehr_dir`.

    With `streaming_validation` the same rules are checked on lazy scans
    (`ehr.scan_validate_folder`) and the large tables are never read into memory whole. Without
    validation they are only scanned; validate a folder at least once (`clinical-mborl cohort
    validate`) before building without it.
    """
    from clinical_mborl.ehr import check_ehr, locate_tables, read_ehr, scan_ehr

    if validate and not streaming_validation:
        tables = read_ehr(ehr_dir)
        check_ehr(tables)
        return EHRInput(tables.stays, tables.measurements.lazy(), tables.treatments.lazy(),
                        dict(tables.source_files))
    if validate:
        from clinical_mborl.core.errors import ValidationFailed
        from clinical_mborl.ehr.scan_validate import scan_validate_folder

        report = scan_validate_folder(ehr_dir)
        if not report.ok:
            raise ValidationFailed(report.violation_objects(), context="EHR tables")
        hashes = dict(report.source_files)
    else:
        hashes = {p.name: sha256_file(p) for p in locate_tables(ehr_dir).values()}
    lazy = scan_ehr(ehr_dir)
    return EHRInput(lazy["stays"].collect(), lazy["measurements"], lazy["treatments"], hashes)


def build_cohort(
    spec: CohortSpec,
    ehr_dir: str | Path,
    out_dir: str | Path,
    *,
    progress: bool = True,
    validate: bool = True,
    streaming: bool = True,
    streaming_validation: bool = False,
) -> CohortManifest:
    """Build the cohort of `spec` from the tables in `ehr_dir` into `out_dir` (CONTRACTS.md §3).

    Writes `transitions.parquet` and `manifest.json` atomically and returns the manifest.
    `out_dir` is replaced if it holds a previous cohort; any other non-empty folder is refused.
    Raises `InputError` (exit code 2) for invalid tables, unconvertible units, or duplicates
    when the spec says `duplicates: error`. `streaming_validation` checks the tables on lazy scans
    (`open_ehr`): for extracts larger than memory.

    >>> build_cohort(spec, "ehr/", "out/cohort", progress=False)  # doctest: +SKIP
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST_FILE).is_file())):
        raise InputError(
            f"output {out} exists and is not a cohort folder; expected a new or empty folder, "
            "or a previous `cohort build` output to replace. Choose another --out."
        )
    with tqdm(total=8, desc="cohort build", disable=not progress, leave=False) as bar:
        inputs = open_ehr(ehr_dir, validate=validate, streaming_validation=streaming_validation)
        bar.update()
        frame, manifest = build_transitions(spec, inputs, streaming=streaming, bar=bar)
        with atomic_directory(out) as tmp:
            frame.write_parquet(tmp / TRANSITIONS_FILE, compression="zstd", statistics=True)
            manifest = manifest.model_copy(update={"transitions_sha256": sha256_file(tmp / TRANSITIONS_FILE)})
            atomic_write_text(tmp / MANIFEST_FILE, manifest.model_dump_json(indent=2) + "\n")
        bar.update()
    return manifest


def build_transitions(
    spec: CohortSpec, inputs: EHRInput, *, streaming: bool = True, bar: tqdm | None = None
) -> tuple[pl.DataFrame, CohortManifest]:
    """The transitions frame and its manifest (with an empty `transitions_sha256`), in memory."""
    tick = bar.update if bar is not None else (lambda: None)
    grid = TimeGrid.from_spec(spec.time)
    windows = stay_windows(grid, inputs.stays)
    rows = scan_spec_measurements(
        spec, inputs.measurements, windows.select("stay_id", "stay_idx", "lb_us", "stay_end_us"), streaming=streaming
    )
    n_measurements = int(inputs.measurements.select(pl.len()).collect().item())
    tick()
    required = [i for i, f in enumerate(spec.features) if f.name in spec.criteria.require_features]
    usable = pl.col("stay_idx").is_not_null() & pl.col("in_time") & pl.col("in_range")
    has_feature = rows.filter(usable & pl.col("feat").is_in(required)).select("stay_idx", "feat").unique()
    windows, flow = apply_criteria(spec, windows, has_feature)
    included = windows.filter(pl.col("excluded_by").is_null())
    if included.height == 0:
        raise InputError(
            f"cohort {spec.name}: no stay passes the criteria ({windows.height} in); expected at least one. "
            "See the exclusion flow: " + "; ".join(f"{s.reason}: {s.stays_removed}" for s in flow)
        )
    included = _with_splits(spec, included)
    tick()
    excluded = windows["excluded_by"].is_not_null().to_numpy()  # windows are in stay_idx order
    dropped, usable_rows = count_dropped(spec, rows, n_measurements, excluded)
    chart = features.ChartIndex.build(usable_rows, windows["lb_us"].to_numpy(), len(spec.features))
    dropped.append(("measurements", "exact_duplicate", chart.n_duplicates))

    decisions = grid_decisions(grid, included)
    values = features.window_values(spec, chart, decisions)
    statics = features.static_values(spec, windows, decisions["stay_idx"])
    raw_states = features.assemble_states(spec, values, statics)
    tick()
    per_row = decisions.join(
        included.select("stay_idx", "stay_id", "patient_key", "split", "n_steps", "ends_in_window",
                        "died_in_hospital"),
        on="stay_idx", how="left", maintain_order="left",
    )
    is_transition = (per_row["step"] < per_row["n_steps"]).to_numpy()
    train_states = raw_states.filter(pl.Series(is_transition & (per_row["split"] == "train").to_numpy()))
    fills = fit_fill_values(spec, train_states)
    states = features.apply_fill(spec, raw_states, fills)
    tick()

    weight_fill = _train_weight(included)
    doses, t_dropped, timing = _doses(spec, inputs.treatments, windows, included, weight_fill)
    dropped += t_dropped
    _refuse_duplicates(spec, dropped)
    tick()

    names = features.state_names(spec)
    if spec.treatment_features:
        history = treatment_history(spec, doses, decisions.select("stay_idx", "step"))
        states = pl.concat([states, history], how="horizontal").select(names)
    nxt = states.select(pl.all().shift(-1).name.prefix(NEXT_PREFIX))
    frame = pl.concat([per_row, states, nxt], how="horizontal").filter(pl.Series(is_transition))
    frame = frame.join(doses, on=["stay_idx", "step"], how="left", maintain_order="left")
    frame = add_rewards(spec, frame)
    train = frame.filter(pl.col("split") == "train")
    dims = [fit_dimension(a, train[a.name].to_numpy()) for a in spec.actions]
    space = ActionSpaceInfo(kind=spec.action_kind, dimensions=dims)
    if space.kind == "discrete":
        from clinical_mborl.cohort.levels import bin_doses

        joint = bin_doses(space, frame.select(a.name for a in spec.actions).to_numpy())
        frame = frame.with_columns(pl.Series("action", joint, dtype=pl.Int64))
    tick()
    missing_share = _missingness(spec, raw_states.filter(pl.Series(is_transition)))
    columns = ["stay_id", "patient_key", "step", "split", *names,
               *(["action"] if space.kind == "discrete" else []), *[a.name for a in spec.actions],
               "reward", "reward_intermediate", "done", "died", "truncated", *[NEXT_PREFIX + n for n in names]]
    frame = frame.sort("stay_idx", "step").select(columns)
    infos = state_feature_infos(spec, frame.filter(pl.col("split") == "train"), fills)
    manifest = make_manifest(spec, inputs, frame, infos, space, included, flow, dropped, missing_share, timing)
    return frame, manifest


def _with_splits(spec: CohortSpec, included: pl.DataFrame) -> pl.DataFrame:
    keyed = included.with_columns(patient_keys(included["patient_id"], spec.spec_hash()))
    patients = keyed.group_by("patient_id", "patient_key").agg(pl.col("died_in_hospital").any().alias("died"))
    split = assign_splits(patients, spec.split, order_by="patient_id").select("patient_key", "split")
    return keyed.join(split, on="patient_key", how="left", maintain_order="left")


def _train_weight(included: pl.DataFrame) -> float | None:
    w = included.filter(pl.col("split") == "train")["weight_kg"].drop_nulls()
    return float(w.median()) if w.len() else None  # type: ignore[arg-type]


def _doses(
    spec: CohortSpec, treatments: pl.LazyFrame, windows: pl.DataFrame, included: pl.DataFrame,
    weight_fill: float | None,
) -> tuple[pl.DataFrame, list[tuple[str, str, int]], list[tuple[str, int, float]]]:
    rows = actions.spec_treatment_rows(spec, treatments)
    n_total = int(treatments.select(pl.len()).collect().item())
    stay_info = windows.select("stay_id", "stay_idx", "t0_us", "stay_end_us", "weight_kg",
                               pl.col("excluded_by").is_null().alias("included"))
    joined = rows.join(stay_info, on="stay_id", how="left", maintain_order="left")
    reason = (
        pl.when(pl.col("stay_idx").is_null()).then(pl.lit("unknown_stay"))
        .when(~pl.col("included")).then(pl.lit("excluded_stay"))
        .when(pl.col("dup")).then(pl.lit("exact_duplicate"))
        .when(~actions.usable_dose()).then(pl.lit("no_usable_dose"))
        .when(~actions.inside_window()).then(pl.lit("outside_window"))
    )
    joined = joined.with_columns(reason.alias("reason"))
    counts = dict(joined.group_by("reason").len().drop_nulls("reason").iter_rows())
    dropped = [("treatments", "treatment_not_in_spec", n_total - rows.height)]
    dropped += [("treatments", r, int(counts.get(r, 0)))
                for r in ("unknown_stay", "excluded_stay", "exact_duplicate", "no_usable_dose", "outside_window")]
    kept = joined.filter(pl.col("reason").is_null()).with_columns(
        pl.col("weight_kg").fill_null(weight_fill).alias("weight")
    )
    needs_kg = kept.filter(pl.col("per_kg"))
    if needs_kg.height:
        actions.check_weights(needs_kg)
    doses = actions.step_doses(spec, kept, included.select("stay_idx", "n_steps"))
    return doses, dropped, actions.order_timing(spec, kept)


def _refuse_duplicates(spec: CohortSpec, dropped: list[tuple[str, str, int]]) -> None:
    if spec.duplicates != "error":
        return
    for table, reason, n in dropped:
        if reason == "exact_duplicate" and n:
            raise InputError(
                f"{table}: {n} exact duplicate row(s) and the spec says `duplicates: error`; "
                "expected none. Remove them or set `duplicates: drop_exact` to drop and count them."
            )


def _missingness(spec: CohortSpec, raw_states: pl.DataFrame) -> dict[str, float]:
    names = features.measurement_names(spec) + [s.name for s in spec.static_features]
    n = raw_states.height
    return {name: (float(raw_states[name].null_count() / n) if n else 0.0) for name in names}

