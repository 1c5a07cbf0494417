"""Render an `AuditReport` to `report.json` and a self-contained `report.html`; log the decision.

The HTML has no external reference (no CDN, no web font, no link): CSS is inline and figures are
base64 PNG data URIs. Before anything is written, both files are scanned for the identifiers the
caller passes (stay and patient ids): a hit refuses to write.

>>> write_report(build_audit_report(inputs), "out/report", identifiers=ts.frame["stay_id"])  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from clinical_mborl.core.errors import ClinicalMBORLError
from clinical_mborl.core.io import atomic_write_text, sha256_bytes, sha256_json
from clinical_mborl.report import plots
from clinical_mborl.report.audit_log import append_entry
from clinical_mborl.report.model import AuditReport
from clinical_mborl.report.suppress import COMPLEMENT, SUPPRESSED, Cell

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
AUDIT_LOG = "audit_log.jsonl"
TEMPLATE = "report.html.j2"
_DATA_URI = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")
_SHA256 = re.compile(r"\b[0-9a-f]{64}\b")
_TOKEN = re.compile(r"[A-Za-z0-9_.:\-]+")
_INTEGER = re.compile(r"(?<![\d.])\d+(?!\d|\.\d)")
MIN_SUBSTRING_ID = 5


@dataclass(frozen=True)
class ReportPaths:
    json: Path
    html: Path
    audit_log: Path
    report_sha256: str


def _cell(value: Cell | None) -> Markup:
    text = "" if value is None else f"{value:,}" if isinstance(value, int) else str(value)
    return Markup('<span class="count">{}</span>').format(text)


def _num(value: Any, digits: int = 3) -> str:
    """Floats to `digits` significant digits (thousands separated above 1,000); lists joined."""
    if value is None:
        return "—"
    if isinstance(value, list | tuple):
        return ", ".join(_num(v, digits) for v in value) or "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%"


def _kv(value: Any) -> Markup:
    """Free-form metric values: counts (ints) in count spans, the rest as numbers or text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _cell(value)
    if isinstance(value, str) and value in (SUPPRESSED, COMPLEMENT):
        return _cell(value)  # type: ignore[arg-type]
    return escape(_num(value))


def environment() -> Environment:
    env = Environment(loader=PackageLoader("clinical_mborl.report", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(cell=_cell, num=_num, pct=_pct, kv=_kv)
    return env


def _figures(report: AuditReport) -> dict[str, Any]:
    margin = report.gate.config.margin
    figs: dict[str, Any] = {}
    if report.calibration and any(b.observed is not None for b in report.calibration.bins):
        figs["calibration"] = plots.to_data_uri(plots.reliability_figure(report.calibration))
    if report.dynamics and (report.dynamics.coverage or report.dynamics.horizon_error):
        figs["dynamics"] = plots.to_data_uri(plots.dynamics_figure(report.dynamics))
    if report.doses:
        figs["doses"] = plots.to_data_uri(plots.dose_figure(report.doses))
    if report.ope:
        figs["forest"] = plots.to_data_uri(plots.forest_figure(report.ope, margin))
    if report.subgroups:
        sub_margin = report.gate.config.subgroup_margin
        figs["subgroups"] = plots.to_data_uri(plots.subgroup_figure(report.subgroups, margin if sub_margin is None else sub_margin))
    if report.explanation and report.explanation.global_importance:
        figs["importance"] = plots.to_data_uri(plots.importance_figure(report.explanation))
    if report.sensitivity:
        figs["sensitivity"] = plots.to_data_uri(plots.sensitivity_figure(report.sensitivity, margin))
    figs["cases"] = {c.label: plots.to_data_uri(plots.trajectory_figure(c)) for c in report.trajectories if c.steps}
    return figs


def render_html(report: AuditReport, figures: bool = True) -> str:
    """The self-contained HTML page of the report (`figures=False` leaves the plots out)."""
    sections = {s.anchor: (i, s) for i, s in enumerate(report.sections, start=1)}
    figs = _figures(report) if figures else {"cases": {}}
    return environment().get_template(TEMPLATE).render(r=report, figs=figs, sections=sections)


def identifier_hits(text: str, identifiers: Iterable[str]) -> int:
    """How many of `identifiers` occur in `text`. Never returns the ids themselves.

    Figures and sha256 digests are skipped. Numeric ids match whole integers only (not digits
    inside a decimal number); other ids of at least 5 characters match anywhere, shorter ones as
    whole tokens.
    """
    plain = _SHA256.sub(" ", _DATA_URI.sub(" ", text))
    tokens = set(_TOKEN.findall(plain))
    integers = set(_INTEGER.findall(plain))
    hits = 0
    for ident in {str(i) for i in identifiers if i is not None and str(i)}:
        if ident.isdigit():
            hits += ident in integers
        elif len(ident) >= MIN_SUBSTRING_ID:
            hits += ident in plain
        else:
            hits += ident in tokens
    return hits


def write_report(report: AuditReport, out_dir: str | Path, *, identifiers: Iterable[str] = (),
                 audit_log: str | Path | None = None, figures: bool = True) -> ReportPaths:
    """Write report.json and report.html atomically and append the gate decision to the audit log.

    Args:
        identifiers: raw stay/patient ids of the cohort; writing is refused if any appears.
        audit_log: the hash-chained log (default `out_dir/audit_log.jsonl`).
        figures: embed the plots (False only for quick previews and tests).
    """
    out_dir = Path(out_dir)
    ids = list(identifiers)
    js = report.model_dump_json(indent=2) + "\n"
    html = render_html(report, figures=figures)
    hits = identifier_hits(js, ids) + identifier_hits(html, ids)
    if hits:
        raise ClinicalMBORLError(
            f"report: {hits} raw identifier occurrence(s) found in the rendered report; refusing to write it. "
            "An input carried a stay or patient id (free-form metrics, notes or labels); remove it and rebuild."
        )
    json_path, html_path = out_dir / REPORT_JSON, out_dir / REPORT_HTML
    atomic_write_text(json_path, js)
    atomic_write_text(html_path, html)
    digest = sha256_bytes(js.encode())
    log_path = Path(audit_log) if audit_log is not None else out_dir / AUDIT_LOG
    append_entry(log_path, "gate_decision", {
        "report_sha256": digest,
        "policy_name": report.policy_name,
        "status": report.gate.status,
        "passed": report.gate.passed,
        "reasons": report.gate.reasons,
        "checks": [c.model_dump(mode="json") for c in report.gate.checks],
        "evidence_sha256": report.gate.evidence_sha256,
        "policy_fingerprint_sha256": sha256_json(report.reproducibility.policy.model_dump(mode="json")),
        "cohort": report.reproducibility.cohort.model_dump(mode="json"),
    })
    return ReportPaths(json=json_path, html=html_path, audit_log=log_path, report_sha256=digest)
