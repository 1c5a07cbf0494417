"""Settings shared by the policy learners; each algorithm's `<Algo>Config` extends one of these.

The discount gamma is not here: it is a clinical constant of the cohort spec
(`transitions.manifest.gamma`).

>>> LearnerConfig(seed=3).replace(n_updates=10).n_updates
10
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Self

from clinical_mborl.core.errors import InputError
from clinical_mborl.policies.constraints import ConstraintConfig


@dataclass(frozen=True)
class LearnerConfig:
    """What every learner shares."""

    seed: int = 0
    """Seeds network initialisation, minibatch sampling and model rollouts; same seed, same policy."""

    n_updates: int = 20_000
    """Gradient updates (one Lightning `training_step` each)."""

    batch_size: int = 256
    """Transitions per gradient update."""

    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer widths of every network (ReLU MLPs)."""

    lr: float = 3e-4
    """Adam learning rate of the Q-networks / critics (and of BC's policy network)."""

    zero_dose_fraction: float = 0.02
    """Continuous doses: actor doses below this share of dose_max are given as exactly zero
    (no treatment), so the learned dose distribution is zero-inflated like the clinicians'.
    0 disables the cut; otherwise at least 0.001."""

    constraint: ConstraintConfig = field(default_factory=ConstraintConfig)
    """The constraint to the clinician (support mask, KL, BC); see `constraints.py`."""

    quiet: bool = False
    """Hide the Lightning progress bar."""

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed; `constraint` may be given as a dict of its fields."""
        if isinstance(changes.get("constraint"), dict):
            changes["constraint"] = dataclasses.replace(self.constraint, **changes["constraint"])
        try:
            return dataclasses.replace(self, **changes)
        except TypeError as exc:
            names = sorted(f.name for f in dataclasses.fields(self))
            raise InputError(f"{type(self).__name__}: unknown setting(s) in {sorted(changes)}; "
                             f"expected some of {names}.") from exc

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (stored in the policy artifact; tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Inverse of `to_dict`."""
        data = dict(data)
        data["constraint"] = ConstraintConfig(**data.get("constraint", {}))
        data["hidden"] = tuple(data.get("hidden", cls.hidden))
        return cls(**data)

    def check(self) -> None:
        """Raise InputError for values no learner can use."""
        if self.n_updates < 1 or self.batch_size < 1 or not self.hidden or min(self.hidden) < 1:
            raise InputError(f"{type(self).__name__}: n_updates, batch_size and hidden widths must "
                             f"be >= 1; got {self.n_updates}, {self.batch_size}, {list(self.hidden)}.")
        if self.lr <= 0:
            raise InputError(f"{type(self).__name__}: lr must be > 0; got {self.lr}.")
        if self.zero_dose_fraction != 0 and not 0.001 <= self.zero_dose_fraction < 0.5:
            raise InputError(f"{type(self).__name__}: zero_dose_fraction must be 0 or in [0.001, 0.5); "
                             f"got {self.zero_dose_fraction}.")


@dataclass(frozen=True)
class ActorCriticConfig(LearnerConfig):
    """Soft actor-critic (Haarnoja et al. 2018; discrete: Christodoulou 2019) and soft Q-learning."""

    actor_lr: float = 1e-4
    """Adam learning rate of the actor (COMBO uses 1e-4 for the actor, 3e-4 for the critics)."""

    reward_scale: float = 1.0
    """c in y = c r + gamma (1 - end) V(s'): the scale Q-values live on. Conservative weights
    (CQL alpha, COMBO beta) are published for returns of tens to thousands; outcome rewards of
    +-1 make the same weights far more conservative, which c > 1 undoes. The learned policy does
    not otherwise depend on c (the SAC temperature tracks an entropy target)."""

    polyak: float = 0.005
    """Target networks: theta' <- (1 - polyak) theta' + polyak theta after every update."""

    init_alpha: float = 0.1
    """Initial SAC entropy temperature alpha in J_pi = E[alpha log pi(a|s) - Q(s, a)]."""

    auto_alpha: bool = True
    """Tune alpha so the policy entropy tracks a target: J_alpha = log alpha (H(pi) - H_target)."""

    target_entropy_ratio: float = 0.3
    """Discrete: H_target(s) = ratio * log |allowed actions at s| (a share of the largest entropy
    the support mask leaves). Continuous doses use SAC's H_target = -k for k dose dimensions."""

    soft_q_temperature: float = 0.05
    """tau of discrete soft Q-learning: V(s) = tau logsumexp(Q(s, .) / tau) over allowed actions
    (Haarnoja et al. 2017); 0 with kl_weight 0 gives double DQN (van Hasselt et al. 2016)."""

    explore_epsilon: float = 0.1
    """Discrete hard-max (tau + kl_weight = 0) rollouts: epsilon-greedy over allowed actions."""

    def check(self) -> None:
        super().check()
        if not (0 < self.polyak <= 1) or self.init_alpha <= 0 or self.soft_q_temperature < 0 \
                or self.reward_scale <= 0:
            raise InputError(f"{type(self).__name__}: need 0 < polyak <= 1, init_alpha > 0, "
                             f"soft_q_temperature >= 0, reward_scale > 0; got {self.polyak}, "
                             f"{self.init_alpha}, {self.soft_q_temperature}, {self.reward_scale}.")


@dataclass(frozen=True)
class ModelBasedConfig(ActorCriticConfig):
    """Branched model rollouts mixed with real data (MBPO, Janner et al. 2019)."""

    horizon: int = 5
    """h: length of each model rollout branched from a dataset state (MOPO/COMBO: h in {1, 5})."""

    real_fraction: float = 0.5
    """f: share of each minibatch drawn from the dataset; the rest from model rollouts."""

    rollout_batch: int = 2_000
    """Dataset states a rollout round branches from."""

    rollout_every: int = 250
    """Gradient updates between rollout rounds (one round also runs before the first update)."""

    retain_rounds: int = 8
    """Model buffer capacity, in rollout rounds: rollout_batch * horizon * retain_rounds rows."""

    def check(self) -> None:
        super().check()
        if self.horizon < 1 or not (0 <= self.real_fraction <= 1) or self.rollout_batch < 1 \
                or self.rollout_every < 1 or self.retain_rounds < 1:
            raise InputError(f"{type(self).__name__}: need horizon, rollout_batch, rollout_every, "
                             f"retain_rounds >= 1 and 0 <= real_fraction <= 1; got {self.horizon}, "
                             f"{self.rollout_batch}, {self.rollout_every}, {self.retain_rounds}, "
                             f"{self.real_fraction}.")
