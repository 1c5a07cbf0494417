"""Report figures (matplotlib, Agg canvas, no pyplot): embedded as base64 PNG data URIs.

Every figure is drawn from the published `AuditReport` models, so annotations only ever show
suppressed counts ("<11" / "*"). PNG metadata is stripped; nothing refers to a URL.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from clinical_mborl.report.inputs import SensitivityRow
from clinical_mborl.report.model import (
    CalibrationSection,
    DoseLevelRow,
    DynamicsSection,
    ExplanationSection,
    ReportedEstimate,
    ReportedSubgroup,
    TrajectoryCase,
)
from clinical_mborl.report.suppress import Cell

CLIN, POL, MARGIN = "#4c72b0", "#dd8452", "#c44e52"


def cell_text(c: Cell | None) -> str:
    return "" if c is None else f"{c:,}" if isinstance(c, int) else str(c)


def to_data_uri(fig: Figure) -> str:
    """PNG bytes of `fig` as a `data:` URI (no metadata chunks)."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def reliability_figure(cal: CalibrationSection) -> Figure:
    fig = Figure(figsize=(4.2, 4.0))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    pts = [(b.mean_predicted, b.observed) for b in cal.bins if b.observed is not None]
    if pts:
        x, y = zip(*pts, strict=True)
        ax.plot(x, y, marker="o", color=CLIN, label="clinician model")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean predicted probability", ylabel="observed frequency",
           title="Reliability (out-of-fold)")
    ax.legend(loc="upper left", fontsize=8)
    return fig


def dynamics_figure(dyn: DynamicsSection) -> Figure:
    fig = Figure(figsize=(8.4, 3.6))
    a1, a2 = fig.subplots(1, 2)
    a1.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    if dyn.coverage:
        a1.plot([c.nominal for c in dyn.coverage], [c.observed for c in dyn.coverage], marker="o", color=CLIN)
    a1.set(xlim=(0, 1), ylim=(0, 1), xlabel="nominal coverage", ylabel="observed coverage",
           title="Calibration of predicted spread")
    if dyn.horizon_error:
        a2.plot([h.horizon for h in dyn.horizon_error], [h.error for h in dyn.horizon_error], marker="o", color=POL)
    a2.set(xlabel="rollout horizon (steps)", ylabel="RMSE (normalised state)", title="Error vs rollout horizon")
    fig.tight_layout()
    return fig


def dose_figure(rows: Sequence[DoseLevelRow]) -> Figure:
    dims = list(dict.fromkeys(r.dimension for r in rows))
    fig = Figure(figsize=(4.2 * max(1, len(dims)), 3.6))
    axes = np.atleast_1d(fig.subplots(1, max(1, len(dims))))
    for ax, dim in zip(axes, dims, strict=False):
        sub = [r for r in rows if r.dimension == dim]
        x = np.arange(len(sub))
        for off, who, color in ((-0.2, "clinician", CLIN), (0.2, "policy", POL)):
            for xi, r in zip(x, sub, strict=True):
                pct, cell = getattr(r, f"{who}_pct"), getattr(r, who)
                if pct is None:
                    ax.text(xi + off, 1.0, cell_text(cell), ha="center", va="bottom", fontsize=7, rotation=90)
                else:
                    ax.bar(xi + off, pct, width=0.4, color=color)
        ax.set_xticks(x, [f"L{r.level}" for r in sub])
        ax.set(ylabel="% of steps", title=f"{dim} ({sub[0].unit})")
        ax.legend(handles=[Patch(color=CLIN, label="clinician"), Patch(color=POL, label="policy")], fontsize=8)
    fig.tight_layout()
    return fig


def _interval_panel(ax: Axes, labels: Sequence[str], values: Sequence[float], lows: Sequence[float],
                    highs: Sequence[float], notes: Sequence[str], margin: float | None, title: str) -> None:
    y = np.arange(len(labels))[::-1]
    v, lo, hi = np.asarray(values), np.asarray(lows), np.asarray(highs)
    ax.errorbar(v, y, xerr=[v - lo, hi - v], fmt="o", color=CLIN, capsize=3)
    if margin is not None:
        ax.axvline(margin, color=MARGIN, ls="--", lw=1, label=f"margin {margin:g}")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_yticks(y, labels)
    ax.set_title(title)
    for yi, note in zip(y, notes, strict=True):
        ax.annotate(note, (1.01, yi), xycoords=("axes fraction", "data"), fontsize=7, va="center")


def forest_figure(estimates: Sequence[ReportedEstimate], margin: float | None) -> Figure:
    """Point estimates with intervals; paired differences in their own panel with the margin."""
    defined = [e for e in estimates if None not in (e.value, e.ci_low, e.ci_high)]
    groups = [("policy / clinician value", [e for e in defined if e.target != "paired_difference"], None),
              ("paired difference (policy - clinician)", [e for e in defined if e.target == "paired_difference"], margin)]
    groups = [g for g in groups if g[1]]
    fig = Figure(figsize=(8.0, 1.2 + 0.45 * sum(len(g[1]) for g in groups) + 0.6 * len(groups)))
    axes = np.atleast_1d(fig.subplots(len(groups) or 1, 1))
    for ax, (title, rows, m) in zip(axes, groups, strict=False):
        _interval_panel(ax, [f"{e.estimator} ({e.target})" for e in rows], [float(e.value or 0) for e in rows],
                        [float(e.ci_low or 0) for e in rows], [float(e.ci_high or 0) for e in rows],
                        [f"n={cell_text(e.n_patients)}  ESS={e.ess:.1f}" if e.ess is not None else f"n={cell_text(e.n_patients)}"
                         for e in rows], m, title)
    fig.tight_layout()
    return fig


def subgroup_figure(rows: Sequence[ReportedSubgroup], margin: float) -> Figure:
    fig = Figure(figsize=(8.0, 1.2 + 0.4 * len(rows)))
    ax = fig.add_subplot()
    _interval_panel(ax, [f"{r.attribute}={r.level}" for r in rows], [r.difference for r in rows],
                    [r.ci_low for r in rows], [r.ci_high for r in rows],
                    [f"n={cell_text(r.n_patients)}" for r in rows], margin, "Paired difference by subgroup")
    fig.tight_layout()
    return fig


def importance_figure(expl: ExplanationSection, top: int = 15) -> Figure:
    feats = expl.global_importance[:top]
    fig = Figure(figsize=(6.0, 1.0 + 0.3 * len(feats)))
    ax = fig.add_subplot()
    y = np.arange(len(feats))[::-1]
    ax.barh(y, [f.integrated_gradients for f in feats], color=POL)
    ax.set_yticks(y, [f.feature for f in feats])
    ax.set(xlabel="mean |attribution| (IntegratedGradients)", title="Global importance")
    fig.tight_layout()
    return fig


def trajectory_figure(case: TrajectoryCase) -> Figure:
    dims = list(case.steps[0].clinician_dose) if case.steps else []
    fig = Figure(figsize=(4.0 * max(1, len(dims)), 2.8))
    axes = np.atleast_1d(fig.subplots(1, max(1, len(dims))))
    hours = [s.hour for s in case.steps]
    for ax, dim in zip(axes, dims, strict=False):
        ax.step(hours, [s.clinician_dose[dim] for s in case.steps], where="post", color=CLIN, label="clinician")
        ax.step(hours, [s.recommended_dose.get(dim, np.nan) for s in case.steps], where="post", color=POL,
                ls="--", label="recommended")
        ax.set(xlabel="hours from window start", title=dim)
        ax.legend(fontsize=7)
    fig.suptitle(f"{case.label}: {case.reason}", fontsize=9)
    fig.tight_layout()
    return fig


def sensitivity_figure(rows: Sequence[SensitivityRow], margin: float) -> Figure:
    fig = Figure(figsize=(8.0, 1.2 + 0.35 * len(rows)))
    ax = fig.add_subplot()
    _interval_panel(ax, [f"{r.setting} seed {r.seed} ({r.estimator})" for r in rows], [r.difference for r in rows],
                    [r.ci_low for r in rows], [r.ci_high for r in rows],
                    [r.gate_status or "" for r in rows], margin, "Paired difference across seeds and settings")
    fig.tight_layout()
    return fig
