"""Append-only, hash-chained audit log (JSON lines).

Every entry holds `seq`, `time`, `event`, `payload`, `prev_sha256` (the previous entry's hash;
64 zeros for the first) and `sha256` (of the entry's canonical JSON without `sha256`).
`verify_log` recomputes the chain: an edited, deleted, inserted or reordered entry breaks it.
A chain can be rebuilt by whoever can write the file; keep a copy of the head hash elsewhere
(e.g. in a ticket) and pass it as `expected_head` to detect a truncated or rewritten log.

>>> import tempfile, pathlib
>>> log = pathlib.Path(tempfile.mkdtemp()) / "audit.jsonl"
>>> _ = append_entry(log, "gate_decision", {"status": "fail"})
>>> verify_log(log).ok
True
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clinical_mborl.core.errors import InputError
from clinical_mborl.core.io import canonical_json, sha256_bytes

GENESIS = "0" * 64
EVENTS = ("gate_decision", "recommendation_export", "recommendation_refused")


@dataclass(frozen=True)
class LogCheck:
    """Result of `verify_log`: `ok`, the number of entries, the head hash and the problems found."""

    ok: bool
    n_entries: int
    head: str
    problems: tuple[str, ...]


def entry_hash(entry: Mapping[str, Any]) -> str:
    return sha256_bytes(canonical_json({k: v for k, v in entry.items() if k != "sha256"}).encode())


def read_entries(path: str | Path) -> list[dict[str, Any]]:
    """Parse every line; a line that is not a JSON object is an InputError naming its line number."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"audit log {path}: line {i} is not JSON; the log was edited. Restore it from a copy.") from exc
        if not isinstance(obj, dict):
            raise InputError(f"audit log {path}: line {i} is not a JSON object; the log was edited.")
        out.append(obj)
    return out


def append_entry(path: str | Path, event: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Append one entry under an exclusive lock; refuses to extend a log whose chain is broken."""
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event!r}; expected one of {EVENTS}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            check = verify_log(path)
            if not check.ok:
                raise InputError(
                    f"audit log {path}: chain broken ({'; '.join(check.problems[:3])}); refusing to append. "
                    "Investigate and restore the log before recording new decisions."
                )
            entry: dict[str, Any] = {
                "seq": check.n_entries,
                "time": datetime.now(UTC).isoformat(timespec="seconds"),
                "event": event,
                "payload": json.loads(canonical_json(dict(payload))),
                "prev_sha256": check.head,
            }
            entry["sha256"] = entry_hash(entry)
            f.seek(0, os.SEEK_END)
            f.write(json.dumps(entry, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    return entry


def verify_log(path: str | Path, expected_head: str | None = None) -> LogCheck:
    """Recompute every hash and link; report each broken entry by its position."""
    try:
        entries = read_entries(path)
    except InputError as exc:
        return LogCheck(ok=False, n_entries=0, head=GENESIS, problems=(str(exc),))
    problems: list[str] = []
    prev = GENESIS
    for i, e in enumerate(entries):
        if e.get("seq") != i:
            problems.append(f"entry {i}: sequence number {e.get('seq')!r}, expected {i} (deleted or reordered)")
        if e.get("prev_sha256") != prev:
            problems.append(f"entry {i}: previous-hash link broken (an earlier entry was edited, deleted or reordered)")
        if e.get("sha256") != entry_hash(e):
            problems.append(f"entry {i}: content does not match its hash (edited)")
        prev = str(e.get("sha256"))
    if expected_head is not None and prev != expected_head:
        problems.append("head hash differs from the expected head (log truncated or rewritten)")
    return LogCheck(ok=not problems, n_entries=len(entries), head=prev, problems=tuple(problems))
