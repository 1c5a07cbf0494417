"""The score table: one row per candidate, its ranking, and its CSV form.

Ranking key (documented contract): with P the gate's first primary estimator
(`ScoringConfig.primary_estimator`), scored rows are ordered by

1. the one-sided lower bound of P's paired difference (candidate - clinician), highest first;
2. then P's paired difference itself, highest first;
3. then the order the candidates were given in.

A row whose P lower bound (or difference) is undefined comes after every row that has one.
Rows with status "error" come last, unranked, in the order given.

CSV columns (`score_columns(estimators)`): rank, candidate, kind, status, clinician_value; for
each estimator E: E_value, E_ci_low, E_ci_high, E_diff, E_diff_ci_low, E_diff_ci_high,
E_diff_lower_bound (with `--sensitivity`, also for `fqe_msm<Lambda>`: FQE's interval if the
clinicians' odds may differ from pi_b by up to Lambda, nested in Lambda; its value is the midpoint
of the two bounds); then ess, agreement, mean_prob_logged, out_of_support_rate, halt_rate,
reasons, notes. Undefined numbers are empty cells; reasons and notes are joined with " | ".

>>> score_columns(("wis",))[:6]
['rank', 'candidate', 'kind', 'status', 'clinician_value', 'wis_value']
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Literal

from clinical_mborl.core.models import StrictModel
from clinical_mborl.ope.sensitivity_entries import sensitivity_name
from clinical_mborl.scoring.candidates import CandidateKind
from clinical_mborl.scoring.config import ScoringConfig

RowStatus = Literal["pass", "fail", "inconclusive", "error"]
ESTIMATE_FIELDS = ("value", "ci_low", "ci_high", "diff", "diff_ci_low", "diff_ci_high", "diff_lower_bound")
HEAD_COLUMNS = ("rank", "candidate", "kind", "status", "clinician_value")
TAIL_COLUMNS = ("ess", "agreement", "mean_prob_logged", "out_of_support_rate", "halt_rate", "reasons", "notes")
SEPARATOR = " | "


class EstimatorScore(StrictModel):
    """One estimator's value interval and its paired difference against the clinician."""

    estimator: str
    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    diff: float | None = None
    diff_ci_low: float | None = None
    diff_ci_high: float | None = None
    diff_lower_bound: float | None = None
    skipped: str | None = None


class ScoreRow(StrictModel):
    """One candidate's line in the table (numbers None where undefined or not applicable)."""

    rank: int | None = None
    candidate: str
    kind: CandidateKind
    status: RowStatus
    clinician_value: float | None = None
    estimates: list[EstimatorScore] = []
    ess: float | None = None
    agreement: float | None = None
    mean_prob_logged: float | None = None
    out_of_support_rate: float | None = None
    halt_rate: float | None = None
    reasons: list[str] = []
    notes: list[str] = []

    def estimate(self, name: str) -> EstimatorScore | None:
        """The entry of estimator `name`, or None."""
        return next((e for e in self.estimates if e.estimator == name), None)


def sensitivity_names(config: ScoringConfig) -> tuple[str, ...]:
    """`fqe_msm<Lambda>` for each of `config.ope.sensitivity_lambdas`, in increasing order."""
    return tuple(sensitivity_name(lam) for lam in sorted(config.ope.sensitivity_lambdas))


def score_columns(estimators: Sequence[str]) -> list[str]:
    """The CSV header for a table over `estimators` (see the module docstring)."""
    per = [f"{e}_{f}" for e in estimators for f in ESTIMATE_FIELDS]
    return [*HEAD_COLUMNS, *per, *TAIL_COLUMNS]


def _descending(x: float | None) -> tuple[int, float]:
    """Sort key: defined values first, highest first; undefined (None, NaN) after."""
    return (0, -x) if x is not None and math.isfinite(x) else (1, 0.0)


def rank_rows(rows: Sequence[ScoreRow], primary: str) -> list[ScoreRow]:
    """Order `rows` by the documented key and number the scored ones 1, 2, ...

    >>> a = ScoreRow(candidate="a", kind="named", status="fail",
    ...              estimates=[EstimatorScore(estimator="wdr", diff=0.1, diff_lower_bound=-0.2)])
    >>> b = ScoreRow(candidate="b", kind="named", status="fail",
    ...              estimates=[EstimatorScore(estimator="wdr", diff=0.0, diff_lower_bound=0.0)])
    >>> [(r.rank, r.candidate) for r in rank_rows([a, b], "wdr")]
    [(1, 'b'), (2, 'a')]
    """
    def key(item: tuple[int, ScoreRow]) -> tuple[int, float, int, float, int]:
        position, row = item
        e = row.estimate(primary)
        lb, diff = (e.diff_lower_bound, e.diff) if e is not None else (None, None)
        return (*_descending(lb), *_descending(diff), position)

    indexed = list(enumerate(rows))
    scored = sorted((x for x in indexed if x[1].status != "error"), key=key)
    errors = [x for x in indexed if x[1].status == "error"]
    ranked = [row.model_copy(update={"rank": i}) for i, (_, row) in enumerate(scored, start=1)]
    return ranked + [row.model_copy(update={"rank": None}) for _, row in errors]


class ScoreTable(StrictModel):
    """Ranked rows plus the settings they were computed with."""

    rows: list[ScoreRow]
    config: ScoringConfig
    cohort_manifest_hash: str
    notes: list[str] = []

    @property
    def estimators(self) -> tuple[str, ...]:
        """The OPE estimators, then FQE's sensitivity interval at each Lambda asked for."""
        return self.config.ope.estimators + sensitivity_names(self.config)

    @property
    def primary_estimator(self) -> str:
        return self.config.primary_estimator

    @property
    def n_scored(self) -> int:
        """Rows that were scored (status other than "error")."""
        return sum(r.status != "error" for r in self.rows)

    def columns(self) -> list[str]:
        return score_columns(self.estimators)

    def records(self) -> list[dict[str, str]]:
        """Every row as CSV cells (strings; floats in full precision, empty where undefined)."""
        out = []
        for r in self.rows:
            cells: dict[str, str] = {
                "rank": "" if r.rank is None else str(r.rank), "candidate": r.candidate, "kind": r.kind,
                "status": r.status, "clinician_value": _fmt(r.clinician_value),
            }
            for name in self.estimators:
                e = r.estimate(name) or EstimatorScore(estimator=name)
                cells.update({f"{name}_{f}": _fmt(getattr(e, f)) for f in ESTIMATE_FIELDS})
            cells.update({k: _fmt(getattr(r, k)) for k in TAIL_COLUMNS[:5]})
            cells["reasons"], cells["notes"] = SEPARATOR.join(r.reasons), SEPARATOR.join(r.notes)
            out.append(cells)
        return out

    def to_csv(self) -> str:
        """The table as CSV text with the documented header."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns(), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.records())
        return buf.getvalue()


def _fmt(x: float | None) -> str:
    return "" if x is None or not math.isfinite(x) else repr(float(x))
