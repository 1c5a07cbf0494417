"""Candidate labels: what a row of the score table is called.

A candidate `P` is a policy artifact folder (labelled by the folder name), a protocol YAML file
(its file name without suffix), or one of `clinician`, `random`, `no-treatment` (the name).
Repeated labels get " (2)", " (3)", ...; a label that is a stay or patient identifier of the
cohort (or contains one, matched as `report.html` is checked) is replaced by "candidate-N", so
the table never carries one.

>>> [c.label for c in candidate_labels(["clinician", "runs/morel", "protocols/map65.yaml", "runs/morel/"])]
['clinician', 'morel', 'map65', 'morel (2)']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from clinical_mborl.core.errors import InputError

CandidateKind = Literal["named", "artifact", "protocol", "unknown"]
NAMED = ("clinician", "random", "no-treatment")
_TOKEN = re.compile(r"[A-Za-z0-9_.:\-]+")
MIN_SUBSTRING_ID = 5


@dataclass(frozen=True)
class Candidate:
    """One requested policy: the spec as given, its table label, and what kind of spec it is."""

    index: int
    spec: str
    label: str
    kind: CandidateKind


def _kind(spec: str) -> CandidateKind:
    if spec in NAMED:
        return "named"
    path = Path(spec)
    if path.is_dir():
        return "artifact"
    if path.suffix.lower() in (".yaml", ".yml"):
        return "protocol"
    return "unknown"


def _base_label(spec: str, kind: CandidateKind) -> str:
    if kind == "named":
        return spec
    path = Path(spec)
    name = path.resolve().name if kind == "artifact" else (path.stem if kind == "protocol" else path.name)
    return name or spec.strip() or "candidate"


def _contains_identifier(label: str, ids: set[str]) -> bool:
    """Ids of at least 5 characters anywhere in the label, shorter ones as whole tokens (as the report)."""
    tokens = set(_TOKEN.findall(label))
    return any((i in label) if len(i) >= MIN_SUBSTRING_ID else (i in tokens) for i in ids)


def candidate_labels(specs: Sequence[str], identifiers: Iterable[object] = ()) -> list[Candidate]:
    """Label every spec (see the module docstring); `identifiers` are the cohort's stay/patient ids."""
    if not specs:
        raise InputError("score: expected at least one candidate policy (--policy P), got none.")
    ids = {str(i) for i in identifiers if i is not None and str(i)}
    used: set[str] = set()
    out = []
    for i, spec in enumerate(specs):
        kind = _kind(spec)
        base = _base_label(spec, kind)
        if _contains_identifier(base, ids):
            base = f"candidate-{i + 1}"
        label, n = base, 1
        while label in used:
            n += 1
            label = f"{base} ({n})"
        used.add(label)
        out.append(Candidate(index=i, spec=spec, label=label, kind=kind))
    return out


def slug(label: str) -> str:
    """A file-system-safe form of a label.

    >>> slug("morel (2)")
    'morel_2'
    """
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "candidate"
