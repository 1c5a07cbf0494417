"""The documented ranking key and CSV layout of the score table."""

from __future__ import annotations

import csv
import io

from hypothesis import given
from hypothesis import strategies as st

from clinical_mborl.scoring import ScoringConfig
from clinical_mborl.scoring.table import (
    ESTIMATE_FIELDS,
    EstimatorScore,
    ScoreRow,
    ScoreTable,
    rank_rows,
    score_columns,
)


def _row(name: str, lb: float | None, diff: float | None, status: str = "fail") -> ScoreRow:
    return ScoreRow(candidate=name, kind="named", status=status,  # type: ignore[arg-type]
                    estimates=[EstimatorScore(estimator="wdr", diff=diff, diff_lower_bound=lb),
                               EstimatorScore(estimator="fqe", diff=5.0, diff_lower_bound=5.0)])


def test_rank_by_primary_lower_bound_then_difference_then_input_order() -> None:
    rows = [_row("low", -0.5, 0.9), _row("tie_small_diff", 0.1, 0.2), _row("tie_big_diff", 0.1, 0.3),
            _row("best", 0.4, 0.1), _row("tie_again", 0.1, 0.3)]
    ranked = rank_rows(rows, "wdr")
    assert [r.candidate for r in ranked] == ["best", "tie_big_diff", "tie_again", "tie_small_diff", "low"]
    assert [r.rank for r in ranked] == [1, 2, 3, 4, 5]


def test_undefined_bounds_after_defined_ones_and_errors_last_unranked() -> None:
    rows = [_row("err", None, None, status="error"), _row("no_lb", None, 9.0), _row("nan_lb", float("nan"), 1.0),
            _row("ok", -3.0, -3.0), _row("no_primary", None, None)]
    rows[-1] = rows[-1].model_copy(update={"estimates": []})
    ranked = rank_rows(rows, "wdr")
    assert [r.candidate for r in ranked] == ["ok", "no_lb", "nan_lb", "no_primary", "err"]
    assert [r.rank for r in ranked] == [1, 2, 3, 4, None]


def test_the_primary_estimator_decides_not_the_others() -> None:
    a, b = _row("a", 0.2, 0.2), _row("b", 0.1, 0.1)
    b = b.model_copy(update={"estimates": [b.estimates[0], EstimatorScore(estimator="fqe", diff_lower_bound=9.0)]})
    assert [r.candidate for r in rank_rows([b, a], "wdr")] == ["a", "b"]
    assert [r.candidate for r in rank_rows([a, b], "fqe")] == ["b", "a"]


@given(st.lists(st.tuples(st.one_of(st.none(), st.floats(-5, 5)), st.floats(-5, 5)), min_size=1, max_size=12))
def test_ranks_are_a_permutation_and_bounds_never_increase(items: list[tuple[float | None, float]]) -> None:
    ranked = rank_rows([_row(f"c{i}", lb, d) for i, (lb, d) in enumerate(items)], "wdr")
    assert sorted(r.rank for r in ranked) == list(range(1, len(items) + 1))  # type: ignore[type-var]
    bounds = [r.estimates[0].diff_lower_bound for r in ranked]
    defined = [b for b in bounds if b is not None]
    assert bounds[: len(defined)] == defined and defined == sorted(defined, reverse=True)


def test_csv_has_the_documented_columns_and_blank_undefined_cells() -> None:
    cfg = ScoringConfig()
    row = _row("x", 0.5, 0.75).model_copy(update={"rank": 1, "reasons": ["a", "b"], "notes": ["n"]})
    table = ScoreTable(rows=[row], config=cfg, cohort_manifest_hash="0" * 64)
    parsed = list(csv.DictReader(io.StringIO(table.to_csv())))
    expected = ["rank", "candidate", "kind", "status", "clinician_value",
                *[f"{e}_{f}" for e in cfg.ope.estimators for f in ESTIMATE_FIELDS],
                "ess", "agreement", "mean_prob_logged", "out_of_support_rate", "halt_rate", "reasons", "notes"]
    assert score_columns(cfg.ope.estimators) == expected
    assert list(parsed[0]) == expected
    cells = parsed[0]
    assert cells["wdr_diff_lower_bound"] == "0.5" and cells["wdr_diff"] == "0.75"
    assert cells["wis_value"] == "" and cells["halt_rate"] == "" and cells["clinician_value"] == ""
    assert cells["reasons"] == "a | b" and cells["rank"] == "1"
