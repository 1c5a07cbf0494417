"""`DynamicsEnsemble`: the fitted learned environment policy learners roll out in.

States are normalised (cohort `Normalizer`) [n, d]; actions are joint level indices int64 [n]
(discrete cohorts) or doses float [n, k] in clinical units; steps are int64 [n] window steps.
Everything stays in torch on the ensemble's device; sampling uses the caller's generator
(which must live on that device).

>>> from clinical_mborl.cohort.toy import make_toy_transitions
>>> from clinical_mborl.dynamics import DynamicsConfig, fit_dynamics
>>> ts = make_toy_transitions(30, seed=0)
>>> ens = fit_dynamics(ts, DynamicsConfig(n_members=3, n_elites=2, hidden_sizes=(8,), max_epochs=1), quiet=True)
>>> a = ts.split("train").arrays()
>>> out = ens.step(torch.as_tensor(a.states), torch.as_tensor(a.actions), torch.as_tensor(a.step),
...                torch.Generator().manual_seed(0))
>>> out.next_states.shape == a.states.shape
True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from clinical_mborl.cohort import ActionSpaceInfo, Normalizer, StateFeatureInfo, TransitionSet
from clinical_mborl.core.artifacts import load_artifact, save_artifact
from clinical_mborl.dynamics.config import DynamicsConfig
from clinical_mborl.dynamics.encoding import DynamicsScaling
from clinical_mborl.dynamics.history import HistoryRule
from clinical_mborl.dynamics.network import GaussianEnsemble

ARTIFACT_KIND = "dynamics_ensemble"
__all__ = ["DynamicsConfig", "DynamicsEnsemble", "EnsemblePrediction", "ModelStep", "RewardInfo"]


@dataclass(frozen=True)
class EnsemblePrediction:
    """Every member's prediction; next-state quantities in normalised state units."""

    next_mean: Tensor  # [M, n, d]
    next_std: Tensor  # [M, n, d]
    reward_mean: Tensor  # [M, n] intermediate reward
    reward_std: Tensor  # [M, n]
    term_logits: Tensor  # [M, n, 3] continue / death / discharge
    outcome_death_logit: Tensor  # [M, n] death after the window (for the window's last step)


@dataclass(frozen=True)
class ModelStep:
    """One sampled transition per row (a random elite per row)."""

    next_states: Tensor  # [n, d]
    rewards: Tensor  # [n] intermediate + outcome reward on termination / window end
    done: Tensor  # [n] bool: death or discharge sampled from the termination head
    truncated: Tensor  # [n] bool: window end reached (and not done)
    died: Tensor  # [n] bool: done by death
    disagreement: Tensor  # [n] max pairwise L2 distance between elite next means (MOReL)
    uncertainty: Tensor  # [n] max over elites of ||next_std||_2 (MOPO)
    member: Tensor  # [n] int64 ensemble member used for the row


@dataclass(frozen=True)
class RewardInfo:
    """The cohort's outcome rewards (CohortSpec.reward)."""

    death_reward: float
    survival_reward: float
    outcome_on_truncation: bool


class DynamicsEnsemble:
    """Probabilistic ensemble of dynamics, reward and termination models (see module doc)."""

    def __init__(
        self,
        *,
        config: DynamicsConfig,
        network: GaussianEnsemble,
        scaling: DynamicsScaling,
        state_features: list[StateFeatureInfo],
        action_space: ActionSpaceInfo,
        elites: list[int],
        gamma: float,
        reward: RewardInfo,
        cohort_manifest_hash: str,
        metrics: dict[str, Any] | None = None,
        history: HistoryRule | None = None,
    ) -> None:
        self.config = config
        self.network = network.eval().requires_grad_(False)
        self.scaling = scaling
        self.state_features = list(state_features)
        self.feature_names: tuple[str, ...] = tuple(f.name for f in self.state_features)
        self.normalizer = Normalizer(self.state_features)
        self.action_space = action_space
        self.n_members = network.n_members
        self.elites = [int(e) for e in elites]
        self.n_steps = scaling.n_steps
        self.gamma = float(gamma)
        self.reward = reward
        self.cohort_manifest_hash = cohort_manifest_hash
        self.metrics: dict[str, Any] = metrics or {}
        self.history = history or HistoryRule([], self.state_features)
        self.device = self.scaling.dose_scale.device
        self._elite_index = torch.as_tensor(self.elites, device=self.device)

    # ----------------------------------------------------------------- prediction
    def dose_features(self, actions: Tensor) -> Tensor:
        """int64 [n] joint index or float [n, k] doses -> log1p(dose) / train std, [n, k]."""
        return self.scaling.dose_features(actions.to(self.device))

    def predict(self, states: Tensor, actions: Tensor, steps: Tensor, exact_history: bool = True) -> EnsemblePrediction:
        """All members' predictions for normalised states [n, d], actions and steps [n].

        Treatment-history columns (`dynamics.history`) are set to their exact next value with zero
        spread; `exact_history=False` gives the network's own prediction of them (holdout metrics)."""
        s = self.scaling
        states = states.to(self.device, torch.float32)
        actions = actions.to(self.device)
        out = self.network(s.encode(states, actions, steps.to(self.device)))
        d = states.shape[-1]
        std = torch.exp(0.5 * out.logvar)
        next_mean, next_std = states + s.delta_mean + s.delta_std * out.mean[..., :d], s.delta_std * std[..., :d]
        if exact_history and self.history:
            next_mean = self.history.apply(states, next_mean, s.doses_of(actions))
            next_std = self.history.zero_spread(next_std)
        return EnsemblePrediction(
            next_mean=next_mean,
            next_std=next_std,
            reward_mean=s.reward_mean + s.reward_std * out.mean[..., d],
            reward_std=s.reward_std * std[..., d],
            term_logits=out.term_logits,
            outcome_death_logit=out.outcome_logit,
        )

    def _disagreement(self, pred: EnsemblePrediction) -> tuple[Tensor, Tensor]:
        elite_mean = pred.next_mean[self._elite_index].transpose(0, 1)  # [n, E, d]
        if len(self.elites) > 1:
            disagreement = torch.cdist(elite_mean, elite_mean).flatten(1).amax(-1)
        else:
            disagreement = torch.zeros(elite_mean.shape[0], device=self.device)
        uncertainty = pred.next_std[self._elite_index].norm(dim=-1).amax(0)
        return disagreement, uncertainty

    def step(self, states: Tensor, actions: Tensor, steps: Tensor, generator: torch.Generator) -> ModelStep:
        """Sample one transition per row from a random elite.

        Rewards: sampled intermediate reward, plus `death_reward` / `survival_reward` when the
        termination head samples death / discharge; a row reaching the window end
        (steps + 1 == n_steps) that is not done is truncated and, if the cohort gives the
        outcome at the window end, receives the expected outcome reward
        p x death_reward + (1 - p) x survival_reward with p from the outcome head.
        """
        with torch.no_grad():
            pred = self.predict(states, actions, steps)
            n, dev = states.shape[0], self.device
            rows = torch.arange(n, device=dev)
            pick = torch.randint(len(self.elites), (n,), generator=generator, device=dev)
            member = self._elite_index[pick]
            mean, std = pred.next_mean[member, rows], pred.next_std[member, rows]
            next_states = mean + std * torch.randn(mean.shape, generator=generator, device=dev)
            r_noise = torch.randn(n, generator=generator, device=dev)
            rewards = pred.reward_mean[member, rows] + pred.reward_std[member, rows] * r_noise
            term_p = torch.softmax(pred.term_logits[member, rows], dim=-1)
            term = torch.multinomial(term_p, 1, generator=generator).squeeze(-1)
            died, discharged = term == 1, term == 2
            done = died | discharged
            truncated = (steps.to(dev) + 1 >= self.n_steps) & ~done
            rw = self.reward
            rewards = rewards + died * rw.death_reward + discharged * rw.survival_reward
            if rw.outcome_on_truncation:
                p_death = torch.sigmoid(pred.outcome_death_logit[member, rows])
                expected = p_death * rw.death_reward + (1 - p_death) * rw.survival_reward
                rewards = rewards + truncated * expected
            disagreement, uncertainty = self._disagreement(pred)
        return ModelStep(next_states, rewards, done, truncated, died, disagreement, uncertainty, member)

    def data_disagreement(self, transitions: TransitionSet, batch_size: int = 8192) -> float:
        """Largest elite disagreement over the given rows (pass the train split; MOReL's threshold base)."""
        a = transitions.arrays(normalised=True)
        states = torch.as_tensor(a.states)
        actions = torch.as_tensor(a.actions)
        steps = torch.as_tensor(a.step)
        best = 0.0
        with torch.no_grad():
            for i in range(0, len(a), batch_size):
                sl = slice(i, i + batch_size)
                pred = self.predict(states[sl], actions[sl], steps[sl])
                best = max(best, float(self._disagreement(pred)[0].max()))
        return best

    def to(self, device: str | torch.device) -> DynamicsEnsemble:
        """Move the network and scaling buffers (in place); returns self."""
        self.device = torch.device(device)
        self.network.to(self.device)
        self.scaling.to(self.device)
        self._elite_index = self._elite_index.to(self.device)
        return self

    # ----------------------------------------------------------------- artifact
    def save(self, path: str | Path) -> None:
        """Write the artifact: weights + scaling safetensors, config, metrics, sha256 manifest."""
        config = {
            "dynamics_config": self.config.model_dump(mode="json"),
            "state_features": [f.model_dump(mode="json") for f in self.state_features],
            "normalizer": self.normalizer.to_dict(),
            "feature_names": list(self.feature_names),
            "action_space": self.action_space.model_dump(mode="json"),
            "elites": self.elites,
            "n_steps": self.n_steps,
            "gamma": self.gamma,
            "reward": vars(self.reward),
            "in_dim": self.network.in_dim,
            "n_doses": int(self.scaling.dose_scale.shape[0]),
        }
        if self.history:  # absent from ensembles of cohorts without treatment features
            config["treatment_history"] = self.history.to_config()
        save_artifact(
            path, kind=ARTIFACT_KIND, config=config,
            tensors={"weights": self.network.state_dict(), "scaling": self.scaling.state_dict()},
            extras={"metrics": self.metrics},
            cohort_manifest_hash=self.cohort_manifest_hash, seed=self.config.seed,
        )

    @classmethod
    def load(cls, path: str | Path) -> DynamicsEnsemble:
        """Read an artifact folder; refuses a tampered or foreign folder (ArtifactError)."""
        art = load_artifact(path, expected_kind=ARTIFACT_KIND)
        c = art.config
        cfg = DynamicsConfig.model_validate(c["dynamics_config"])
        feats = [StateFeatureInfo.model_validate(f) for f in c["state_features"]]
        space = ActionSpaceInfo.model_validate(c["action_space"])
        table = art.tensors["scaling"]["dose_table"].numpy()
        scaling = DynamicsScaling(int(c["n_steps"]), len(feats), table if table.shape[0] else None,
                                  n_doses=int(c["n_doses"]))
        scaling.load_state_dict(art.tensors["scaling"])
        net = GaussianEnsemble(cfg.n_members, int(c["in_dim"]), len(feats) + 1, cfg.hidden_sizes,
                               cfg.init_max_logvar, cfg.init_min_logvar)
        net.load_state_dict(art.tensors["weights"])
        return cls(config=cfg, network=net, scaling=scaling, state_features=feats, action_space=space,
                   elites=list(c["elites"]), gamma=float(c["gamma"]), reward=RewardInfo(**c["reward"]),
                   cohort_manifest_hash=art.manifest.cohort_manifest_hash or "",
                   metrics=art.extras.get("metrics", {}),
                   history=HistoryRule.from_config(c.get("treatment_history", []), feats))
