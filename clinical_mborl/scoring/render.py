"""`scores.html`: the ranked table as one self-contained page (inline CSS, no script, no link).

Every value is HTML-escaped (jinja2 autoescape); numbers show 4 significant digits (the CSV
keeps full precision).

>>> from clinical_mborl.scoring.config import ScoringConfig
>>> t = ScoreTable(rows=[], config=ScoringConfig(), cohort_manifest_hash="0" * 64)
>>> "http" in render_scores_html(t)
False
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, StrictUndefined

from clinical_mborl.scoring.table import ScoreRow, ScoreTable

_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Candidate policy scores</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:0.85em}
th,td{border:1px solid #ccc;padding:0.3em 0.5em;vertical-align:top}
th{background:#f3f3f3;text-align:left}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.detail td{background:#fff;font-size:0.95em}
.pass{background:#e3f4e1}.fail{background:#fbe3e1}.inconclusive{background:#fff4d6}.error{background:#eee}
ul{margin:0;padding-left:1.1em}.muted{color:#666}
</style></head><body>
<h1>Candidate policy scores</h1>
<p>Ranked by the one-sided {{ level_pct }} lower bound of the <b>{{ primary }}</b> paired difference
(candidate &minus; clinician), then by that difference; candidates that could not be scored come last.
Intervals are patient-bootstrap {{ method }} intervals on the same resamples for every candidate.</p>
<table>
<tr><th>Setting</th><th>Value</th></tr>
{% for k, v in settings %}<tr><td>{{ k }}</td><td>{{ v }}</td></tr>
{% endfor %}</table>
<h2>Scores</h2>
<table>
<tr><th>Rank</th><th>Candidate</th><th>Gate</th><th>{{ primary }} &minus; clinician lower bound</th><th>Clinician value</th>
{% for e in estimators %}<th>{{ e }} value [CI]</th><th>{{ e }} &minus; clinician [CI]; lower bound</th>{% endfor %}
<th>ESS</th><th>Agreement</th><th>Mean p(logged)</th><th>Out of support</th><th>HALT rate</th></tr>
{% for r in rows %}<tr class="{{ r.status }}">
<td class="num">{{ r.rank if r.rank is not none else "" }}</td><td>{{ r.candidate }} <span class="muted">({{ r.kind }})</span></td>
<td>{{ r.status }}</td><td class="num"><b>{{ r.key | num }}</b></td><td class="num">{{ r.clinician_value | num }}</td>
{% for e in r.cells %}<td class="num">{{ e[0] }}</td><td class="num">{{ e[1] }}</td>{% endfor %}
<td class="num">{{ r.ess | num }}</td><td class="num">{{ r.agreement | pct }}</td>
<td class="num">{{ r.mean_prob_logged | num }}</td><td class="num">{{ r.out_of_support_rate | pct }}</td>
<td class="num">{{ r.halt_rate | pct }}</td></tr>
{% if r.reasons or r.notes %}<tr class="detail"><td></td><td colspan="{{ width }}">
{% if r.reasons %}<b>{{ "Error" if r.status == "error" else "Gate" }}:</b><ul>{% for x in r.reasons %}<li>{{ x }}</li>{% endfor %}</ul>{% endif %}
{% if r.notes %}<b>Notes:</b><ul class="muted">{% for x in r.notes %}<li>{{ x }}</li>{% endfor %}</ul>{% endif %}
</td></tr>{% endif %}
{% endfor %}</table>
{% if notes %}<h2>Notes</h2><ul>{% for n in notes %}<li>{{ n }}</li>{% endfor %}</ul>{% endif %}
<p class="muted">Cohort manifest sha256 {{ cohort }}. Blank cells: undefined or not applicable.</p>
</body></html>
"""


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.4g}"


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100.0 * x:.1f}%"


def _interval(value: float | None, low: float | None, high: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.4g} [{_num(low) or '?'}, {_num(high) or '?'}]"


def _cells(row: ScoreRow, estimators: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for name in estimators:
        e = row.estimate(name)
        if e is None:
            out.append(("", ""))
            continue
        diff = _interval(e.diff, e.diff_ci_low, e.diff_ci_high)
        if diff and e.diff_lower_bound is not None:
            diff += f"; {e.diff_lower_bound:.4g}"
        out.append((_interval(e.value, e.ci_low, e.ci_high), diff))
    return out


def _settings(table: ScoreTable) -> list[tuple[str, str]]:
    o, g = table.config.ope, table.config.gate
    return [
        ("evaluation split", ", ".join(o.eval_splits)),
        ("bootstrap", f"{o.n_resamples} patient resamples, {o.method}, level {o.level}, seed {o.seed}"),
        ("estimators", ", ".join(o.estimators)),
        ("softening / clipping", f"eps = {o.soften_epsilon}; clip = {o.clip}"),
        ("gate", f"primary {', '.join(g.primary_estimators)}; margin {g.margin}; ESS floor {g.ess_floor}; "
                 f"max weight share {g.max_weight_share}; support >= {g.min_support_share} of steps with "
                 f"clinician probability >= {g.support_threshold}; held-out split {g.heldout_split}; "
                 f"subgroups {', '.join(g.subgroup_attributes) or 'not checked'}; explanation sanity "
                 f"{'required' if g.require_explanation_sanity else 'not checked'}"),
    ]


def render_scores_html(table: ScoreTable) -> str:
    """The page for `table` (rows in table order)."""
    env = Environment(autoescape=True, undefined=StrictUndefined)
    env.filters.update(num=_num, pct=_pct)
    rows: list[dict[str, Any]] = []
    for r in table.rows:
        key = r.estimate(table.primary_estimator)
        rows.append({**r.model_dump(), "cells": _cells(r, table.estimators),
                     "key": key.diff_lower_bound if key is not None else None})
    return env.from_string(_TEMPLATE).render(
        rows=rows, estimators=table.estimators, width=9 + 2 * len(table.estimators), primary=table.primary_estimator, notes=table.notes,
        level_pct=f"{table.config.ope.level:.0%}", method=table.config.ope.method,
        settings=_settings(table), cohort=table.cohort_manifest_hash,
    )
