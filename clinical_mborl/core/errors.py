"""One error hierarchy for the whole package.

Messages follow "what is wrong, expected X, got Y, how to fix". They never contain patient
values: a violation names the table, the column, a reason code, a count and a few row indices.
Every error carries the process exit code the CLI uses (2: bad input or refused; 1: internal).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


class ClinicalMBORLError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code: int = 1


class InputError(ClinicalMBORLError, ValueError):
    """The user's input (tables, spec, options, artifact) is unusable; exit code 2."""

    exit_code = 2


class RefusedError(ClinicalMBORLError):
    """A request was refused on purpose (e.g. the gate did not pass); exit code 2."""

    exit_code = 2


class ArtifactError(InputError):
    """An artifact folder is missing files or its hashes do not match its manifest."""


class NotFittedError(ClinicalMBORLError, AttributeError):
    """A learner was used before `fit` was called (scikit-learn convention)."""


@dataclass(frozen=True)
class Violation:
    """One rule broken by some rows of one table column.

    `example_rows` are 0-based row indices into the table as read, never values.
    """

    reason: str
    table: str
    column: str | None
    count: int
    example_rows: tuple[int, ...] = field(default_factory=tuple)
    hint: str = ""

    def describe(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        rows = ", ".join(str(i) for i in self.example_rows[:5])
        text = f"[{self.reason}] {where}: {self.count} row(s)"
        if rows:
            text += f" (e.g. rows {rows})"
        if self.hint:
            text += f"; {self.hint}"
        return text

    def to_dict(self) -> dict[str, object]:
        return {
            "reason": self.reason,
            "table": self.table,
            "column": self.column,
            "count": self.count,
            "example_rows": list(self.example_rows[:5]),
            "hint": self.hint,
        }


class ValidationFailed(InputError):
    """All violations found in one pass over the input, raised together."""

    def __init__(self, violations: Sequence[Violation], context: str = "input tables") -> None:
        self.violations = list(violations)
        lines = [f"{context}: {len(self.violations)} rule(s) violated:"]
        lines += [f"  - {v.describe()}" for v in self.violations]
        super().__init__("\n".join(lines))

    @property
    def reasons(self) -> set[str]:
        return {v.reason for v in self.violations}
