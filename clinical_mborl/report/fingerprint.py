"""Fingerprints binding a report to the exact policy artifact and cohort it audited.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "config.json").write_text("{}")
>>> sorted(fingerprint_policy(d).files)
['config.json']
"""

from __future__ import annotations

from pathlib import Path

from clinical_mborl.cohort.manifest import CohortManifest
from clinical_mborl.core.errors import InputError
from clinical_mborl.core.io import sha256_file
from clinical_mborl.core.models import StrictModel

COHORT_MANIFEST = "manifest.json"
COHORT_TRANSITIONS = "transitions.parquet"


class PolicyFingerprint(StrictModel):
    """sha256 of every file of the policy (relative path -> digest); a protocol file is one file."""

    kind: str = "artifact"
    files: dict[str, str]


class CohortFingerprint(StrictModel):
    """The cohort's manifest hash (parsed), the manifest file's bytes and transitions.parquet's bytes."""

    manifest_hash: str
    manifest_file_sha256: str
    transitions_sha256: str


def fingerprint_policy(path: str | Path) -> PolicyFingerprint:
    """Hash every regular file under an artifact folder (or the single file of a protocol)."""
    path = Path(path)
    if path.is_file():
        return PolicyFingerprint(kind="file", files={path.name: sha256_file(path)})
    if not path.is_dir():
        raise InputError(f"policy {path}: not found; expected an artifact folder or a protocol file.")
    files = {p.relative_to(path).as_posix(): sha256_file(p) for p in sorted(path.rglob("*")) if p.is_file()}
    if not files:
        raise InputError(f"policy {path}: the folder is empty; expected a trained artifact.")
    return PolicyFingerprint(kind="artifact", files=files)


def fingerprint_cohort(path: str | Path) -> CohortFingerprint:
    """Hash a cohort folder written by `cohort build` (manifest.json + transitions.parquet)."""
    path = Path(path)
    mpath, tpath = path / COHORT_MANIFEST, path / COHORT_TRANSITIONS
    if not mpath.is_file() or not tpath.is_file():
        raise InputError(f"cohort {path}: expected {COHORT_MANIFEST} and {COHORT_TRANSITIONS}; run `clinical-mborl cohort build`.")
    try:
        manifest = CohortManifest.model_validate_json(mpath.read_text())
    except ValueError as exc:
        raise InputError(f"cohort {path}: {COHORT_MANIFEST} is not a valid cohort manifest ({exc.__class__.__name__}).") from exc
    return CohortFingerprint(manifest_hash=manifest.manifest_hash(), manifest_file_sha256=sha256_file(mpath),
                             transitions_sha256=sha256_file(tpath))


def diff_fingerprints(recorded: PolicyFingerprint, current: PolicyFingerprint) -> list[str]:
    """Names of files added, removed or changed since the report was written."""
    names = sorted(set(recorded.files) | set(current.files))
    return [n for n in names if recorded.files.get(n) != current.files.get(n)]
