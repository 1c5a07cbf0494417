"""`LearnedPolicy`: a trained network behind the `clinical_mborl.core.policy.Policy` protocol.

States come in clinical units and are normalised inside with the cohort's train-split
normaliser (stored in the artifact). Discrete policies return a softmax over the actions the
support mask allows (with a temperature), or the greedy action softened by epsilon; continuous
policies give the mean dose (or samples) and a log-density in clinical units.

>>> policy = train_bc(ts, behavior, None, BcConfig(n_updates=50))  # doctest: +SKIP
>>> policy.save("out/bc"); LearnedPolicy.load("out/bc", behavior=behavior)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from clinical_mborl.cohort import ActionSpaceInfo, Normalizer, StateFeatureInfo
from clinical_mborl.core.artifacts import load_artifact, save_artifact
from clinical_mborl.core.errors import ArtifactError, InputError
from clinical_mborl.policies.constraints import (
    ClinicianPrior,
    ConstraintConfig,
    apply_mask,
    regularised_logits,
    support_mask,
)
from clinical_mborl.policies.networks import EDGE, TanhGaussianActor, build_network, scale_doses

POLICY_KIND = "policy"
Head = Literal["q", "logits", "tanh_gaussian"]


def normalizer_from_dict(d: dict[str, Any]) -> Normalizer:
    """Rebuild a `Normalizer` from its `to_dict()`."""
    feats = []
    for name, mean, std, log, ident in zip(d["names"], d["mean"], d["std"], d["log"], d["identity"], strict=True):
        transform = "none" if ident else ("log_zscore" if log else "zscore")
        feats.append(StateFeatureInfo(name=name, unit="", kind="measurement", transform=transform,
                                      mean=float(mean), std=float(std)))
    return Normalizer(feats)


@dataclasses.dataclass(frozen=True)
class OutputSettings:
    """How network outputs become action probabilities / doses."""

    temperature: float = 1.0  # discrete: softmax(logits / temperature)
    greedy: bool = False  # discrete: put (1 - softening) on the best allowed action
    softening: float = 0.0  # discrete: mix in `softening` x uniform over allowed actions
    deterministic: bool = False  # continuous: sample_actions returns the mean dose


class LearnedPolicy:
    """A trained dosing policy (Policy protocol; `log_density` for continuous doses)."""

    def __init__(self, *, name: str, algo: str, head: Head, network: nn.Module, network_spec: dict[str, Any],
                 normalizer: Normalizer, feature_names: tuple[str, ...], action_space: ActionSpaceInfo,
                 constraint: ConstraintConfig, tau: float = 0.0, output: OutputSettings | None = None,
                 behavior: Any = None, critic: nn.Module | None = None,
                 critic_spec: dict[str, Any] | None = None, config: dict[str, Any] | None = None,
                 cohort_manifest_hash: str | None = None, seed: int | None = None,
                 history: list[dict[str, float]] | None = None) -> None:
        self.name, self.algo, self.head = name, algo, head
        self.action_kind: Literal["discrete", "continuous"] = action_space.kind
        self.feature_names = tuple(feature_names)
        self.network, self.network_spec = network.eval(), network_spec
        self.critic, self.critic_spec = (critic.eval() if critic is not None else None), critic_spec
        self.normalizer, self.action_space, self.constraint = normalizer, action_space, constraint
        self.tau, self.output = tau, output or OutputSettings()
        self.config, self.cohort_manifest_hash, self.seed = dict(config or {}), cohort_manifest_hash, seed
        self.history = list(history or [])
        self.behavior = behavior
        self._prior: ClinicianPrior | None = None
        if self.action_kind == "discrete" and (constraint.support_threshold > 0 or constraint.kl_weight > 0):
            if behavior is None:
                raise InputError(f"policy '{name}' was trained with the clinician support mask / KL prior "
                                 "and needs the clinician policy to act; pass `behavior` "
                                 "(`--behavior DIR`).")
            self._prior = ClinicianPrior(behavior, normalizer, action_space)

    # ---------------------------------------------------------------- helpers
    def _states(self, states: np.ndarray) -> Tensor:
        x = np.asarray(states, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise InputError(f"policy '{self.name}': states must be [n, {len(self.feature_names)}] in the "
                             f"order {list(self.feature_names)}; got shape {x.shape}.")
        return torch.as_tensor(self.normalizer.transform(x))

    def _require(self, kind: str) -> None:
        if self.action_kind != kind:
            raise TypeError(f"policy '{self.name}' has {self.action_kind} actions; this needs {kind} ones")

    @torch.no_grad()
    def _logits_and_mask(self, s: Tensor) -> tuple[Tensor, Tensor | None, bool]:
        """(masked logits [n, A], allowed mask or None, hard-max) in normalised state space."""
        log_pb = self._prior.log_proba(s) if self._prior is not None else None
        mask = support_mask(log_pb, self.constraint.support_threshold)
        out = self.network(s)
        if self.head == "q":
            w = self.constraint.kl_weight
            if self.tau + w <= 0:
                return apply_mask(out, mask), mask, True
            return regularised_logits(out, log_pb, mask, self.tau, w), mask, False
        return apply_mask(out, mask), mask, False

    # ---------------------------------------------------------------- Policy protocol
    def action_probabilities(self, states: np.ndarray) -> np.ndarray:
        """[n, A] probabilities over joint dose levels, zero outside the support mask."""
        self._require("discrete")
        logits, mask, hard = self._logits_and_mask(self._states(states))
        allowed = torch.ones_like(logits) if mask is None else mask.float()
        uniform = allowed / allowed.sum(-1, keepdim=True)
        if hard or self.output.greedy:
            p = torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float()
        else:
            p = (logits / self.output.temperature).softmax(-1)
        eps = self.output.softening
        p = (1.0 - eps) * p + eps * uniform
        p = p.double()
        return (p / p.sum(-1, keepdim=True)).numpy()

    def sample_actions(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Discrete: joint indices [n]. Continuous: doses [n, k] (the mean if `deterministic`)."""
        if self.action_kind == "discrete":
            p = self.action_probabilities(states)
            cdf = p.cumsum(1)
            cdf[:, -1] = 1.0
            return (cdf > rng.random((p.shape[0], 1))).argmax(1).astype(np.int64)
        if self.output.deterministic:
            return self.mean_doses(states)
        actor = self._actor()
        with torch.no_grad():
            mu, log_std = actor._dist(self._states(states))
        z = torch.as_tensor(rng.standard_normal(tuple(mu.shape)), dtype=mu.dtype)
        scaled = torch.tanh(mu + log_std.exp() * z).clamp(-1.0 + EDGE, 1.0 - EDGE)
        return actor.to_doses(scaled).double().numpy()

    def log_density(self, states: np.ndarray, doses: np.ndarray) -> np.ndarray:
        """log pi(dose | s), [n]: per dimension the probability of no dose for zero doses, the density
        (clinical units) above the zero cut, -inf between (the policy never gives those)."""
        actor = self._actor()
        with torch.no_grad():
            d = torch.as_tensor(np.asarray(doses, dtype=np.float32))
            return actor.log_prob_doses(self._states(states), d).double().numpy()

    def mean_doses(self, states: np.ndarray) -> np.ndarray:
        """Continuous: the deterministic recommendation tanh(mu(s)) in clinical units, [n, k]."""
        actor = self._actor()
        with torch.no_grad():
            return actor.mean_doses(self._states(states)).double().numpy()

    def q_values(self, states: np.ndarray, actions: np.ndarray | None = None) -> np.ndarray:
        """Discrete: Q(s, .) [n, A] (min of twin critics). Continuous: Q(s, doses) [n] (needs doses)."""
        with torch.no_grad():
            s = self._states(states)
            if self.critic is None and self.head == "q":
                return self.network(s).double().numpy()
            if self.critic is None:
                raise TypeError(f"policy '{self.name}' ({self.algo}) has no critic")
            if self.action_kind == "discrete":
                return self.critic(s).min(0).values.double().numpy()
            if actions is None:
                raise TypeError("continuous q_values needs the doses")
            scaled = scale_doses(torch.as_tensor(np.asarray(actions, dtype=np.float32)), self._actor().dose_max)
            return self.critic(s, scaled).min(0).values.double().numpy()

    def _actor(self) -> TanhGaussianActor:
        self._require("continuous")
        assert isinstance(self.network, TanhGaussianActor)
        return self.network

    def with_output(self, **changes: Any) -> LearnedPolicy:
        """A copy with other output settings, e.g. `with_output(greedy=True, softening=0.01)`."""
        out = dataclasses.replace(self.output, **changes)
        if out.temperature <= 0 or not (0.0 <= out.softening <= 1.0):
            raise InputError(f"policy output: need temperature > 0 and 0 <= softening <= 1; got "
                             f"{out.temperature}, {out.softening}.")
        clone = object.__new__(LearnedPolicy)
        clone.__dict__.update(self.__dict__)
        clone.output = out
        return clone

    # ---------------------------------------------------------------- artifacts
    def save(self, path: str | Path, trained_with: Mapping[str, str] | None = None) -> Path:
        """Write the artifact folder (config.json, policy/critic safetensors, manifest.json).

        `trained_with` names the artifacts training used (e.g. the sha256 of the dynamics
        ensemble's manifest); it is kept in `training.json` for the audit trail.
        """
        tensors = {"policy": self.network.state_dict()}
        if self.critic is not None:
            tensors["critic"] = self.critic.state_dict()
        config = {
            "name": self.name, "algo": self.algo, "head": self.head, "network": self.network_spec,
            "critic_network": self.critic_spec, "normalizer": self.normalizer.to_dict(),
            "feature_names": list(self.feature_names),
            "action_space": self.action_space.model_dump(mode="json"),
            "constraint": dataclasses.asdict(self.constraint), "tau": self.tau,
            "output": dataclasses.asdict(self.output), "algo_config": self.config,
        }
        save_artifact(path, kind=POLICY_KIND, config=config, tensors=tensors,
                      extras={"training": {"history": self.history, "trained_with": dict(trained_with or {})}},
                      cohort_manifest_hash=self.cohort_manifest_hash, seed=self.seed,
                      metadata={"algo": self.algo})
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, behavior: Any = None) -> LearnedPolicy:
        """Verify every sha256, rebuild the networks and load their weights; refuse tampered files."""
        art = load_artifact(path, expected_kind=POLICY_KIND)
        c = art.config
        try:
            network = build_network(c["network"])
            network.load_state_dict(art.tensors["policy"], strict=True)
            critic = None
            if c.get("critic_network") is not None:
                critic = build_network(c["critic_network"])
                critic.load_state_dict(art.tensors["critic"], strict=True)
            return cls(name=c["name"], algo=c["algo"], head=c["head"], network=network,
                       network_spec=c["network"], normalizer=normalizer_from_dict(c["normalizer"]),
                       feature_names=tuple(c["feature_names"]),
                       action_space=ActionSpaceInfo.model_validate(c["action_space"]),
                       constraint=ConstraintConfig(**c["constraint"]), tau=float(c["tau"]),
                       output=OutputSettings(**c["output"]), behavior=behavior, critic=critic,
                       critic_spec=c.get("critic_network"), config=c.get("algo_config"),
                       cohort_manifest_hash=art.manifest.cohort_manifest_hash, seed=art.manifest.seed,
                       history=art.extras.get("training", {}).get("history"))
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            if isinstance(exc, InputError):
                raise
            raise ArtifactError(f"policy artifact {path}: config and weights do not fit together "
                                f"({exc.__class__.__name__}); re-create it with `clinical-mborl train policy`.") from exc
