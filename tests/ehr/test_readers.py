"""Readers: folder layout errors, CSV == parquet, casting to the contract, lazy scans."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from clinical_mborl.core.errors import InputError
from clinical_mborl.core.io import sha256_file
from clinical_mborl.ehr import reasons as R
from clinical_mborl.ehr.readers import read_ehr, scan_ehr
from clinical_mborl.ehr.tables import TABLES
from clinical_mborl.ehr.validate import validate_ehr

from .factories import SENTINEL, leaked_values, make_frames, set_cells, write_frames


def test_csv_and_parquet_readers_give_equal_tables(tmp_path):
    frames = make_frames(n_stays=6, seed=3)
    frames["measurements"] = set_cells(frames["measurements"], [2], {"value": float("nan")})
    pq = read_ehr(write_frames(tmp_path / "pq", frames, "parquet"))
    csv = read_ehr(write_frames(tmp_path / "csv", frames, "csv"))
    for name in TABLES:
        assert_frame_equal(pq.frames()[name], csv.frames()[name])
        assert_frame_equal(pq.frames()[name], frames[name])
        assert pq.frames()[name].schema == TABLES[name].schema
    assert set(csv.source_files) == {"stays.csv", "measurements.csv", "treatments.csv"}
    assert csv.source_files["stays.csv"] == sha256_file(tmp_path / "csv" / "stays.csv")
    assert validate_ehr(csv).model_dump() == {**validate_ehr(pq).model_dump(), "source_files": csv.source_files}


def test_missing_table_is_an_input_error_naming_it(tmp_path):
    folder = write_frames(tmp_path / "ehr", make_frames())
    (folder / "treatments.parquet").unlink()
    with pytest.raises(InputError, match=r"table 'treatments': no treatments.parquet or treatments.csv") as err:
        read_ehr(folder)
    assert err.value.exit_code == 2 and "add one" in str(err.value)


def test_table_in_both_formats_is_an_input_error(tmp_path):
    frames = make_frames()
    folder = write_frames(tmp_path / "ehr", frames)
    frames["stays"].write_csv(folder / "stays.csv")
    with pytest.raises(InputError, match=r"table 'stays': both stays.parquet and stays.csv.*remove the other"):
        read_ehr(folder)
    with pytest.raises(InputError, match="stays"):
        scan_ehr(folder)


def test_missing_folder_and_unreadable_file_are_input_errors_without_content(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_ehr(tmp_path / "nowhere")
    folder = write_frames(tmp_path / "ehr", make_frames())
    (folder / "measurements.parquet").write_text(f"{SENTINEL}, not parquet\n")
    with pytest.raises(InputError, match="cannot read measurements.parquet") as err:
        read_ehr(folder)
    assert leaked_values(str(err.value)) == []


def test_csv_text_is_cast_with_iso_datetime_variants_and_boolean_spellings(tmp_path):
    frames = make_frames(n_stays=5)
    folder = write_frames(tmp_path / "ehr", frames, "csv")
    stays = pl.read_csv(folder / "stays.csv", infer_schema=False).with_columns(
        pl.Series("admit_time", ["2031-03-01T08:00:00", "2031-03-01 08:00:00.5", "2031-03-01T08:00",
                                 "2031-03-01", " 2031-03-01T08:00:00.123456 "]),
        pl.Series("discharge_time", ["2031-04-01"] * 5),
        pl.Series("died_in_hospital", ["0", "False", "no", "F", "false"]),
        pl.Series("death_time", [None] * 5, dtype=pl.String),
    )
    stays.write_csv(folder / "stays.csv")
    tables = read_ehr(folder)
    assert tables.stays["admit_time"].to_list() == [
        datetime(2031, 3, 1, 8), datetime(2031, 3, 1, 8, 0, 0, 500000), datetime(2031, 3, 1, 8),
        datetime(2031, 3, 1), datetime(2031, 3, 1, 8, 0, 0, 123456),
    ]
    assert tables.stays["died_in_hospital"].to_list() == [False] * 5
    assert validate_ehr(tables).ok


def test_non_iso_and_zoned_text_datetimes_are_bad_type(tmp_path):
    frames = make_frames()
    frames["measurements"] = set_cells(frames["measurements"], [1], {"time": "03/01/2031 08:00"})
    frames["measurements"] = set_cells(frames["measurements"], [2], {"time": "2031-03-01T08:00:00+02:00"})
    report = validate_ehr(read_ehr(write_frames(tmp_path / "ehr", frames, "csv")))
    assert [(v["reason"], v["column"], v["example_rows"]) for v in report.violations] == [
        (R.BAD_TYPE, "time", [1, 2])
    ]
    assert "ISO 8601" in report.violations[0]["hint"]


def test_parquet_native_types_are_cast_to_the_contract(tmp_path):
    frames = make_frames()
    n = frames["stays"].height
    frames["stays"] = frames["stays"].with_columns(
        pl.int_range(n).alias("stay_id"),  # integer ids become text
        pl.col("admit_time").dt.replace_time_zone("Europe/Paris"),  # zoned -> naive UTC
        pl.col("discharge_time").cast(pl.Datetime("ns")),
        pl.col("age_years").cast(pl.Float32),
        pl.col("died_in_hospital").cast(pl.Int8),
    )
    folder = write_frames(tmp_path / "ehr", frames)
    stays = read_ehr(folder).stays
    assert stays.schema == TABLES["stays"].schema
    assert stays["stay_id"].to_list() == [str(i) for i in range(n)]
    expected = frames["stays"]["admit_time"].dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    assert stays["admit_time"].to_list() == expected.to_list()


def test_boolean_out_of_range_integer_is_bad_type(tmp_path):
    frames = make_frames()
    frames["stays"] = frames["stays"].with_columns(pl.col("died_in_hospital").cast(pl.Int64))
    frames["stays"] = set_cells(frames["stays"], [3], {"died_in_hospital": 7})
    tables = read_ehr(write_frames(tmp_path / "ehr", frames))
    assert [(v.reason, v.column, v.example_rows) for v in tables.issues_of("stays").violations] == [
        (R.BAD_TYPE, "died_in_hospital", (3,))
    ]


def test_scan_matches_read_and_refuses_missing_columns(tmp_path):
    frames = make_frames(n_stays=5, seed=1)
    for fmt in ("parquet", "csv"):
        folder = write_frames(tmp_path / fmt, frames, fmt)
        eager = read_ehr(folder).frames()
        lazy = scan_ehr(folder)
        for name in TABLES:
            assert_frame_equal(lazy[name].collect(), eager[name])
    frames["measurements"] = frames["measurements"].drop("unit")
    folder = write_frames(tmp_path / "broken", frames)
    with pytest.raises(InputError, match=r"table 'measurements': missing column\(s\) \['unit'\]"):
        scan_ehr(folder)


def test_header_only_csv_tables_read_as_empty_contract_frames(tmp_path):
    for name, contract in TABLES.items():
        pl.DataFrame(schema={c: pl.String for c in contract.columns}).write_csv(tmp_path / f"{name}.csv")
    tables = read_ehr(tmp_path)
    assert tables.row_counts() == {"stays": 0, "measurements": 0, "treatments": 0}
    assert tables.treatments.schema == TABLES["treatments"].schema
    assert validate_ehr(tables).ok
