"""Validate the canonical EHR tables without loading them: the same report, from lazy scans.

`validate_folder` reads every table into memory first (`read_ehr`), which an extract of hundreds
of millions of measurement rows does not fit. `scan_validate_folder` checks the same rules
(CONTRACTS.md §1, `ehr.validate`) on lazy scans of the files. Each table is cast lazily, and a
cell that does not cast is flagged (`bad_type`) in the same query. Streaming passes then count
every rule, find the first example rows of the rules that fired, and group a 64-bit hash of each
row for `duplicate_rows`. What stays in memory is the stays table (one row per stay, for
`unknown_stay_id`) and, for the repeat check, one hash and row index per distinct row. Two rows
count as repeats when every contract column hashes alike: a collision between different rows
(probability about n^2 / 2^65) would count a repeat the eager check does not.

The report equals `validate_folder`'s on any folder (tested property): the same violations,
warnings, counts and example rows, in the same order.

>>> import tempfile, polars as pl
>>> from clinical_mborl.ehr.tables import TABLES
>>> d = tempfile.mkdtemp()
>>> _ = [pl.DataFrame({c: [] for c in t.columns}).write_csv(f"{d}/{n}.csv") for n, t in TABLES.items()]
>>> scan_validate_folder(d).ok
True
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from clinical_mborl.core.errors import Violation
from clinical_mborl.core.io import sha256_file
from clinical_mborl.ehr import reasons as R
from clinical_mborl.ehr.readers import (
    DATETIME_FORMATS,
    EXAMPLE_ROWS,
    _type_hint,
    cast_expr,
    locate_tables,
    missing_column,
    scan_raw,
)
from clinical_mborl.ehr.tables import TABLES
from clinical_mborl.ehr.validate import Rule, ValidationReport, table_rules, unknown_stay_rule

_RAW = "__raw_"


def _cast_rules(name: str, schema: pl.Schema) -> tuple[list[pl.Expr], list[Rule], list[Rule], list[str]]:
    """Casting expressions (raw copies kept where a cast can fail), the `bad_type` rules, the
    `null_required` rules (a cell that failed the cast counts as `bad_type` only) and the missing
    columns, in contract order."""
    contract = TABLES[name]
    exprs: list[pl.Expr] = []
    bad: list[Rule] = []
    nulls: list[Rule] = []
    missing = [c for c in contract.columns if c not in schema]
    for c, target in contract.schema.items():
        failed = pl.lit(False)
        if c in missing:
            exprs.append(pl.lit(None, dtype=target).alias(c))
        elif schema[c] == target:
            exprs.append(pl.col(c))
        else:
            exprs += [cast_expr(c, schema[c], target, DATETIME_FORMATS), pl.col(c).alias(_RAW + c)]
            failed = pl.col(_RAW + c).is_not_null() & pl.col(c).is_null()
            bad.append(Rule(R.BAD_TYPE, name, c, (), failed, _type_hint(target)))
        if c not in contract.nullable:
            nulls.append(Rule(R.NULL_REQUIRED, name, c, (c,), pl.col(c).is_null() & ~failed,
                              f"{c} is required; fill it or drop the rows"))
    return exprs, bad, nulls, missing


def _count(lf: pl.LazyFrame, rules: list[Rule]) -> tuple[int, list[Violation]]:
    """Rows of `lf` and a `Violation` per rule that any row breaks.

    One streaming pass counts every rule; a second finds the first example rows of the rules that
    fired (a filter and a head per rule, concatenated into one query); each plan streams, so no
    column is held in memory whole.
    """
    counts = lf.select(pl.len().alias("__n"), *(r.mask.fill_null(False).sum().alias(f"n{i}")
                                                for i, r in enumerate(rules))).collect(engine="streaming").row(0)
    n, fired = int(counts[0]), [i for i, c in enumerate(counts[1:]) if c]
    rows: dict[int, list[int]] = {i: [] for i in fired}
    if fired:
        indexed = lf.with_row_index("__row")
        parts = [indexed.filter(rules[i].mask.fill_null(False)).select(pl.col("__row"), pl.lit(i).alias("__rule"))
                 .bottom_k(EXAMPLE_ROWS, by="__row") for i in fired]  # the first rows, in any execution order
        for row, i in pl.concat(parts).collect(engine="streaming").iter_rows():
            rows[i].append(int(row))
    return n, [Violation(rules[i].reason, rules[i].table, rules[i].column, int(counts[1 + i]),
                         tuple(sorted(rows[i])), rules[i].hint) for i in fired]


def _duplicates(lf: pl.LazyFrame, name: str) -> Violation | None:
    """`duplicate_rows`: rows after the first with the same hash of every contract column."""
    cols = TABLES[name].columns
    hashed = lf.select(pl.struct(cols).hash(seed=0).alias("__h")).with_row_index("__row")
    repeated = (hashed.group_by("__h").agg(pl.col("__row").min().alias("__first"), pl.len().alias("__k"))
                .filter(pl.col("__k") > 1).collect(engine="streaming"))  # only hashes seen twice or more
    count = int(repeated["__k"].sum()) - repeated.height
    if not count:
        return None
    rows = (hashed.join(repeated.lazy().select("__h", "__first"), on="__h")
            .filter(pl.col("__row") != pl.col("__first")).select("__row")
            .bottom_k(EXAMPLE_ROWS, by="__row").sort("__row").collect(engine="streaming")["__row"])
    rule = next(r for r in table_rules(name) if r.reason == R.DUPLICATE_ROWS)
    return Violation(R.DUPLICATE_ROWS, name, "*", count, tuple(int(x) for x in rows), rule.hint)


def scan_validate_folder(folder: str | Path) -> ValidationReport:
    """`validate_folder` on lazy scans: the same report for tables that do not fit in memory.

    >>> scan_validate_folder("path/to/ehr").ok  # doctest: +SKIP
    True
    """
    paths = locate_tables(folder)
    errors: list[Violation] = []
    warnings: list[Violation] = []
    counts: dict[str, int] = {}
    ignored: dict[str, list[str]] = {}
    stay_ids: pl.Series | None = None
    for name in ("stays", "measurements", "treatments"):
        raw = scan_raw(paths[name])
        schema = raw.collect_schema()
        exprs, bad, nulls, missing = _cast_rules(name, schema)
        ignored[name] = [c for c in schema if c not in TABLES[name].schema]
        lf = raw.select(exprs)
        rules = nulls + ([unknown_stay_rule(name, stay_ids)] if name != "stays" and stay_ids is not None else [])
        rules += [r for r in table_rules(name) if r.reason != R.DUPLICATE_ROWS]
        n, found = _count(lf, bad + [r for r in rules if not set(missing).intersection(r.needs)])
        duplicate = None if name == "stays" or missing else _duplicates(lf, name)
        found += [duplicate] if duplicate is not None else []
        counts[name] = n
        if name == "stays" and "stay_id" not in missing:
            stay_ids = lf.select(pl.col("stay_id").drop_nulls().unique()).collect()["stay_id"]
        errors += [missing_column(TABLES[name], c, n) for c in missing]
        errors += [v for v in found if v.reason in R.ERROR_REASONS]
        warnings += [v for v in found if v.reason in R.WARNING_REASONS]
    return ValidationReport(
        ok=not errors,
        row_counts=counts,
        violations=[v.to_dict() for v in errors],
        warnings=[v.to_dict() for v in warnings],
        duplicate_rows={name: next((w.count for w in warnings if w.table == name), 0)
                        for name in ("measurements", "treatments")},
        ignored_columns=ignored,
        source_files={p.name: sha256_file(p) for p in paths.values()},
    )
