import pytest

from clinical_mborl.core.errors import ValidationFailed, Violation
from clinical_mborl.core.io import (
    atomic_directory,
    atomic_write_json,
    atomic_write_with,
    sha256_json,
)


def test_failed_write_leaves_no_file(tmp_path):
    target = tmp_path / "out.parquet"

    def boom(path):
        path.write_bytes(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write_with(target, boom)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_directory_keeps_previous_version(tmp_path):
    target = tmp_path / "cohort"
    with atomic_directory(target) as d:
        (d / "a.txt").write_text("v1")
    with pytest.raises(RuntimeError), atomic_directory(target) as d:
        (d / "a.txt").write_text("v2")
        raise RuntimeError("crash")
    assert (target / "a.txt").read_text() == "v1"
    assert [p.name for p in tmp_path.iterdir()] == ["cohort"]


def test_json_hash_ignores_key_order(tmp_path):
    assert sha256_json({"a": 1, "b": 2}) == sha256_json({"b": 2, "a": 1})
    atomic_write_json(tmp_path / "x.json", {"b": 1})
    assert (tmp_path / "x.json").read_text().strip() == '{\n  "b": 1\n}'


def test_violation_messages_name_table_column_and_rows_only():
    v = Violation(reason="negative_dose", table="treatments", column="amount", count=3, example_rows=(4, 9, 12))
    err = ValidationFailed([v])
    assert "treatments.amount" in str(err) and "negative_dose" in str(err) and "rows 4, 9, 12" in str(err)
    assert err.exit_code == 2 and err.reasons == {"negative_dose"}


def test_atomic_outputs_get_ordinary_permissions(tmp_path):
    import os

    atomic_write_json(tmp_path / "r.json", {"a": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o666 & ~umask
    with atomic_directory(tmp_path / "d") as d:
        (d / "x").write_text("1")
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~umask
