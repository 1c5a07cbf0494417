import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from clinical_mborl.core.models import StrictModel
from clinical_mborl.report.suppress import (
    COMPLEMENT,
    SUPPRESSED,
    Count,
    flow_relations,
    percent,
    sum_relation,
    suppress_counts,
    suppress_free_ints,
)


def _recoverable(counts, relations, published, hidden=()):
    """Independent check: which hidden small cells are fixed by the shown cells (matrix rank test)."""
    unknown = [k for k in counts if k in hidden or published[k] in (SUPPRESSED, COMPLEMENT)]
    col = {k: i for i, k in enumerate(unknown)}
    a = np.array([[rel.get(k, 0) for k in unknown] for rel in relations], dtype=float).reshape(len(relations), len(unknown))
    rank = np.linalg.matrix_rank(a) if a.size else 0
    out = []
    for k in unknown:
        if 1 <= counts[k] <= 10:
            e = np.zeros((1, len(unknown)))
            e[0, col[k]] = 1
            if np.linalg.matrix_rank(np.vstack([a, e])) == rank:
                out.append(k)
    return out


def test_primary_and_complementary_in_a_flow_step():
    out = suppress_counts({"in": 120, "rm": 4, "left": 116}, [sum_relation("in", ["rm", "left"])])
    assert out["rm"] == SUPPRESSED
    assert COMPLEMENT in (out["in"], out["left"])


def test_zeros_and_large_counts_stay():
    assert suppress_counts({"a": 0, "b": 11, "c": 500}) == {"a": 0, "b": 11, "c": 500}


def test_table_total_protects_a_single_small_part_and_small_pair_sums():
    counts = {"total": 40, "F": 20, "M": 17, "U": 3}
    out = suppress_counts(counts, [sum_relation("total", ["F", "M", "U"])])
    assert out["U"] == SUPPRESSED and list(out.values()).count(COMPLEMENT) == 1
    # two small parts whose sum (5) would be recomputable from the total: a third cell goes too
    counts = {"total": 25, "a": 3, "b": 2, "c": 20}
    out = suppress_counts(counts, [sum_relation("total", ["a", "b", "c"])])
    assert out["a"] == out["b"] == SUPPRESSED and COMPLEMENT in (out["c"], out["total"])


def test_hidden_cells_are_protected():
    # deaths and stays shown, survivors (5) never shown but recomputable -> something must go
    counts = {"stays": 100, "deaths": 95, "survivors": 5}
    out = suppress_counts(counts, [sum_relation("stays", ["deaths", "survivors"])], hidden={"survivors"})
    assert "survivors" not in out
    assert COMPLEMENT in (out["stays"], out["deaths"])


def test_chain_leak_through_a_second_relation_is_closed():
    counts = {"flow.0.remaining": 100, "flow.1.removed": 5, "flow.1.remaining": 95,
              "flow.2.removed": 30, "flow.2.remaining": 65}
    rels = flow_relations(2)
    out = suppress_counts(counts, rels)
    assert out["flow.1.removed"] == SUPPRESSED
    assert _recoverable(counts, rels, out) == []


@st.composite
def flows(draw):
    n_in = draw(st.integers(0, 150))
    counts, remaining = {"flow.0.remaining": n_in}, n_in
    steps = draw(st.integers(1, 5))
    for i in range(1, steps + 1):
        rm = draw(st.integers(0, remaining))
        remaining -= rm
        counts[f"flow.{i}.removed"], counts[f"flow.{i}.remaining"] = rm, remaining
    return counts, flow_relations(steps)


@settings(max_examples=300, deadline=None)
@given(flows())
def test_flow_never_shows_or_reveals_a_small_count(flow):
    counts, rels = flow
    out = suppress_counts(counts, rels)
    assert not any(isinstance(v, int) and 1 <= v <= 10 for v in out.values())
    assert _recoverable(counts, rels, out) == []
    # complements are spent only where needed: never more hidden cells than twice the small ones + steps
    n_small = sum(1 <= v <= 10 for v in counts.values())
    assert sum(v in (SUPPRESSED, COMPLEMENT) for v in out.values()) <= 2 * n_small + len(rels)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=2, max_size=6), st.lists(st.integers(0, 40), min_size=2, max_size=6))
def test_two_way_table_with_margins(row_a, row_b):
    k = min(len(row_a), len(row_b))
    counts = {("a", j): row_a[j] for j in range(k)} | {("b", j): row_b[j] for j in range(k)}
    counts |= {("a", "t"): sum(row_a[:k]), ("b", "t"): sum(row_b[:k])}
    counts |= {("t", j): row_a[j] + row_b[j] for j in range(k)} | {("t", "t"): sum(row_a[:k]) + sum(row_b[:k])}
    rels = [sum_relation(("a", "t"), [("a", j) for j in range(k)]), sum_relation(("b", "t"), [("b", j) for j in range(k)])]
    rels += [sum_relation(("t", j), [("a", j), ("b", j)]) for j in range(k)]
    rels += [sum_relation(("t", "t"), [("a", "t"), ("b", "t")])]
    out = suppress_counts(counts, rels)
    assert not any(isinstance(v, int) and 1 <= v <= 10 for v in out.values())
    assert _recoverable(counts, rels, out) == []


class _M(StrictModel):
    n: Count


@pytest.mark.parametrize("good", [0, 11, 12345, "<11", "*"])
def test_count_type_accepts_published_cells(good):
    assert _M(n=good).n == good


@pytest.mark.parametrize("bad", [1, 5, 10, -1, "7", True])
def test_count_type_rejects_unsuppressed_cells(bad):
    with pytest.raises(ValidationError):
        _M(n=bad)


def test_free_ints_and_percent():
    assert suppress_free_ints({"a": 3, "b": [12, 0.5, True], "c": {"d": 7}}) == {"a": "<11", "b": [12, 0.5, True], "c": {"d": "<11"}}
    # the analysis' own numbers are not counts of people: five Q-model members stay 5, 7 projected
    # resamples stay 7, while 5 patients next to them are suppressed
    assert suppress_free_ints({"q_members": 5, "c": {"n_patients": 5, "n_projected_resamples": 7}}) == {
        "q_members": 5, "c": {"n_patients": "<11", "n_projected_resamples": 7}}
    assert percent(20, 40) == 50.0
    assert percent(SUPPRESSED, 40) is None and percent(20, COMPLEMENT) is None and percent(0, 0) is None


def test_invalid_inputs_rejected():
    with pytest.raises(ValueError):
        suppress_counts({"a": -1})
    with pytest.raises(KeyError):
        suppress_counts({"a": 1}, [{"a": 1, "zzz": -1}])
