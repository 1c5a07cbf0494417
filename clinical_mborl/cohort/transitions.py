"""`TransitionSet`: the cohort output every later stage reads (CONTRACTS.md §3).

>>> ts = TransitionSet.load("demo_out/cohort")  # doctest: +SKIP
>>> batch = ts.split("train").arrays()           # doctest: +SKIP
>>> batch.states.shape                           # doctest: +SKIP
(12345, 31)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl

from clinical_mborl.cohort.manifest import CohortManifest
from clinical_mborl.cohort.normalize import Normalizer
from clinical_mborl.core.errors import InputError
from clinical_mborl.core.io import sha256_file

TRANSITIONS_FILE = "transitions.parquet"
MANIFEST_FILE = "manifest.json"
NEXT_PREFIX = "next_"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class TransitionArrays:
    """Flat per-transition arrays (row order of the frame: stay, then step)."""

    states: np.ndarray  # [n, d] float32
    next_states: np.ndarray  # [n, d] float32
    actions: np.ndarray  # [n] int64 (discrete) or [n, k] float32 doses (continuous)
    doses: np.ndarray  # [n, k] float64, clinical units
    rewards: np.ndarray  # [n] float32
    done: np.ndarray  # [n] bool: death or discharge
    truncated: np.ndarray  # [n] bool: window end
    died: np.ndarray  # [n] bool: this transition ends the stay by death (done & died)
    reward_intermediate: np.ndarray  # [n] float32: reward minus its outcome part
    episode: np.ndarray  # [n] int64: 0..n_episodes-1, one per stay
    patient: np.ndarray  # [n] int64: 0..n_patients-1
    step: np.ndarray  # [n] int64

    def __len__(self) -> int:
        return int(self.states.shape[0])

    @property
    def end(self) -> np.ndarray:
        """No bootstrapping past this transition (terminal or window end)."""
        return self.done | self.truncated


@dataclass(frozen=True)
class EpisodeArrays:
    """Episodes padded to the longest, for trajectory-wise estimators.

    `mask[i, t]` is True where step t of episode i exists. Padded entries are zero.
    """

    states: np.ndarray  # [E, T, d]
    actions: np.ndarray  # [E, T] int64 or [E, T, k]
    doses: np.ndarray  # [E, T, k]
    rewards: np.ndarray  # [E, T]
    mask: np.ndarray  # [E, T] bool
    done: np.ndarray  # [E] bool: the episode ended by death/discharge (else truncated)
    patient: np.ndarray  # [E] int64
    lengths: np.ndarray  # [E] int64

    @property
    def n_episodes(self) -> int:
        return int(self.mask.shape[0])


class TransitionSet:
    """A cohort's transitions plus the manifest that describes them."""

    def __init__(self, frame: pl.DataFrame, manifest: CohortManifest) -> None:
        self.frame = frame
        self.manifest = manifest
        missing = [c for c in self.required_columns if c not in frame.columns]
        if missing:
            raise InputError(
                f"transitions: missing columns {missing}; expected the output of `clinical-mborl cohort build`."
            )

    # ----------------------------------------------------------------- loading
    @classmethod
    def load(cls, path: str | Path) -> TransitionSet:
        """Read `transitions.parquet` and `manifest.json`; refuse if the parquet hash differs."""
        path = Path(path)
        mpath, tpath = path / MANIFEST_FILE, path / TRANSITIONS_FILE
        if not mpath.is_file() or not tpath.is_file():
            raise InputError(
                f"cohort {path}: expected {TRANSITIONS_FILE} and {MANIFEST_FILE}; run `clinical-mborl cohort build` first."
            )
        manifest = CohortManifest.model_validate_json(mpath.read_text())
        digest = sha256_file(tpath)
        if digest != manifest.transitions_sha256:
            raise InputError(
                f"cohort {path}: {TRANSITIONS_FILE} does not match the sha256 in {MANIFEST_FILE}; "
                "it changed after it was built. Rebuild the cohort."
            )
        return cls(pl.read_parquet(tpath), manifest)

    # ----------------------------------------------------------------- names
    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.manifest.feature_names

    @property
    def next_feature_names(self) -> tuple[str, ...]:
        return tuple(NEXT_PREFIX + n for n in self.feature_names)

    @property
    def dose_columns(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.manifest.action_space.dimensions)

    @property
    def required_columns(self) -> list[str]:
        base = ["stay_id", "patient_key", "step", "split", "reward", "reward_intermediate",
                "done", "truncated", "died"]
        if self.manifest.action_space.kind == "discrete":
            base.append("action")
        return base + list(self.feature_names) + list(self.next_feature_names) + list(self.dose_columns)

    @cached_property
    def normalizer(self) -> Normalizer:
        return Normalizer(self.manifest.state_features)

    @property
    def manifest_hash(self) -> str:
        return self.manifest.manifest_hash()

    @property
    def n_actions(self) -> int:
        return self.manifest.action_space.n_actions

    def __len__(self) -> int:
        return self.frame.height

    # ----------------------------------------------------------------- views
    def split(self, *names: str) -> TransitionSet:
        unknown = [n for n in names if n not in SPLITS]
        if unknown:
            raise InputError(f"unknown split(s) {unknown}; expected some of {SPLITS}")
        return TransitionSet(self.frame.filter(pl.col("split").is_in(list(names))), self.manifest)

    def arrays(self, normalised: bool = True) -> TransitionArrays:
        f = self.frame
        states = f.select(self.feature_names).to_numpy().astype(np.float64)
        nxt = f.select(self.next_feature_names).to_numpy().astype(np.float64)
        if normalised:
            states, nxt = self.normalizer.transform(states), self.normalizer.transform(nxt)
        doses = f.select(self.dose_columns).to_numpy().astype(np.float64)
        if self.manifest.action_space.kind == "discrete":
            actions = f["action"].to_numpy().astype(np.int64)
        else:
            actions = doses.astype(np.float32)
        episode = f["stay_id"].rank("dense").to_numpy().astype(np.int64) - 1
        patient = f["patient_key"].rank("dense").to_numpy().astype(np.int64) - 1
        return TransitionArrays(
            states=np.asarray(states, dtype=np.float32),
            next_states=np.asarray(nxt, dtype=np.float32),
            actions=actions,
            doses=doses,
            rewards=f["reward"].to_numpy().astype(np.float32),
            done=f["done"].to_numpy().astype(bool),
            truncated=f["truncated"].to_numpy().astype(bool),
            died=f["died"].to_numpy().astype(bool),
            reward_intermediate=f["reward_intermediate"].to_numpy().astype(np.float32),
            episode=episode,
            patient=patient,
            step=f["step"].to_numpy().astype(np.int64),
        )

    def episodes(self, normalised: bool = True) -> EpisodeArrays:
        a = self.arrays(normalised=normalised)
        n_ep = int(a.episode.max()) + 1 if len(a) else 0
        lengths = np.bincount(a.episode, minlength=n_ep).astype(np.int64)
        t_max = int(a.step.max()) + 1 if len(a) else 0
        d, k = a.states.shape[1], a.doses.shape[1]
        states = np.zeros((n_ep, t_max, d), dtype=np.float32)
        doses = np.zeros((n_ep, t_max, k), dtype=np.float64)
        rewards = np.zeros((n_ep, t_max), dtype=np.float64)
        mask = np.zeros((n_ep, t_max), dtype=bool)
        if a.actions.ndim == 1:
            actions = np.zeros((n_ep, t_max), dtype=np.int64)
        else:
            actions = np.zeros((n_ep, t_max, a.actions.shape[1]), dtype=np.float32)
        states[a.episode, a.step] = a.states
        doses[a.episode, a.step] = a.doses
        rewards[a.episode, a.step] = a.rewards
        actions[a.episode, a.step] = a.actions
        mask[a.episode, a.step] = True
        done = np.zeros(n_ep, dtype=bool)
        np.logical_or.at(done, a.episode, a.done)
        patient = np.zeros(n_ep, dtype=np.int64)
        patient[a.episode] = a.patient
        return EpisodeArrays(states, actions, doses, rewards, mask, done, patient, lengths)
