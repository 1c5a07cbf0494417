"""`clinical-mborl cohort validate --ehr DIR [--out report.json]` through the root app."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from clinical_mborl.cli.app import app

from .factories import SENTINEL, leaked_values, make_frames, set_cells, write_frames

runner = CliRunner()


def test_valid_folder_exits_0_and_writes_report(tmp_path):
    folder = write_frames(tmp_path / "ehr", make_frames(), "csv")
    out = tmp_path / "reports" / "validation.json"
    result = runner.invoke(app, ["cohort", "validate", "--ehr", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "result: OK" in result.output
    report = json.loads(out.read_text())
    assert report["ok"] is True and report["row_counts"]["measurements"] == 12
    assert set(report["source_files"]) == {"stays.csv", "measurements.csv", "treatments.csv"}


def test_bad_folder_exits_2_naming_table_and_column_without_patient_values(tmp_path):
    frames = make_frames()
    frames["measurements"] = set_cells(frames["measurements"], [1], {"value": SENTINEL})
    frames["stays"] = set_cells(frames["stays"], [2], {"sex": SENTINEL})
    folder = write_frames(tmp_path / "ehr", frames)
    out = tmp_path / "validation.json"
    result = runner.invoke(app, ["cohort", "validate", "--ehr", str(folder), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "[bad_type] measurements.value: 1 row(s) (e.g. rows 1)" in result.output
    assert "[bad_sex] stays.sex: 1 row(s) (e.g. rows 2)" in result.output
    assert "result: FAILED (2 violation(s)" in result.output
    assert leaked_values(result.output) == []
    report = json.loads(out.read_text())
    assert report["ok"] is False
    assert {(v["table"], v["column"], v["reason"]) for v in report["violations"]} == {
        ("measurements", "value", "bad_type"), ("stays", "sex", "bad_sex")
    }
    report.pop("source_files")
    assert leaked_values(json.dumps(report)) == []


def test_missing_table_exits_2_with_how_to_fix(tmp_path):
    folder = write_frames(tmp_path / "ehr", make_frames())
    (folder / "stays.parquet").unlink()
    result = runner.invoke(app, ["cohort", "validate", "--ehr", str(folder)])
    assert result.exit_code == 2
    assert "table 'stays': no stays.parquet or stays.csv" in result.output


def test_validate_requires_ehr_option():
    result = runner.invoke(app, ["cohort", "validate"])
    assert result.exit_code == 2 and "--ehr" in result.output


def test_streaming_validation_prints_and_writes_the_same_report_and_exit_code(tmp_path):
    frames = make_frames()
    frames["measurements"] = set_cells(frames["measurements"], [1, 4], {"value": SENTINEL})
    folder = write_frames(tmp_path / "ehr", frames, "csv")
    outputs = {}
    for flag in ([], ["--streaming"]):
        out = tmp_path / f"report{len(flag)}.json"
        result = runner.invoke(app, ["cohort", "validate", "--ehr", str(folder), "--out", str(out), *flag])
        assert result.exit_code == 2, result.output
        assert leaked_values(result.output) == []
        outputs[len(flag)] = (result.output.replace(str(out), "OUT"), out.read_text())
    assert outputs[0] == outputs[1]
    assert "[bad_type] measurements.value: 2 row(s) (e.g. rows 1, 4)" in outputs[1][0]
