"""Small-cell suppression: counts 1-10 are shown as "<11" (zeros allowed), with complements.

Complementary cells (shown counts hidden only so that a small one cannot be recomputed) are
shown as "*": they are not small, and labelling them "<11" would be false.

Primary suppression hides every count from 1 to 10. Complementary suppression hides more cells
until no hidden small count can be recomputed from what is shown: the cells are tied by linear
relations (a flow step: remaining before = removed + remaining after; a table: total = sum of
parts), and a hidden cell is recoverable exactly when it is determined by that linear system
(its coordinate vanishes from the null space of the relation matrix restricted to hidden cells).
The hidden total of a relation whose hidden cells all count the same way must also not be 1-10.

Every count in a report passes through `suppress_counts` once (the builder registers all cells and
relations of the whole report, then calls it); report models type their counts as `Count`, which
rejects any unsuppressed 1-10 at construction.

>>> suppress_counts({"before": 120, "removed": 4, "after": 116}, [{"before": 1, "removed": -1, "after": -1}])
{'before': 120, 'removed': '<11', 'after': '*'}
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from typing import Annotated, Any, Final, Literal, TypeVar

import numpy as np
from pydantic import AfterValidator, Field

SUPPRESSED: Final = "<11"
COMPLEMENT: Final = "*"
MIN_SHOWN = 11

K = TypeVar("K", bound=Hashable)
Cell = int | Literal["<11", "*"]
Relation = Mapping[Any, int]
"""A linear relation sum_k coef_k * count_k = 0 over cell keys (coefficients +-1 in practice)."""


def is_small(n: int) -> bool:
    """True for the counts that must never be shown: 1..10."""
    return 1 <= n < MIN_SHOWN


def _check_cell(value: Cell) -> Cell:
    if isinstance(value, bool):
        raise ValueError("a count must be an int or '<11', not a bool")
    if isinstance(value, int) and (value < 0 or is_small(value)):
        raise ValueError(f"unsuppressed count: counts 1-10 must be '{SUPPRESSED}' (pass them through suppress_counts)")
    return value


Count = Annotated[Cell, AfterValidator(_check_cell), Field(json_schema_extra={"x-count": True})]
"""A count as published: 0, an int >= 11, "<11" or "*". Construction fails on 1-10."""


def _validate(counts: Mapping[K, int]) -> None:
    for key, n in counts.items():
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ValueError(f"count {key!r} must be a non-negative int")


def _null_space(a: np.ndarray) -> np.ndarray:
    if a.shape[0] == 0:
        return np.eye(a.shape[1])
    _, s, vt = np.linalg.svd(a, full_matrices=True)
    rank = int((s > 1e-9 * max(1.0, s.max(initial=0.0))).sum())
    return vt[rank:].T


def _determined(relations: Sequence[Relation], unknown: list[K]) -> set[K]:
    """Hidden cells whose value follows from the shown cells through the relations."""
    col = {k: i for i, k in enumerate(unknown)}
    rows = [r for r in relations if any(k in col for k in r)]
    a = np.zeros((len(rows), len(unknown)))
    for i, rel in enumerate(rows):
        for k, c in rel.items():
            if k in col:
                a[i, col[k]] = c
    null = _null_space(a)
    return {k for k in unknown if np.abs(null[col[k]]).max(initial=0.0) < 1e-9}


def _leaks(counts: Mapping[K, int], relations: Sequence[Relation], unknown: list[K]) -> list[tuple[K | None, int]]:
    """Cells (or relation totals) whose hidden small value can be recomputed; (key or None, relation index)."""
    fixed = _determined(relations, unknown)
    out: list[tuple[K | None, int]] = [(k, -1) for k in unknown if k in fixed and is_small(int(counts[k]))]
    hidden_set = set(unknown)
    for idx, rel in enumerate(relations):
        hidden = [c for k, c in rel.items() if k in hidden_set]
        if len(hidden) < 2 or len({np.sign(c) for c in hidden}) != 1:
            continue
        total = abs(sum(int(counts[k]) * c for k, c in rel.items() if k in hidden_set))
        if is_small(total):
            out.append((None, idx))
    return out


def _complement(counts: Mapping[K, int], relations: Sequence[Relation], unknown: set[K],
                leak: tuple[K | None, int]) -> K:
    """The shown cell to hide next.

    First choice: the smallest shown cell that alone stops this leak, looked for in the relations
    holding the leaking cell, then in every relation touching a hidden cell. If no single cell
    does, the candidate that leaves the fewest hidden cells recomputable (ties: smallest count),
    so the next round can finish the job.
    """
    key, rel_idx = leak
    near = [relations[rel_idx]] if key is None else [r for r in relations if key in r]
    wide = [r for r in relations if any(k in unknown for k in r)]
    order = lambda k: (int(counts[k]), str(k))  # noqa: E731
    pools = [sorted({k for r in pool for k in r if k not in unknown}, key=order) for pool in (near, wide)]
    for shown in pools:
        for cand in shown:
            if leak not in _leaks(counts, relations, sorted(unknown | {cand}, key=str)):
                return cand
    candidates = pools[1] or pools[0]
    if not candidates:
        raise AssertionError("a recomputable hidden cell must be tied to at least one shown cell")
    return min(candidates, key=lambda c: (len(_determined(relations, sorted(unknown | {c}, key=str))), *order(c)))


def suppress_counts(
    counts: Mapping[K, int],
    relations: Sequence[Relation] = (),
    hidden: Collection[K] = (),
) -> dict[K, Cell]:
    """Apply primary and complementary suppression to a set of related counts.

    Args:
        counts: every cell, by key (non-negative ints).
        relations: linear relations among cells, each `{key: coefficient}` summing to zero
            (e.g. `{"total": 1, "a": -1, "b": -1}`). Keys must be in `counts`.
        hidden: cells that are never published but are implied by the relations (e.g. survivors
            when stays and deaths are shown); a hidden small cell is protected like a shown one.

    Returns:
        The published cells (hidden keys left out): the count, "<11" (a count from 1 to 10) or
        "*" (a larger count or zero hidden as a complement).
    """
    _validate(counts)
    for rel in relations:
        missing = [k for k in rel if k not in counts]
        if missing:
            raise KeyError(f"relation refers to unknown cells {missing}")
    primary = {k for k, n in counts.items() if is_small(int(n))}
    unknown: set[K] = primary | set(hidden)
    while True:
        ordered = sorted(unknown, key=str)
        leaks = _leaks(counts, relations, ordered)
        if not leaks:
            break
        unknown.add(_complement(counts, relations, unknown, leaks[0]))
    hidden_set = set(hidden)
    out: dict[K, Cell] = {}
    for k, n in counts.items():
        if k not in hidden_set:
            out[k] = SUPPRESSED if k in primary else COMPLEMENT if k in unknown else int(n)
    return out


def suppress_value(n: int) -> Cell:
    """One count with no relation to any other shown cell."""
    return suppress_counts({"n": n})["n"]


#: diagnostic keys whose ints describe the analysis (settings, bootstrap resample counts), never
#: counts of people or stays.
ANALYSIS_KEYS = frozenset({"q_members", "n_resamples", "n_undefined_resamples", "n_projected_resamples"})


def suppress_free_ints(obj: Any) -> Any:
    """Walk free-form JSON (metric or diagnostic dicts): every int (not bool) is treated as a count,
    except the value of a key in `ANALYSIS_KEYS` (e.g. the number of Q-model members)."""
    if isinstance(obj, bool) or obj is None:
        return obj
    if isinstance(obj, int | np.integer):
        return suppress_value(int(obj))
    if isinstance(obj, Mapping):
        return {k: v if k in ANALYSIS_KEYS and isinstance(v, int) and not isinstance(v, bool)
                else suppress_free_ints(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [suppress_free_ints(v) for v in obj]
    return obj


def percent(numerator: Cell, denominator: Cell, digits: int = 1) -> float | None:
    """A percentage, or None when either count is suppressed (it would reveal the count)."""
    if not isinstance(numerator, int) or not isinstance(denominator, int) or denominator == 0:
        return None
    return round(100.0 * numerator / denominator, digits)


def flow_relations(n_steps: int, prefix: str = "flow") -> list[dict[str, int]]:
    """Relations of an exclusion flow with keys `{prefix}.{i}.remaining` / `.removed`.

    Step 0's `remaining` is the number of stays in; step i >= 1 removed `removed` from step i-1.
    """
    return [
        {f"{prefix}.{i - 1}.remaining": 1, f"{prefix}.{i}.removed": -1, f"{prefix}.{i}.remaining": -1}
        for i in range(1, n_steps + 1)
    ]


def sum_relation(total: Any, parts: Sequence[Any]) -> dict[Any, int]:
    """`total = sum(parts)` as a relation."""
    rel: dict[Any, int] = {total: 1}
    for p in parts:
        rel[p] = rel.get(p, 0) - 1
    return rel
