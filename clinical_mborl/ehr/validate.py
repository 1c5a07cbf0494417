"""Validate the canonical EHR tables: every rule of CONTRACTS.md §1, all violations in one pass.

Each rule is a polars boolean expression over one table; all rules of a table are evaluated in
one `select` (a count and the first few 0-based row indices per rule). Messages and reports hold
table, column, reason code, count and row indices, never a patient value.

>>> from clinical_mborl.ehr.tables import TABLES
>>> empty = {n: pl.DataFrame(schema=t.schema) for n, t in TABLES.items()}
>>> validate_ehr(EHRTables.from_frames(**empty)).ok
True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from clinical_mborl.core.errors import ValidationFailed, Violation
from clinical_mborl.core.models import StrictModel
from clinical_mborl.ehr import reasons as R
from clinical_mborl.ehr.readers import EXAMPLE_ROWS, EHRTables, read_ehr
from clinical_mborl.ehr.tables import AGE_YEARS_MAX, SEX_VALUES, TABLES

REPORT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Rule:
    """One check: rows where `mask` is true break it. Skipped if a column in `needs` is missing."""

    reason: str
    table: str
    column: str
    needs: tuple[str, ...]
    mask: pl.Expr
    hint: str


def _finite(c: str) -> pl.Expr:
    return pl.col(c).is_finite()


def _stays_rules() -> list[Rule]:
    t = "stays"
    c = pl.col
    return [
        Rule(R.DUPLICATE_STAY_ID, t, "stay_id", ("stay_id",),
             c("stay_id").is_not_null() & ~c("stay_id").is_first_distinct(),
             "stay_id must be unique in stays; merge or renumber the repeated stays"),
        Rule(R.DISCHARGE_BEFORE_ADMIT, t, "discharge_time", ("admit_time", "discharge_time"),
             c("discharge_time") < c("admit_time"), "expected discharge_time >= admit_time"),
        Rule(R.DEATH_TIME_MISMATCH, t, "death_time", ("died_in_hospital", "death_time"),
             c("died_in_hospital") != c("death_time").is_not_null(),
             "set death_time exactly on the rows where died_in_hospital is true"),
        Rule(R.DEATH_BEFORE_ADMIT, t, "death_time", ("admit_time", "death_time"),
             c("death_time") < c("admit_time"), "expected death_time >= admit_time"),
        Rule(R.NON_FINITE, t, "age_years", ("age_years",), ~_finite("age_years"),
             "expected a finite number of years"),
        Rule(R.NEGATIVE_AGE, t, "age_years", ("age_years",),
             _finite("age_years") & (c("age_years") < 0), "expected age_years >= 0"),
        Rule(R.IMPLAUSIBLE_AGE, t, "age_years", ("age_years",),
             _finite("age_years") & (c("age_years") > AGE_YEARS_MAX),
             f"expected age_years <= {AGE_YEARS_MAX:g} (MIMIC-III shifts ages over 89 to ~300: "
             "map them in the adapter)"),
        Rule(R.BAD_SEX, t, "sex", ("sex",), c("sex").is_not_null() & ~c("sex").is_in(SEX_VALUES),
             f"expected one of {', '.join(SEX_VALUES)} (U for unknown)"),
        Rule(R.NON_FINITE, t, "weight_kg", ("weight_kg",), ~_finite("weight_kg"),
             "expected a finite weight in kg, or empty"),
        Rule(R.NON_POSITIVE_WEIGHT, t, "weight_kg", ("weight_kg",),
             _finite("weight_kg") & (c("weight_kg") <= 0), "expected weight_kg > 0, or empty"),
    ]


def unknown_stay_rule(table: str, stay_ids: pl.Series) -> Rule:
    return Rule(R.UNKNOWN_STAY_ID, table, "stay_id", ("stay_id",),
                pl.col("stay_id").is_not_null() & ~pl.col("stay_id").is_in(stay_ids.implode()),
                "every stay_id must exist in stays; add the stay or drop its rows")


def _measurement_rules() -> list[Rule]:
    return [Rule(R.NON_FINITE, "measurements", "value", ("value",), ~_finite("value"),
                 "expected a finite number; drop or fix NaN/inf values")]


def _treatment_rules() -> list[Rule]:
    t = "treatments"
    c = pl.col
    rules = [
        Rule(R.END_BEFORE_START, t, "end_time", ("start_time", "end_time"),
             c("end_time") < c("start_time"), "expected end_time >= start_time (equal for a bolus)"),
        Rule(R.NO_DOSE, t, "amount", ("amount", "rate"), c("amount").is_null() & c("rate").is_null(),
             "neither amount nor rate is set; give at least one"),
    ]
    for dose in ("amount", "rate"):
        rules += [
            Rule(R.NON_FINITE, t, dose, (dose,), ~_finite(dose), f"expected a finite {dose}, or empty"),
            Rule(R.NEGATIVE_DOSE, t, dose, (dose,), _finite(dose) & (c(dose) < 0), f"expected {dose} >= 0"),
            Rule(R.DOSE_WITHOUT_UNIT, t, f"{dose}_unit", (dose, f"{dose}_unit"),
                 c(dose).is_not_null() & c(f"{dose}_unit").is_null(), f"{dose} is set: give {dose}_unit"),
        ]
    return rules


def _null_rules(tables: EHRTables, table: str) -> list[Rule]:
    contract = TABLES[table]
    issues = tables.issues_of(table)
    out = []
    for col in contract.columns:
        if col in contract.nullable:
            continue
        mask = pl.col(col).is_null()
        bad = issues.bad_cells.get(col)
        if bad is not None and bad.size:  # cells that failed the cast are already `bad_type`
            mask = mask & ~pl.int_range(pl.len(), dtype=pl.Int64).is_in(pl.Series(bad, dtype=pl.Int64).implode())
        out.append(Rule(R.NULL_REQUIRED, table, col, (col,), mask, f"{col} is required; fill it or drop the rows"))
    return out


def _duplicate_rule(table: str) -> Rule:
    cols = TABLES[table].columns
    return Rule(R.DUPLICATE_ROWS, table, "*", tuple(cols), ~pl.struct(cols).is_first_distinct(),
                "exact repeats of an earlier row; the cohort spec decides whether to drop them")


def table_rules(table: str) -> list[Rule]:
    """The rules of one table beyond required columns and known stays, in report order."""
    if table == "stays":
        return _stays_rules()
    specific = _measurement_rules() if table == "measurements" else _treatment_rules()
    return [*specific, _duplicate_rule(table)]


def evaluate_rules(df: pl.DataFrame, rules: list[Rule], missing: frozenset[str] = frozenset()) -> list[Violation]:
    """Evaluate `rules` on `df` in one `select`; return a `Violation` per rule that any row breaks.

    >>> df = pl.DataFrame({"x": [1.0, -2.0, -3.0]})
    >>> rule = Rule("negative", "t", "x", ("x",), pl.col("x") < 0, "expected x >= 0")
    >>> evaluate_rules(df, [rule])[0].example_rows
    (1, 2)
    """
    active = [r for r in rules if not missing.intersection(r.needs)]
    if not active or df.height == 0:
        return []
    # Materialise the masks once (bit-packed booleans), then count and locate in a second pass.
    masks = df.select(r.mask.fill_null(False).alias(f"m{i}") for i, r in enumerate(active))
    exprs: list[pl.Expr] = []
    for i in range(len(active)):
        m = pl.col(f"m{i}")
        exprs += [m.sum().alias(f"n{i}"), m.arg_true().head(EXAMPLE_ROWS).implode().alias(f"e{i}")]
    row = masks.select(exprs).row(0, named=True)
    return [
        Violation(r.reason, r.table, r.column, int(row[f"n{i}"]), tuple(int(x) for x in row[f"e{i}"]), r.hint)
        for i, r in enumerate(active)
        if row[f"n{i}"]
    ]


class ValidationReport(StrictModel):
    """Result of `validate_ehr`: counts, violations (errors) and warnings, as plain JSON data.

    >>> ValidationReport(ok=True, row_counts={"stays": 0}).describe().splitlines()[-1]
    'result: OK (0 violation(s), 0 warning(s))'
    """

    schema_version: int = REPORT_SCHEMA_VERSION
    ok: bool
    row_counts: dict[str, int]
    violations: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    duplicate_rows: dict[str, int] = {}
    ignored_columns: dict[str, list[str]] = {}
    source_files: dict[str, str] = {}

    def violation_objects(self) -> list[Violation]:
        """The violations as `core.errors.Violation` (for `ValidationFailed`)."""
        return [Violation(**{**v, "example_rows": tuple(v["example_rows"])}) for v in self.violations]

    def describe(self) -> str:
        """A readable summary: one line per violation and warning (no patient values)."""
        counts = ", ".join(f"{k}={v}" for k, v in self.row_counts.items())
        lines = [f"rows: {counts}"]
        for title, items in (("violations", self.violations), ("warnings", self.warnings)):
            if not items:
                continue
            lines.append(f"{title}:")
            lines.append(f"  {'table':<13} {'column':<15} {'reason':<23} {'count':>9}  example rows")
            for v in items:
                rows = ", ".join(str(i) for i in v["example_rows"])
                lines.append(f"  {v['table']:<13} {v['column'] or '':<15} {v['reason']:<23} {v['count']:>9}  {rows}")
        for table, cols in self.ignored_columns.items():
            if cols:
                lines.append(f"ignored extra columns in {table}: {', '.join(cols)}")
        verdict = "OK" if self.ok else "FAILED"
        lines.append(f"result: {verdict} ({len(self.violations)} violation(s), {len(self.warnings)} warning(s))")
        return "\n".join(lines)


def validate_ehr(tables: EHRTables) -> ValidationReport:
    """Check every rule on every table and return the report (never raises on bad data).

    >>> report = validate_ehr(read_ehr("path/to/ehr"))  # doctest: +SKIP
    >>> report.ok, [v["reason"] for v in report.violations]  # doctest: +SKIP
    (False, ['non_finite'])
    """
    frames = tables.frames()
    stays_missing = tables.issues_of("stays").missing_columns
    stay_ids = frames["stays"]["stay_id"].drop_nulls().unique() if "stay_id" not in stays_missing else None
    errors: list[Violation] = []
    warnings: list[Violation] = []
    for name, df in frames.items():
        issues = tables.issues_of(name)
        rules = _null_rules(tables, name)
        if name != "stays" and stay_ids is not None:
            rules.append(unknown_stay_rule(name, stay_ids))
        rules += table_rules(name)
        found = evaluate_rules(df, rules, issues.missing_columns)
        errors += list(issues.violations) + [v for v in found if v.reason in R.ERROR_REASONS]
        warnings += [v for v in found if v.reason in R.WARNING_REASONS]
    return ValidationReport(
        ok=not errors,
        row_counts=tables.row_counts(),
        violations=[v.to_dict() for v in errors],
        warnings=[v.to_dict() for v in warnings],
        duplicate_rows={
            name: next((w.count for w in warnings if w.table == name), 0) for name in ("measurements", "treatments")
        },
        ignored_columns={name: list(tables.issues_of(name).ignored_columns) for name in frames},
        source_files=dict(tables.source_files),
    )


def check_ehr(tables: EHRTables) -> ValidationReport:
    """Validate and raise `ValidationFailed` (exit code 2) listing every violation; else the report.

    >>> check_ehr(read_ehr("path/to/ehr"))  # doctest: +SKIP
    """
    report = validate_ehr(tables)
    if not report.ok:
        raise ValidationFailed(report.violation_objects(), context="EHR tables")
    return report


def validate_folder(folder: str | Path) -> ValidationReport:
    """Read a folder of canonical tables and validate it (the CLI's library call).

    >>> validate_folder("path/to/ehr").ok  # doctest: +SKIP
    True
    """
    return validate_ehr(read_ehr(folder))
