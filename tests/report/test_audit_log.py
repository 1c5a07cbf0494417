import json

import pytest

from clinical_mborl.core.errors import InputError
from clinical_mborl.report.audit_log import (
    GENESIS,
    append_entry,
    entry_hash,
    read_entries,
    verify_log,
)


@pytest.fixture()
def log(tmp_path):
    path = tmp_path / "audit.jsonl"
    for i in range(4):
        append_entry(path, "gate_decision", {"i": i, "status": "fail"})
    return path


def _lines(path):
    return path.read_text().splitlines()


def test_chain_links_and_verifies(log):
    entries = read_entries(log)
    assert [e["seq"] for e in entries] == [0, 1, 2, 3]
    assert entries[0]["prev_sha256"] == GENESIS
    assert all(entries[i]["prev_sha256"] == entries[i - 1]["sha256"] for i in range(1, 4))
    check = verify_log(log)
    assert check.ok and check.n_entries == 4 and check.head == entries[-1]["sha256"]
    assert verify_log(log, expected_head=check.head).ok


def test_edited_entry_is_detected(log):
    lines = _lines(log)
    lines[1] = lines[1].replace('"status": "fail"', '"status": "pass"')
    log.write_text("\n".join(lines) + "\n")
    check = verify_log(log)
    assert not check.ok and any("entry 1" in p and "edited" in p for p in check.problems)


def test_edited_entry_with_recomputed_hash_breaks_the_next_link(log):
    lines = _lines(log)
    e = json.loads(lines[1])
    e["payload"]["status"] = "pass"
    e["sha256"] = entry_hash(e)
    lines[1] = json.dumps(e, sort_keys=True)
    log.write_text("\n".join(lines) + "\n")
    check = verify_log(log)
    assert not check.ok and any(p.startswith("entry 2") for p in check.problems)


def test_deleted_entry_is_detected(log):
    lines = _lines(log)
    del lines[2]
    log.write_text("\n".join(lines) + "\n")
    assert not verify_log(log).ok


def test_reordered_entries_are_detected(log):
    lines = _lines(log)
    lines[1], lines[2] = lines[2], lines[1]
    log.write_text("\n".join(lines) + "\n")
    assert not verify_log(log).ok


def test_truncation_detected_only_against_a_known_head(log):
    head = verify_log(log).head
    log.write_text("\n".join(_lines(log)[:3]) + "\n")
    assert verify_log(log).ok
    assert not verify_log(log, expected_head=head).ok


def test_append_refuses_a_broken_log_and_garbage(log):
    log.write_text(log.read_text().replace('"i": 0', '"i": 9'))
    with pytest.raises(InputError):
        append_entry(log, "gate_decision", {"x": 1})
    log.write_text("not json\n")
    assert not verify_log(log).ok
    with pytest.raises(ValueError):
        append_entry(log.parent / "new.jsonl", "something_else", {})
