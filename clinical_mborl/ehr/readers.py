"""Read the canonical EHR tables from a folder of parquet or CSV files.

Each table is `<name>.parquet` or `<name>.csv` (exactly one of them). Columns are cast to the
contract types of `clinical_mborl.ehr.tables`; a value that does not cast is not a crash: it
becomes null and is recorded as a `bad_type` violation (table, column, count, 0-based row
indices), which `validate_ehr` reports with every other rule. Extra columns are ignored (and
listed); a missing column is added as nulls and recorded as `missing_column`.

>>> import tempfile, polars as pl
>>> d = tempfile.mkdtemp()
>>> _ = [pl.DataFrame({c: [] for c in t.columns}).write_csv(f"{d}/{n}.csv") for n, t in TABLES.items()]
>>> read_ehr(d).measurements.schema["time"]
Datetime(time_unit='us', time_zone=None)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from clinical_mborl.core.errors import InputError, Violation
from clinical_mborl.core.io import sha256_file
from clinical_mborl.ehr.reasons import BAD_TYPE, MISSING_COLUMN
from clinical_mborl.ehr.tables import TABLES, TableContract

SUFFIXES = (".parquet", ".csv")
EXAMPLE_ROWS = 5
# ISO 8601 after replacing the date/time separator "T" by a space; tried in order.
DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%d")
TRUE_STRINGS = ("true", "t", "1", "yes", "y")
FALSE_STRINGS = ("false", "f", "0", "no", "n")
_TYPE_HINTS = {
    pl.String: "expected text",
    pl.Float64: "expected a number (e.g. 72.5)",
    pl.Boolean: "expected true/false (or 1/0)",
    pl.Datetime: "expected a naive ISO 8601 datetime such as 2020-01-31T08:00:00 (no time zone)",
}


@dataclass(frozen=True)
class TableIssues:
    """What happened while casting one table to its contract.

    `bad_cells` maps a column to the 0-based row indices whose value did not cast (now null).
    """

    violations: tuple[Violation, ...] = ()
    bad_cells: Mapping[str, np.ndarray] = field(default_factory=dict)
    missing_columns: frozenset[str] = frozenset()
    ignored_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class EHRTables:
    """The three canonical tables, cast to the contract, with the issues found while reading.

    `source_files` maps each file name to its sha256 (empty for in-memory tables).

    >>> from clinical_mborl.ehr.tables import STAYS, MEASUREMENTS, TREATMENTS
    >>> empty = {t.name: pl.DataFrame(schema=t.schema) for t in (STAYS, MEASUREMENTS, TREATMENTS)}
    >>> EHRTables.from_frames(**empty).row_counts()
    {'stays': 0, 'measurements': 0, 'treatments': 0}
    """

    stays: pl.DataFrame
    measurements: pl.DataFrame
    treatments: pl.DataFrame
    source_files: dict[str, str] = field(default_factory=dict)
    issues: dict[str, TableIssues] = field(default_factory=dict)

    def frames(self) -> dict[str, pl.DataFrame]:
        """The tables keyed by name, in contract order."""
        return {"stays": self.stays, "measurements": self.measurements, "treatments": self.treatments}

    def row_counts(self) -> dict[str, int]:
        return {name: df.height for name, df in self.frames().items()}

    def issues_of(self, table: str) -> TableIssues:
        return self.issues.get(table, TableIssues())

    @classmethod
    def from_frames(
        cls,
        stays: pl.DataFrame,
        measurements: pl.DataFrame,
        treatments: pl.DataFrame,
        source_files: dict[str, str] | None = None,
    ) -> EHRTables:
        """Cast in-memory frames to the contract exactly as the file readers do."""
        raw = {"stays": stays, "measurements": measurements, "treatments": treatments}
        cast = {name: coerce_table(df, TABLES[name]) for name, df in raw.items()}
        return cls(
            stays=cast["stays"][0],
            measurements=cast["measurements"][0],
            treatments=cast["treatments"][0],
            source_files=dict(source_files or {}),
            issues={name: issues for name, (_, issues) in cast.items()},
        )


def locate_tables(folder: str | Path) -> dict[str, Path]:
    """Find exactly one `<table>.parquet` or `<table>.csv` per table; raise `InputError` otherwise.

    >>> locate_tables("/nonexistent")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    clinical_mborl.core.errors.InputError: EHR folder /nonexistent does not exist
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(
            f"EHR folder {folder} does not exist or is not a folder; expected a folder holding "
            "stays, measurements and treatments as .parquet or .csv files (CONTRACTS.md §1)."
        )
    found: dict[str, Path] = {}
    problems: list[str] = []
    for name in TABLES:
        paths = [folder / f"{name}{suffix}" for suffix in SUFFIXES if (folder / f"{name}{suffix}").is_file()]
        if not paths:
            problems.append(
                f"table '{name}': no {name}.parquet or {name}.csv in {folder}; add one "
                "(an empty table with the header is fine)"
            )
        elif len(paths) > 1:
            problems.append(
                f"table '{name}': both {name}.parquet and {name}.csv in {folder}; expected exactly one, "
                "remove the other"
            )
        else:
            found[name] = paths[0]
    if problems:
        raise InputError("cannot read the EHR tables:\n  - " + "\n  - ".join(problems))
    return found


def _read_raw(path: Path) -> pl.DataFrame:
    try:
        if path.suffix == ".parquet":
            return pl.read_parquet(path)
        # Every CSV column as text: ids keep leading zeros; casting is ours to control.
        return pl.read_csv(path, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        # The library's message may quote file content (patient values): name the class only.
        raise InputError(
            f"cannot read {path.name} ({exc.__class__.__name__}); expected a readable "
            f"{path.suffix.lstrip('.')} file with a header row; re-export it."
        ) from None


def _parse_datetime_strings(expr: pl.Expr, formats: tuple[str, ...]) -> pl.Expr:
    text = expr.str.strip_chars().str.replace("T", " ", literal=True, n=1)
    parsed = [text.str.to_datetime(fmt, time_unit="us", strict=False, exact=True) for fmt in formats]
    return parsed[0] if len(parsed) == 1 else pl.coalesce(parsed)


def cast_expr(
    name: str,
    source: pl.DataType,
    target: pl.DataType,
    datetime_formats: tuple[str, ...] = DATETIME_FORMATS,
) -> pl.Expr:
    """Expression casting column `name` from `source` to the contract type `target`, never raising.

    Values that do not cast become null. Time-zone-aware datetimes are converted to naive UTC.

    >>> df = pl.DataFrame({"x": ["1.5", "oops"]})
    >>> df.select(cast_expr("x", pl.String(), pl.Float64()))["x"].to_list()
    [1.5, None]
    """
    col = pl.col(name)
    null = pl.lit(None, dtype=target)
    if source == target:
        out = col
    elif target == pl.String:
        out = col.cast(pl.String, strict=False) if source != pl.Null else null
    elif target == pl.Float64:
        if source == pl.String:
            out = col.str.strip_chars().cast(pl.Float64, strict=False)
        else:
            out = col.cast(pl.Float64, strict=False) if source.is_numeric() else null
    elif target == pl.Boolean:
        if source == pl.String:
            low = col.str.strip_chars().str.to_lowercase()
            out = pl.when(low.is_in(TRUE_STRINGS)).then(True).when(low.is_in(FALSE_STRINGS)).then(False)
        elif source.is_integer():
            out = pl.when(col == 1).then(True).when(col == 0).then(False)
        else:
            out = null
    elif isinstance(target, pl.Datetime):
        if source == pl.String:
            out = _parse_datetime_strings(col, datetime_formats)
        elif isinstance(source, pl.Datetime):
            naive = col.dt.convert_time_zone("UTC").dt.replace_time_zone(None) if source.time_zone else col
            out = naive.cast(target)
        elif source == pl.Date:
            out = col.cast(target)
        else:
            out = null
    else:  # pragma: no cover - the contract has no other types
        raise AssertionError(f"no cast to {target}")
    return out.cast(target).alias(name)


def _type_hint(target: pl.DataType) -> str:
    base = pl.Datetime if isinstance(target, pl.Datetime) else type(target)
    return _TYPE_HINTS.get(base, f"expected {target}")


def missing_column(contract: TableContract, column: str, n_rows: int) -> Violation:
    """The `missing_column` violation of `column` in a table of `n_rows` rows."""
    return Violation(MISSING_COLUMN, contract.name, column, n_rows,
                     hint=f"add column '{column}' ({_type_hint(contract.schema[column])}; see CONTRACTS.md §1)")


def scan_raw(path: Path) -> pl.LazyFrame:
    """A lazy scan of one table file as written (CSV columns as text), its schema checked readable."""
    try:
        lf = pl.scan_parquet(path) if path.suffix == ".parquet" else pl.scan_csv(path, infer_schema=False)
        lf.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as exc:  # the message may quote file content: class only
        raise InputError(
            f"cannot read {path.name} ({exc.__class__.__name__}); expected a readable "
            f"{path.suffix.lstrip('.')} file with a header row; re-export it."
        ) from None
    return lf


def coerce_table(df: pl.DataFrame, contract: TableContract) -> tuple[pl.DataFrame, TableIssues]:
    """Cast `df` to `contract` (columns in contract order); record missing columns and bad cells.

    A cell is bad when it was non-null before the cast and null after it. Vectorised: one pass
    per column, plus a second pass with every ISO 8601 variant only for datetime text columns
    where the common format left failures.

    >>> df = pl.DataFrame({"stay_id": ["s1"], "time": ["2020-01-01T00:00"], "variable": ["hr"],
    ...                    "value": ["high"], "unit": ["bpm"]})
    >>> from clinical_mborl.ehr.tables import MEASUREMENTS
    >>> out, issues = coerce_table(df, MEASUREMENTS)
    >>> [(v.reason, v.column, v.example_rows) for v in issues.violations]
    [('bad_type', 'value', (0,))]
    """
    missing = [c for c in contract.columns if c not in df.columns]
    ignored = tuple(c for c in df.columns if c not in contract.schema)
    violations = [missing_column(contract, c, df.height) for c in missing]
    exprs = []
    for c, target in contract.schema.items():
        if c in missing:
            exprs.append(pl.lit(None, dtype=target).alias(c))
            continue
        source = df.schema[c]
        formats = DATETIME_FORMATS[:1] if source == pl.String and isinstance(target, pl.Datetime) else DATETIME_FORMATS
        exprs.append(cast_expr(c, source, target, formats))
    out = df.with_columns(exprs).select(contract.columns)

    bad_cells: dict[str, np.ndarray] = {}
    for c, target in contract.schema.items():
        if c in missing or df.schema[c] == target:
            continue
        failed = df[c].is_not_null() & out[c].is_null()
        if isinstance(target, pl.Datetime) and df.schema[c] == pl.String and failed.any():
            reparsed = df.select(_parse_datetime_strings(pl.col(c), DATETIME_FORMATS).alias(c))
            out = out.with_columns(reparsed.to_series())
            failed = df[c].is_not_null() & out[c].is_null()
        rows = failed.arg_true().to_numpy()
        if rows.size:
            bad_cells[c] = rows
            violations.append(
                Violation(
                    BAD_TYPE, contract.name, c, int(rows.size),
                    tuple(int(i) for i in rows[:EXAMPLE_ROWS]), hint=_type_hint(target),
                )
            )
    issues = TableIssues(tuple(violations), bad_cells, frozenset(missing), ignored)
    return out, issues


def read_ehr(folder: str | Path) -> EHRTables:
    """Read and cast the three canonical tables from `folder` (eager; see `scan_ehr` for large data).

    Raises `InputError` when a table file is missing, duplicated or unreadable; type problems are
    recorded in `EHRTables.issues` for `validate_ehr` to report.

    >>> tables = read_ehr("path/to/ehr")  # doctest: +SKIP
    >>> check_ehr(tables)  # doctest: +SKIP
    """
    paths = locate_tables(folder)
    frames = {name: _read_raw(path) for name, path in paths.items()}
    hashes = {path.name: sha256_file(path) for path in paths.values()}
    return EHRTables.from_frames(**frames, source_files=hashes)


def scan_ehr(folder: str | Path) -> dict[str, pl.LazyFrame]:
    """Lazy frames of the three tables, cast to the contract, for streaming over large extracts.

    Casting is lazy too, so a value that does not cast silently becomes null here: validate the
    folder first (`check_ehr(read_ehr(folder))`, or on a sample). A missing column raises
    `InputError` at once (the schema is known without reading rows).

    >>> lazy = scan_ehr("path/to/ehr")  # doctest: +SKIP
    >>> lazy["measurements"].filter(pl.col("variable") == "lactate").collect(engine="streaming")  # doctest: +SKIP
    """
    out: dict[str, pl.LazyFrame] = {}
    problems: list[str] = []
    for name, path in locate_tables(folder).items():
        contract = TABLES[name]
        lf = scan_raw(path)
        schema = lf.collect_schema()
        missing = [c for c in contract.columns if c not in schema]
        if missing:
            problems.append(f"table '{name}': missing column(s) {missing}; add them (CONTRACTS.md §1)")
            continue
        out[name] = lf.select(cast_expr(c, schema[c], t) for c, t in contract.schema.items())
    if problems:
        raise InputError("cannot scan the EHR tables:\n  - " + "\n  - ".join(problems))
    return out
