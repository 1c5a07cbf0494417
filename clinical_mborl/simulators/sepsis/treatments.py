"""Treatment administrations as rows of the canonical `treatments` table.

Boluses are one row with an amount (start = end). Infusions are segments with a constant rate:
when a rate changes, the running segment is closed at that minute and a new one opens, exactly
as infusion pumps are charted (MIMIC-IV `inputevents`).
"""

from __future__ import annotations

import numpy as np

TREATMENTS = ("crystalloid", "colloid", "norepinephrine", "vasopressin", "epinephrine", "phenylephrine", "dopamine")
RATE_UNITS = ("mL/h", "ug/kg/min", "ug/min", "units/min")
TREATMENT = {t: i for i, t in enumerate(TREATMENTS)}
RATE_UNIT = {u: i for i, u in enumerate(RATE_UNITS)}
CHANNELS = ("crystalloid", "norepinephrine", "vasopressin", "epinephrine", "phenylephrine", "dopamine")
"""Infusion channels: one running rate per channel and stay."""


class TreatmentLog:
    """Running infusions per channel plus finished rows, for `n` stays (vectorised)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.rate = {c: np.zeros(n) for c in CHANNELS}
        self.unit = {c: np.full(n, RATE_UNIT["mL/h"] if c == "crystalloid" else RATE_UNIT["ug/kg/min"], np.int8)
                     for c in CHANNELS}
        self.unit["vasopressin"][:] = RATE_UNIT["units/min"]
        self.start = {c: np.zeros(n, np.int64) for c in CHANNELS}
        self._rows: list[tuple[np.ndarray, ...]] = []

    def _emit(self, idx: np.ndarray, start: np.ndarray, end: np.ndarray, treatment: str,
              amount: np.ndarray | None, rate: np.ndarray | None, rate_unit: np.ndarray | None) -> None:
        if idx.size == 0:
            return
        nan = np.full(idx.size, np.nan)
        self._rows.append((
            idx.astype(np.int32), start.astype(np.int64), end.astype(np.int64),
            np.full(idx.size, TREATMENT[treatment], np.int8),
            nan if amount is None else amount.astype(np.float64),
            nan if rate is None else rate.astype(np.float64),
            np.full(idx.size, -1, np.int8) if rate_unit is None else rate_unit.astype(np.int8),
        ))

    def bolus(self, idx: np.ndarray, minute: np.ndarray, treatment: str, amount_ml: np.ndarray) -> None:
        """One bolus row per index (amount in mL, start = end)."""
        self._emit(idx, minute, minute, treatment, amount_ml, None, None)

    def set_rate(self, channel: str, idx: np.ndarray, minute: np.ndarray, rate: np.ndarray,
                 unit: np.ndarray | None = None) -> None:
        """Change the charted rate of `channel` for `idx` at `minute` (0 stops it)."""
        if idx.size == 0:
            return
        rate = np.round(rate, 3)
        unit_now = self.unit[channel][idx] if unit is None else np.broadcast_to(np.asarray(unit, np.int8), idx.shape)
        old = self.rate[channel][idx]
        changed = (old != rate) | (self.unit[channel][idx] != unit_now)
        close = changed & (old > 0) & (minute > self.start[channel][idx])
        sel = idx[close]
        self._emit(sel, self.start[channel][sel], minute[close], channel, None,
                   old[close], self.unit[channel][sel])
        sel = idx[changed]
        self.rate[channel][sel] = rate[changed]
        self.unit[channel][sel] = unit_now[changed]
        self.start[channel][sel] = minute[changed]

    def stop_all(self, idx: np.ndarray, minute: np.ndarray) -> None:
        """Close every running infusion of `idx` at `minute` (death, discharge)."""
        for channel in CHANNELS:
            self.set_rate(channel, idx, minute, np.zeros(idx.size))

    def rows(self) -> tuple[np.ndarray, ...]:
        """(stay, start minute, end minute, treatment code, amount, rate, rate-unit code or -1)."""
        if not self._rows:
            return (np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int8),
                    np.zeros(0), np.zeros(0), np.zeros(0, np.int8))
        return tuple(np.concatenate(c) for c in zip(*self._rows, strict=True))
