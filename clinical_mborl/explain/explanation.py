"""`explain_policy`: attributions of a policy's contrast, in clinical units, with their checks.

>>> import numpy as np, torch
>>> from clinical_mborl.cohort import Normalizer, StateFeatureInfo
>>> from clinical_mborl.explain.contrast import scalar_contrast
>>> feats = [StateFeatureInfo(name=n, unit="u", kind="measurement", transform="zscore") for n in "abc"]
>>> net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
>>> e = explain_policy(scalar_contrast(net), np.random.rand(6, 3), feats, np.random.rand(20, 3),
...                    ExplainConfig(shapley_samples=30, sanity_rows=6))
>>> e.integrated_gradients.shape
(6, 3)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import torch
from pydantic import Field

from clinical_mborl.cohort.manifest import StateFeatureInfo
from clinical_mborl.cohort.normalize import Normalizer
from clinical_mborl.core.errors import InputError
from clinical_mborl.core.io import atomic_directory
from clinical_mborl.core.models import StrictModel
from clinical_mborl.explain.attributions import (
    CompletenessCheck,
    gradient_shap,
    grouped_attributions,
    integrated_gradients,
)
from clinical_mborl.explain.contrast import ContrastTarget, feature_groups, group_mask
from clinical_mborl.explain.sanity import (
    SanityResult,
    parameter_randomisation_check,
    rank_correlation,
)

ATTRIBUTIONS_FILE = "attributions.parquet"
SUMMARY_FILE = "summary.json"


class ExplainConfig(StrictModel):
    """Settings of `explain_policy` (each documented with its source)."""

    ig_steps: int = Field(64, ge=4, description="Initial Gauss-Legendre steps of IntegratedGradients (Sundararajan et al. 2017).")
    ig_max_steps: int = Field(512, ge=4, description="Steps are doubled up to this cap until completeness holds.")
    completeness_tolerance: float = Field(0.05, gt=0, description="Max |delta| / |F(x) - F(baseline)| accepted.")
    n_baselines: int = Field(64, ge=1, description="Train-split states used as GradientShap baselines (Lundberg & Lee 2017).")
    gradient_shap_samples: int = Field(32, ge=1, description="GradientShap draws per explained row.")
    grouped_method: Literal["shapley", "ablation"] = Field("shapley", description="ShapleyValueSampling (Castro et al. 2009) or FeatureAblation over feature groups.")
    shapley_samples: int = Field(200, ge=1, description="Permutations for ShapleyValueSampling; far above Captum's default 25.")
    sanity_threshold: float = Field(0.5, description="Max mean Spearman rank correlation after full randomisation (Adebayo et al. 2018).")
    sanity_rows: int = Field(64, ge=2, description="Rows used by the randomisation check.")
    sanity_repeats: int = Field(3, ge=1, description="Independent re-initialisations averaged per randomisation step.")
    max_rows: int = Field(512, ge=1, description="At most this many rows are explained (uniform subsample).")
    top_k: int = Field(5, ge=1, description="Top features listed per explained row.")
    seed: int = 0


class FeatureImportance(StrictModel):
    """Global importance of one feature: mean |attribution| over explained rows, per method."""

    feature: str
    unit: str
    integrated_gradients: float
    gradient_shap: float
    grouped: float


class TopFeature(StrictModel):
    feature: str
    value: float
    unit: str
    attribution: float


class RowExplanation(StrictModel):
    """Top features of one explained row, values in clinical units. `row` indexes the explained rows."""

    row: int
    contrast: float
    top: list[TopFeature]


class ExplanationSummary(StrictModel):
    """What the report shows: checks, global importance, per-row top features. No identifiers."""

    target: str
    n_rows: int
    feature_names: list[str]
    groups: list[list[str]]
    grouped_method: str
    completeness: CompletenessCheck
    sanity: SanityResult
    global_importance: list[FeatureImportance]
    method_agreement_spearman: float
    rows: list[RowExplanation]
    config: ExplainConfig

    @property
    def passed(self) -> bool:
        return self.completeness.passed and self.sanity.passed


@dataclass(frozen=True)
class Explanation:
    """Attribution arrays [n, d] (grouped: [n, n_groups]) plus the summary."""

    states_raw: np.ndarray
    contrast: np.ndarray
    integrated_gradients: np.ndarray
    gradient_shap: np.ndarray
    grouped: np.ndarray
    summary: ExplanationSummary


def _global(names: Sequence[str], units: Sequence[str], ig: np.ndarray, gs: np.ndarray,
            grouped: np.ndarray, groups: Sequence[tuple[str, ...]]) -> list[FeatureImportance]:
    group_of = {n: g for g, members in enumerate(groups) for n in members}
    gmean = np.abs(grouped).mean(0)
    out = [FeatureImportance(feature=n, unit=u, integrated_gradients=float(np.abs(ig[:, j]).mean()),
                             gradient_shap=float(np.abs(gs[:, j]).mean()), grouped=float(gmean[group_of[n]]))
           for j, (n, u) in enumerate(zip(names, units, strict=True))]
    return sorted(out, key=lambda f: -f.integrated_gradients)


def top_features(attr: np.ndarray, states_raw: np.ndarray, contrast: np.ndarray,
                 names: Sequence[str], units: Sequence[str], k: int) -> list[RowExplanation]:
    """Per row, the `k` features with the largest |attribution|, with their clinical values."""
    rows = []
    for i in range(attr.shape[0]):
        order = np.argsort(-np.abs(attr[i]), kind="stable")[:k]
        rows.append(RowExplanation(row=i, contrast=float(contrast[i]), top=[
            TopFeature(feature=names[j], value=float(states_raw[i, j]), unit=units[j], attribution=float(attr[i, j]))
            for j in order]))
    return rows


def explain_policy(
    target: ContrastTarget,
    states_raw: np.ndarray,
    features: Sequence[StateFeatureInfo],
    background_raw: np.ndarray,
    config: ExplainConfig | None = None,
    target_label: str = "Q(s, recommended) - Q(s, clinician)",
) -> Explanation:
    """Explain `target` at `states_raw` (clinical units, cohort feature order).

    Args:
        target: the contrast (its per-row `extra` tensors align with `states_raw`).
        features: the cohort's state features (names, units, train-split normalisation).
        background_raw: train-split states in clinical units: their mean is the IG / ablation
            baseline and a sample of them the GradientShap baseline distribution.
    """
    cfg = config or ExplainConfig()
    names, units = [f.name for f in features], [f.unit for f in features]
    states_raw = np.asarray(states_raw, dtype=np.float64)
    if states_raw.ndim != 2 or states_raw.shape[1] != len(names) or len(background_raw) == 0:
        raise InputError(
            f"explain: expected states [n, {len(names)}] and a non-empty background; "
            f"got {states_raw.shape} and {np.shape(background_raw)}. Pass states in the cohort's feature order."
        )
    rng = np.random.default_rng(cfg.seed)
    if len(states_raw) > cfg.max_rows:
        keep = np.sort(rng.choice(len(states_raw), cfg.max_rows, replace=False))
        target, states_raw = target.subset(torch.as_tensor(keep)), states_raw[keep]
    norm = Normalizer(features)
    x = torch.as_tensor(norm.transform(states_raw))
    background = torch.as_tensor(norm.transform(np.asarray(background_raw, dtype=np.float64)))
    baseline = background.mean(0)
    pick = rng.choice(len(background), min(cfg.n_baselines, len(background)), replace=False)
    ig = integrated_gradients(target, x, baseline, n_steps=cfg.ig_steps, max_steps=cfg.ig_max_steps,
                              tolerance=cfg.completeness_tolerance)
    gs = gradient_shap(target, x, background[torch.as_tensor(pick)], n_samples=cfg.gradient_shap_samples, seed=cfg.seed)
    groups = feature_groups(names)
    grouped = grouped_attributions(target, x, baseline, group_mask(names, groups), method=cfg.grouped_method,
                                   n_samples=cfg.shapley_samples, seed=cfg.seed)
    sanity_rows = torch.as_tensor(np.sort(rng.choice(len(x), min(cfg.sanity_rows, len(x)), replace=False)))
    sanity = parameter_randomisation_check(target.subset(sanity_rows), x[sanity_rows], baseline,
                                           threshold=cfg.sanity_threshold, n_repeats=cfg.sanity_repeats, seed=cfg.seed)
    with torch.no_grad():
        contrast = target(x).double().numpy()
    importance = _global(names, units, ig.attributions, gs, grouped, groups)
    agreement = rank_correlation(np.array([[f.integrated_gradients for f in importance]]),
                                 np.array([[f.gradient_shap for f in importance]]))
    summary = ExplanationSummary(
        target=target_label, n_rows=len(x), feature_names=names, groups=[list(g) for g in groups],
        grouped_method=cfg.grouped_method, completeness=ig.completeness, sanity=sanity,
        global_importance=importance, method_agreement_spearman=agreement,
        rows=top_features(ig.attributions, states_raw, contrast, names, units, cfg.top_k), config=cfg,
    )
    return Explanation(states_raw=states_raw, contrast=contrast, integrated_gradients=ig.attributions,
                       gradient_shap=gs, grouped=grouped, summary=summary)


def _frame(e: Explanation) -> pl.DataFrame:
    names = e.summary.feature_names
    cols: dict[str, object] = {"row": np.arange(len(e.contrast)), "contrast": e.contrast}
    for j, n in enumerate(names):
        cols[f"value__{n}"] = e.states_raw[:, j]
        cols[f"ig__{n}"] = e.integrated_gradients[:, j]
        cols[f"gradient_shap__{n}"] = e.gradient_shap[:, j]
    for g, members in enumerate(e.summary.groups):
        cols[f"grouped__{'+'.join(members)}"] = e.grouped[:, g]
    return pl.DataFrame(cols)


def save_explanation(e: Explanation, out_dir: str | Path) -> Path:
    """Write `attributions.parquet` and `summary.json` into `out_dir` atomically."""
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        _frame(e).write_parquet(tmp / ATTRIBUTIONS_FILE)
        (tmp / SUMMARY_FILE).write_text(e.summary.model_dump_json(indent=2))
    return out_dir


def load_explanation(path: str | Path) -> Explanation:
    """Read a folder written by `save_explanation`."""
    path = Path(path)
    if not (path / SUMMARY_FILE).is_file() or not (path / ATTRIBUTIONS_FILE).is_file():
        raise InputError(f"explanation {path}: expected {ATTRIBUTIONS_FILE} and {SUMMARY_FILE}; run `clinical-mborl explain`.")
    summary = ExplanationSummary.model_validate(json.loads((path / SUMMARY_FILE).read_text()))
    f = pl.read_parquet(path / ATTRIBUTIONS_FILE)
    names = summary.feature_names

    def block(prefix: str) -> np.ndarray:
        return f.select([f"{prefix}__{n}" for n in names]).to_numpy().astype(np.float64)

    grouped = f.select([f"grouped__{'+'.join(g)}" for g in summary.groups]).to_numpy().astype(np.float64)
    return Explanation(states_raw=block("value"), contrast=f["contrast"].to_numpy().astype(np.float64),
                       integrated_gradients=block("ig"), gradient_shap=block("gradient_shap"),
                       grouped=grouped, summary=summary)
