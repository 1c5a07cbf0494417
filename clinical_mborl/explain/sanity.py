"""Parameter-randomisation sanity check (Adebayo et al., NeurIPS 2018, "Sanity Checks for Saliency Maps").

Attributions that survive re-initialising the network's weights explain the input, not the model.
Cascading randomisation re-initialises layers from the output towards the input, one more at each
step; full randomisation re-initialises every layer. For each, the Spearman rank correlation
between original and randomised attributions (per row over features, averaged over rows and over
`n_repeats` independent re-initialisations) must drop below a threshold.

The pass/fail statistic uses signed attributions. The absolute-value correlation is reported too,
but IntegratedGradients multiplies by (x - baseline), which keeps |attributions| correlated even
for a random network (Adebayo et al. observe the same for Gradient x Input).

>>> import torch
>>> from clinical_mborl.explain.contrast import scalar_contrast
>>> net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
>>> res = parameter_randomisation_check(scalar_contrast(net), torch.randn(32, 4), torch.zeros(4))
>>> res.passed
True
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import Tensor, nn

from clinical_mborl.core.models import StrictModel
from clinical_mborl.explain.attributions import integrated_gradients
from clinical_mborl.explain.contrast import ContrastTarget


class RandomisationStep(StrictModel):
    """One randomised model: which layers were re-initialised and how similar attributions stayed."""

    name: str
    layers: list[str]
    spearman: float
    spearman_abs: float
    passed: bool


class SanityResult(StrictModel):
    """Outcome of the parameter-randomisation check; `passed` requires full randomisation to pass."""

    method: str = "integrated_gradients"
    threshold: float
    n_rows: int
    n_repeats: int
    full_randomisation_spearman: float
    cascading: list[RandomisationStep]
    passed: bool
    reason: str


def parameter_layers(module: nn.Module) -> list[str]:
    """Names of sub-modules holding parameters directly, from the output side to the input side."""
    names = [n for n, m in module.named_modules() if any(True for _ in m.parameters(recurse=False))]
    return list(reversed(names))


def _reinitialise(module: nn.Module, seed: int) -> None:
    """Fresh weights: `reset_parameters()` where defined, else N(0, std of the original)."""
    torch.manual_seed(seed)
    reset = getattr(module, "reset_parameters", None)
    if callable(reset):
        reset()
        return
    with torch.no_grad():
        for p in module.parameters(recurse=False):
            std = float(p.std()) if p.numel() > 1 else 1.0
            p.normal_(0.0, std if math.isfinite(std) and std > 0 else 1.0)


def rank_correlation(a: np.ndarray, b: np.ndarray, absolute: bool = False) -> float:
    """Mean over rows of Spearman(a_i, b_i) (of |a_i|, |b_i| if `absolute`).

    Identical rows count as 1; a constant row that differs from its partner counts as 0.
    """
    if absolute:
        a, b = np.abs(a), np.abs(b)
    values = []
    for x, y in zip(a, b, strict=True):
        if np.allclose(x, y, rtol=1e-6, atol=1e-12):
            values.append(1.0)
            continue
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            values.append(0.0)
            continue
        rho = spearmanr(x, y).statistic
        values.append(float(rho) if np.isfinite(rho) else 0.0)
    return float(np.mean(values)) if values else 1.0


def _attributions(target: ContrastTarget, states: Tensor, baseline: Tensor, n_steps: int) -> np.ndarray:
    return integrated_gradients(target, states, baseline, n_steps=n_steps, max_steps=n_steps).attributions


def parameter_randomisation_check(
    target: ContrastTarget,
    states: Tensor,
    baseline: Tensor,
    *,
    threshold: float = 0.5,
    n_steps: int = 32,
    n_repeats: int = 3,
    seed: int = 0,
) -> SanityResult:
    """Re-initialise the contrast's network (cascading and fully) and compare attributions.

    Passes when the full-randomisation Spearman correlation is below `threshold` (Adebayo et al.
    report near-zero rank correlation for methods that are sensitive to the model).
    A module without parameters cannot be checked and fails.
    """
    if n_repeats < 1:
        raise ValueError(f"n_repeats must be >= 1, got {n_repeats}")
    layers = parameter_layers(target.module)
    n_rows = int(states.shape[0])
    if not layers:
        return SanityResult(threshold=threshold, n_rows=n_rows, n_repeats=n_repeats,
                            full_randomisation_spearman=1.0, cascading=[], passed=False,
                            reason="the network has no parameters: attributions cannot depend on weights")
    original = _attributions(target, states, baseline, n_steps)
    if not np.any(original):
        return SanityResult(threshold=threshold, n_rows=n_rows, n_repeats=n_repeats,
                            full_randomisation_spearman=1.0, cascading=[], passed=False,
                            reason="original attributions are all zero: nothing to compare")
    steps: list[RandomisationStep] = []
    for k in range(1, len(layers) + 1):
        signed, absolute = [], []
        for r in range(n_repeats):
            rand = copy.deepcopy(target.module)
            subs = dict(rand.named_modules())
            for i, name in enumerate(layers[:k]):
                _reinitialise(subs[name], seed + 100_003 * r + 1000 * k + i)
            attr = _attributions(target.with_module(rand), states, baseline, n_steps)
            signed.append(rank_correlation(original, attr))
            absolute.append(rank_correlation(original, attr, absolute=True))
        rho = float(np.mean(signed))
        label = "full" if k == len(layers) else f"top {k}"
        steps.append(RandomisationStep(name=label, layers=layers[:k], spearman=rho,
                                       spearman_abs=float(np.mean(absolute)), passed=rho < threshold))
    full = steps[-1].spearman
    passed = full < threshold
    reason = (f"full randomisation rank correlation {full:.3f} {'<' if passed else '>='} threshold {threshold}")
    return SanityResult(threshold=threshold, n_rows=n_rows, n_repeats=n_repeats,
                        full_randomisation_spearman=full, cascading=steps, passed=passed, reason=reason)
