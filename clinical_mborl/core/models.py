"""Pydantic base for every contract: frozen, unknown keys rejected."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Frozen pydantic model that forbids unknown fields.

    >>> class Point(StrictModel):
    ...     x: float
    >>> Point(x=1.0).x
    1.0
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)
