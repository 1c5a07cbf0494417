"""What an explanation explains: a scalar *contrast* of the policy's network per state.

Explaining a saturated probability hides everything interesting; explain a contrast instead:
F(s) = Q(s, recommended) - Q(s, clinician's action), or the logit difference. The actions are
fixed at the explained state, so F is a smooth function of s along every integration path.

A `ContrastTarget` holds `build(module) -> fn`, the module whose weights matter (so the sanity
check can randomise a copy of them), and per-row tensors (`extra`, e.g. action indices) that
Captum expands together with the inputs.

>>> import torch
>>> q = torch.nn.Linear(3, 4)
>>> t = action_contrast(q, recommended=torch.tensor([1, 2]), reference=torch.tensor([0, 0]))
>>> t(torch.zeros(2, 3)).shape
torch.Size([2])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from clinical_mborl.core.errors import InputError

MISSING_SUFFIX = "_missing"

ContrastFn = Callable[..., Tensor]
"""`fn(states_norm [n, d], *extra) -> [n]`: the scalar explained per row."""


@dataclass(frozen=True)
class ContrastTarget:
    """A contrast function bound to the weights it depends on.

    Attributes:
        build: maps a module (the policy network, or a re-initialised copy) to the contrast
            function `fn(states_norm, *extra) -> [n]`.
        module: the network whose weights the parameter-randomisation check re-initialises.
        extra: per-row tensors passed after the states (e.g. recommended and clinician actions);
            first dimension = number of explained rows.
    """

    build: Callable[[nn.Module], ContrastFn]
    module: nn.Module
    extra: tuple[Tensor, ...] = field(default_factory=tuple)

    @property
    def fn(self) -> ContrastFn:
        return self.build(self.module)

    def with_module(self, module: nn.Module) -> ContrastTarget:
        """The same contrast computed by another module (e.g. a randomised copy)."""
        return ContrastTarget(build=self.build, module=module, extra=self.extra)

    def subset(self, rows: Tensor) -> ContrastTarget:
        """Restrict the per-row tensors to `rows` (index tensor)."""
        return ContrastTarget(build=self.build, module=self.module, extra=tuple(e[rows] for e in self.extra))

    def __call__(self, states_norm: Tensor) -> Tensor:
        return self.fn(states_norm, *self.extra)


class _ActionContrast:
    """F(s) = out(s)[recommended] - out(s)[reference] for a network `out(s) -> [n, A]`."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __call__(self, states: Tensor, recommended: Tensor, reference: Tensor) -> Tensor:
        out = self.module(states)
        if out.ndim == 3:  # twin critics [members, n, A]: the pessimistic (min) estimate
            out = out.min(0).values
        if out.ndim != 2:
            raise InputError(
                f"action contrast: the network must return [n, n_actions]; got shape {tuple(out.shape)}."
            )
        rec = out.gather(1, recommended.long().view(-1, 1)).squeeze(1)
        ref = out.gather(1, reference.long().view(-1, 1)).squeeze(1)
        return rec - ref


def action_contrast(module: nn.Module, recommended: Tensor, reference: Tensor) -> ContrastTarget:
    """Contrast of a Q-network (or logit head) between two actions per row.

    Args:
        module: maps normalised states [n, d] to per-action outputs [n, A] (Q-values or logits;
            twin critics [2, n, A] use their minimum).
        recommended: int [n], the policy's action at each explained state.
        reference: int [n], the clinician's action (observed or most probable).
    """
    if recommended.shape != reference.shape or recommended.ndim != 1:
        raise InputError(
            "action_contrast: recommended and reference must be 1-D and equally long; "
            f"got {tuple(recommended.shape)} and {tuple(reference.shape)}."
        )
    return ContrastTarget(build=_ActionContrast, module=module, extra=(recommended.long(), reference.long()))


class _ModuleOutput:
    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __call__(self, states: Tensor) -> Tensor:
        out = self.module(states)
        return out.reshape(out.shape[0])


def scalar_contrast(module: nn.Module) -> ContrastTarget:
    """A module that already returns one scalar per row ([n] or [n, 1]) is its own contrast."""
    return ContrastTarget(build=_ModuleOutput, module=module)


def feature_groups(names: Sequence[str]) -> list[tuple[str, ...]]:
    """Group each measurement with its `<name>_missing` indicator; other features stand alone.

    >>> feature_groups(["map", "map_missing", "age"])
    [('map', 'map_missing'), ('age',)]
    """
    present = set(names)
    groups: list[tuple[str, ...]] = []
    for name in names:
        stem = name.removesuffix(MISSING_SUFFIX)
        if name.endswith(MISSING_SUFFIX) and stem in present:
            continue
        partner = name + MISSING_SUFFIX
        groups.append((name, partner) if partner in present else (name,))
    return groups


def group_mask(names: Sequence[str], groups: Sequence[tuple[str, ...]]) -> Tensor:
    """Captum feature mask [1, d]: column j holds the index of the group feature j belongs to."""
    index = {n: g for g, members in enumerate(groups) for n in members}
    if set(index) != set(names):
        raise InputError("feature groups must cover every feature exactly once.")
    return torch.tensor([[index[n] for n in names]], dtype=torch.long)
