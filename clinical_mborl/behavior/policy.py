"""`ClinicianPolicy`: the cross-fitted, calibrated estimate of the clinicians' dosing policy.

It speaks the `Policy` protocol (clinical-unit states in, normalised internally with the cohort
`Normalizer`), offers `predict_proba_normalised` to learners working in normalised space, and
keeps the out-of-fold probabilities of the rows it was fitted on.

For states it was not fitted on (val/test rows, model rollouts) it averages the K calibrated fold
models (a mixture for continuous doses); for its own fit rows use the out-of-fold values.

>>> from clinical_mborl.cohort.toy import make_toy_transitions
>>> from clinical_mborl.behavior import BehaviorConfig, fit_behavior
>>> ts = make_toy_transitions(40, seed=0)
>>> pi_b = fit_behavior(ts, BehaviorConfig(n_folds=2, hidden_sizes=(), max_epochs=2))
>>> pi_b.action_probabilities(ts.frame.select(ts.feature_names).to_numpy()).shape[1]
9
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from clinical_mborl.behavior.config import BehaviorConfig
from clinical_mborl.behavior.models import (
    ContinuousBehaviorNet,
    DiscreteBehaviorNet,
    zero_inflated_log_density,
)
from clinical_mborl.cohort import ActionSpaceInfo, Normalizer, StateFeatureInfo, TransitionSet
from clinical_mborl.core.artifacts import load_artifact, save_artifact
from clinical_mborl.core.errors import InputError
from clinical_mborl.core.io import sha256_bytes

ARTIFACT_KIND = "behavior_policy"
ArrayOrTensor = np.ndarray | Tensor


def rows_fingerprint(transitions: TransitionSet) -> str:
    """sha256 of the (stay_id, step) sequence: identifies the rows and their order."""
    return sha256_bytes(transitions.frame.select("stay_id", "step").write_csv().encode())


class ClinicianPolicy:
    """The estimated clinician policy pi_b(a | s) (discrete) or pi_b(dose | s) (continuous).

    Attributes:
        name: "clinician".
        action_kind: "discrete" or "continuous".
        feature_names: state columns expected, in order.
        out_of_fold_proba: [n_fit_rows, A] cross-fitted probabilities (discrete; None otherwise),
            rows in the order of `transitions.split(*config.fit_splits).frame`.
        out_of_fold_log_density: [n_fit_rows] cross-fitted log pi_b of the logged action.
        calibration: held-out calibration metrics (`fit_behavior` fills it).
    """

    name = "clinician"

    def __init__(
        self,
        *,
        config: BehaviorConfig,
        state_features: list[StateFeatureInfo],
        action_space: ActionSpaceInfo,
        folds: list[torch.nn.Module],
        temperatures: Tensor,
        std_scales: Tensor | None,
        out_of_fold_log_density: np.ndarray,
        out_of_fold_proba: np.ndarray | None,
        fit_rows_sha256: str,
        cohort_manifest_hash: str,
        calibration: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.state_features = list(state_features)
        self.normalizer = Normalizer(self.state_features)
        self.feature_names: tuple[str, ...] = tuple(f.name for f in self.state_features)
        self.action_space = action_space
        self.action_kind: Literal["discrete", "continuous"] = action_space.kind
        self.folds = folds
        self.temperatures = temperatures  # discrete: [K]; continuous: [K, k]
        self.std_scales = std_scales  # continuous: [K, k]
        self.out_of_fold_log_density = out_of_fold_log_density
        self.out_of_fold_proba = out_of_fold_proba
        self.fit_rows_sha256 = fit_rows_sha256
        self.cohort_manifest_hash = cohort_manifest_hash
        self.calibration: dict[str, Any] = calibration or {}
        self.device = torch.device("cpu")

    # ----------------------------------------------------------------- core maths (torch)
    @property
    def n_folds(self) -> int:
        return len(self.folds)

    def fold_proba(self, x: Tensor, fold: int) -> Tensor:
        """Calibrated probabilities of one fold model, [n, A] (discrete)."""
        return torch.softmax(self.folds[fold](x) / self.temperatures[fold], dim=-1)

    def fold_params(self, x: Tensor, fold: int) -> tuple[Tensor, Tensor, Tensor]:
        """Calibrated (zero-logit, log-dose mean, log-dose std) of one fold model (continuous)."""
        assert self.std_scales is not None
        logit, mu, sigma = self.folds[fold](x)
        return logit / self.temperatures[fold], mu, sigma * self.std_scales[fold]

    def _proba_tensor(self, x: Tensor) -> Tensor:
        self._require("discrete", "action probabilities")
        with torch.no_grad():
            return torch.stack([self.fold_proba(x, k) for k in range(self.n_folds)]).mean(0)

    def _log_density_tensor(self, x: Tensor, doses: Tensor) -> Tensor:
        self._require("continuous", "log densities")
        with torch.no_grad():
            per_fold = torch.stack(
                [zero_inflated_log_density(*self.fold_params(x, k), doses) for k in range(self.n_folds)]
            )
            return torch.logsumexp(per_fold, dim=0) - float(np.log(self.n_folds))

    def _require(self, kind: str, what: str) -> None:
        if self.action_kind != kind:
            raise TypeError(f"{what} need a {kind} behaviour policy; this one is {self.action_kind}")

    def _as_tensor(self, x: ArrayOrTensor) -> Tensor:
        return torch.as_tensor(np.asarray(x, dtype=np.float32)) if isinstance(x, np.ndarray) else x

    def _normalise(self, states: np.ndarray) -> Tensor:
        states = np.asarray(states, dtype=np.float64)
        if states.ndim != 2 or states.shape[1] != len(self.feature_names):
            raise InputError(
                f"states: expected shape [n, {len(self.feature_names)}] in the order {list(self.feature_names)}, "
                f"got {list(states.shape)}"
            )
        return torch.as_tensor(self.normalizer.transform(states), device=self.device)

    # ----------------------------------------------------------------- normalised-space API
    def predict_proba_normalised(self, states_norm: ArrayOrTensor) -> ArrayOrTensor:
        """pi_b(. | s) for normalised states [n, d] -> [n, A]; returns the input's type and device."""
        x = self._as_tensor(states_norm)
        p = self._proba_tensor(x.to(self.device, torch.float32)).to(x.device)
        return p.numpy().astype(np.float64) if isinstance(states_norm, np.ndarray) else p

    def log_density_normalised(self, states_norm: ArrayOrTensor, doses: ArrayOrTensor) -> ArrayOrTensor:
        """log pi_b(doses | s) for normalised states (continuous); doses in clinical units."""
        x = self._as_tensor(states_norm)
        d = self._as_tensor(doses).to(self.device, torch.float32)
        ld = self._log_density_tensor(x.to(self.device, torch.float32), d).to(x.device)
        return ld.numpy().astype(np.float64) if isinstance(states_norm, np.ndarray) else ld

    # ----------------------------------------------------------------- Policy protocol
    def action_probabilities(self, states: np.ndarray) -> np.ndarray:
        """[n, A] probabilities of each joint dose level for clinical-unit states (discrete)."""
        self._require("discrete", "action probabilities")
        p = self._proba_tensor(self._normalise(states)).cpu().numpy().astype(np.float64)
        return p / p.sum(axis=1, keepdims=True)

    def log_density(self, states: np.ndarray, doses: np.ndarray) -> np.ndarray:
        """log pi_b(doses | s), [n], clinical-unit states and doses (continuous)."""
        self._require("continuous", "log densities")
        d = torch.as_tensor(np.asarray(doses, dtype=np.float32), device=self.device)
        return self._log_density_tensor(self._normalise(states), d).cpu().numpy().astype(np.float64)

    def sample_actions(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Discrete: int [n] joint levels. Continuous: doses [n, k] from a random fold per row."""
        x = self._normalise(states)
        n = x.shape[0]
        if self.action_kind == "discrete":
            cdf = np.cumsum(self._proba_tensor(x).cpu().numpy().astype(np.float64), axis=1)
            u = rng.random(n)[:, None] * cdf[:, -1:]
            return np.minimum((cdf < u).sum(axis=1), cdf.shape[1] - 1).astype(np.int64)
        with torch.no_grad():
            params = [torch.stack(p).cpu().numpy() for p in zip(*(self.fold_params(x, k) for k in range(self.n_folds)), strict=True)]
        logit, mu, sigma = (p.astype(np.float64) for p in params)  # each [K, n, k]
        fold = rng.integers(0, self.n_folds, size=n)
        rows = np.arange(n)
        logit, mu, sigma = logit[fold, rows], mu[fold, rows], sigma[fold, rows]
        treated = rng.random(logit.shape) < 1.0 / (1.0 + np.exp(-logit))
        dose = np.exp(mu + sigma * rng.standard_normal(mu.shape))
        return np.where(treated, dose, 0.0)

    # ----------------------------------------------------------------- data rows
    def out_of_fold_proba_for(self, transitions: TransitionSet) -> np.ndarray:
        """Out-of-fold probabilities for `transitions`' fit rows, after checking they are the same rows.

        Pass the cohort the policy was fitted on (whole, or already split to the fit splits).
        """
        self._require("discrete", "out-of-fold probabilities")
        self._check_rows(transitions)
        assert self.out_of_fold_proba is not None
        return self.out_of_fold_proba

    def _check_rows(self, transitions: TransitionSet) -> None:
        fit_rows = transitions.split(*self.config.fit_splits)
        if rows_fingerprint(fit_rows) != self.fit_rows_sha256:
            raise InputError(
                "behaviour policy: the given transitions' fit rows differ from the rows it was fitted on "
                f"(splits {list(self.config.fit_splits)}); expected the same cohort. Refit with "
                "`clinical-mborl train behavior` on this cohort."
            )

    def to(self, device: str | torch.device) -> ClinicianPolicy:
        """Move the fold models (in place) and return self."""
        self.device = torch.device(device)
        for net in self.folds:
            net.to(self.device)
        self.temperatures = self.temperatures.to(self.device)
        if self.std_scales is not None:
            self.std_scales = self.std_scales.to(self.device)
        return self

    # ----------------------------------------------------------------- artifact
    def save(self, path: str | Path) -> None:
        """Write the artifact folder (safetensors weights + sha256 manifest)."""
        weights = {f"fold{k}.{name}": t for k, net in enumerate(self.folds) for name, t in net.state_dict().items()}
        calib = {"temperatures": self.temperatures}
        if self.std_scales is not None:
            calib["std_scales"] = self.std_scales
        oof = {"log_density": torch.as_tensor(self.out_of_fold_log_density)}
        if self.out_of_fold_proba is not None:
            oof["proba"] = torch.as_tensor(self.out_of_fold_proba)
        config = {
            "behavior_config": self.config.model_dump(mode="json"),
            "state_features": [f.model_dump(mode="json") for f in self.state_features],
            "normalizer": self.normalizer.to_dict(),
            "action_space": self.action_space.model_dump(mode="json"),
            "feature_names": list(self.feature_names),
            "n_folds": self.n_folds,
            "fit_rows_sha256": self.fit_rows_sha256,
        }
        save_artifact(
            path, kind=ARTIFACT_KIND, config=config,
            tensors={"weights": weights, "calibration_params": calib, "out_of_fold": oof},
            extras={"calibration": self.calibration},
            cohort_manifest_hash=self.cohort_manifest_hash, seed=self.config.seed,
        )

    @classmethod
    def load(cls, path: str | Path) -> ClinicianPolicy:
        """Read an artifact folder; refuses a tampered or foreign folder (ArtifactError)."""
        art = load_artifact(path, expected_kind=ARTIFACT_KIND)
        cfg = BehaviorConfig.model_validate(art.config["behavior_config"])
        feats = [StateFeatureInfo.model_validate(f) for f in art.config["state_features"]]
        space = ActionSpaceInfo.model_validate(art.config["action_space"])
        folds = [make_fold_net(cfg, len(feats), space) for _ in range(int(art.config["n_folds"]))]
        w = art.tensors["weights"]
        for k, net in enumerate(folds):
            prefix = f"fold{k}."
            net.load_state_dict({n.removeprefix(prefix): t for n, t in w.items() if n.startswith(prefix)})
            net.eval()
        oof = art.tensors["out_of_fold"]
        calib = art.tensors["calibration_params"]
        return cls(
            config=cfg, state_features=feats, action_space=space, folds=folds,
            temperatures=calib["temperatures"], std_scales=calib.get("std_scales"),
            out_of_fold_log_density=oof["log_density"].numpy(),
            out_of_fold_proba=oof["proba"].numpy() if "proba" in oof else None,
            fit_rows_sha256=art.config["fit_rows_sha256"],
            cohort_manifest_hash=art.manifest.cohort_manifest_hash or "",
            calibration=art.extras.get("calibration", {}),
        )


def make_fold_net(config: BehaviorConfig, n_features: int, space: ActionSpaceInfo) -> torch.nn.Module:
    """An untrained fold network of the right kind and shape."""
    if space.kind == "discrete":
        return DiscreteBehaviorNet(n_features, space.n_actions, config.hidden_sizes)
    return ContinuousBehaviorNet(n_features, len(space.dimensions), config.hidden_sizes, config.min_std)

