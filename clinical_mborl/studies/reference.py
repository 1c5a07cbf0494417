"""The study reference: the study cohort spec, a policy-training data set, its clinician model and
the learned candidates -- built ONCE and shared by every replicate (and by several studies).

`prepare_reference(config, ref_dir)`:
1. simulate `training_patients` stays (seed stream `TRAINING_STREAM`, no readmissions);
2. build the base spec's cohort on them to fit the dose-level edges (quantiles of the non-zero
   train doses), then derive the study spec (`study_spec`): those edges fixed, no minimum stay,
   unstratified train/test split with `test_share` evaluated;
3. build the study cohort on the same data, fit the reference clinician model, and train every
   learned candidate of `candidates.LEARNED` with `train_policy` (cheap settings);
4. write `ref_dir/reference.json` last (atomically), with the fingerprint of what determined it.

A folder with the same fingerprint is reused as is; one with another fingerprint is refused.
The truth of each candidate (`truth.py`) is cached beside it in `truths.json`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinical_mborl.behavior import ClinicianPolicy, fit_behavior
from clinical_mborl.cohort import ActionSpaceInfo, CohortManifest, TransitionSet
from clinical_mborl.cohort.build import build_cohort
from clinical_mborl.cohort.spec import CohortSpec, load_cohort_spec
from clinical_mborl.core.artifacts import verify_artifact
from clinical_mborl.core.errors import InputError
from clinical_mborl.core.io import atomic_directory, atomic_write_json, sha256_json
from clinical_mborl.core.policy import Policy
from clinical_mborl.policies import LearnedPolicy, default_config, train_policy
from clinical_mborl.simulators.sepsis import simulate_sepsis
from clinical_mborl.studies.candidates import LEARNED, build_candidate
from clinical_mborl.studies.config import (
    TRAINING_STREAM,
    StudyConfig,
    derive_seed,
)

REFERENCE_FILE = "reference.json"


def load_base_spec(path: str | Path) -> CohortSpec:
    """The discrete cohort spec a study starts from; InputError for one the study cannot use."""
    spec = load_cohort_spec(path)
    if spec.action_kind != "discrete":
        raise InputError(f"study: spec {path} has continuous doses; the studies need dose levels (importance "
                         "ratios over levels). Use cohorts/sepsis_fluids_vasopressors.yaml.")
    return spec


def study_spec(base: CohortSpec, edges: dict[str, list[float]], test_share: float) -> CohortSpec:
    """The base spec with fixed level edges, no minimum stay and an unstratified train/test split.

    >>> from clinical_mborl.cohort.toy import toy_spec
    >>> s = study_spec(toy_spec(), {"iv_fluid_ml": [100.0], "norepinephrine_ug_kg_min": [0.1]}, 0.5)
    >>> s.actions[0].binning, s.criteria.min_stay_hours, s.split.test, s.split.stratify_by
    ('edges', 0.0, 0.5, None)
    """
    raw: dict[str, Any] = base.model_dump(mode="json")
    for action in raw["actions"]:
        if action["name"] not in edges:
            raise InputError(f"study spec: no fitted level edges for action '{action['name']}'.")
        action.update(binning="edges", edges=list(edges[action["name"]]))
    raw["name"] = f"{base.name}_study"
    raw["criteria"]["min_stay_hours"] = 0.0
    raw["split"] = {"train": 1.0 - test_share, "val": 0.0, "test": test_share, "seed": base.split.seed,
                    "stratify_by": None}
    raw["assumptions"] = [*raw.get("assumptions", []), (
        "Study variant: dose-level edges fixed to those fitted on the policy-training data; no minimum stay "
        "(the closed-loop truth counts short stays); unstratified train/test split.")]
    try:
        return CohortSpec.model_validate(raw)
    except ValueError as exc:
        raise InputError(f"study spec: the fitted level edges are unusable ({exc}); simulate more "
                         "training patients (--training-patients).") from exc


def _edges(space: ActionSpaceInfo) -> dict[str, list[float]]:
    return {d.name: list(d.bin_edges or []) for d in space.dimensions}


@dataclass
class StudyReference:
    """Everything a replicate needs besides its own data: loaded by `load_reference`."""

    path: Path
    spec: CohortSpec
    manifest: CohortManifest
    behavior: ClinicianPolicy
    learned: dict[str, Policy]
    fingerprint: str

    def candidate(self, name: str, feature_names: tuple[str, ...], action_space: ActionSpaceInfo) -> Policy:
        """Candidate `name` (not the clinician) bound to a replicate cohort."""
        return build_candidate(name, feature_names, action_space, self.learned)


def load_reference(ref_dir: str | Path) -> StudyReference:
    """Load a prepared reference folder (artifacts are sha256-verified on load)."""
    path = Path(ref_dir)
    info_file = path / REFERENCE_FILE
    if not info_file.is_file():
        raise InputError(f"study reference {path}: no {REFERENCE_FILE}; run the study to prepare it.")
    info = json.loads(info_file.read_text())
    behavior = ClinicianPolicy.load(path / "behavior")
    learned: dict[str, Policy] = {name: LearnedPolicy.load(path / "policies" / name, behavior=behavior)
                                  for name in info["learned"]}
    manifest = TransitionSet.load(path / "cohort").manifest
    return StudyReference(path, CohortSpec.model_validate(info["study_spec"]), manifest, behavior, learned,
                          info["fingerprint"])


def reference_weights(ref_dir: str | Path) -> dict[str, str]:
    """A digest of each reference model's weights: the clinician model's and each learned candidate's
    (sha256 over the weight files' hashes in its artifact manifest, checked against the files first).

    The learned candidates' training is deterministic on one machine but not across CPU types (a reference
    rebuilt on another machine gave `bc` a true value 0.0009 away); two studies whose digests differ
    evaluated different policies, and their candidates' estimates are not paired."""
    path = Path(ref_dir)
    info = json.loads((path / REFERENCE_FILE).read_text())
    folders = {"clinician model": path / "behavior", **{name: path / "policies" / name for name in info["learned"]}}
    return {name: sha256_json({f: h for f, h in sorted(verify_artifact(folder).files.items())
                               if f.endswith(".safetensors")})
            for name, folder in folders.items()}


def prepare_reference(config: StudyConfig, ref_dir: str | Path, log: Any = print) -> StudyReference:
    """Build (or reuse) the reference folder for `config`; see the module text."""
    path = Path(ref_dir)
    base = load_base_spec(config.spec_path)
    fingerprint = config.reference_fingerprint(base.spec_hash())
    info_file = path / REFERENCE_FILE
    if info_file.is_file():
        ref = load_reference(path)
        if ref.fingerprint != fingerprint:
            raise InputError(f"study reference {path} was prepared with other settings (seed, spec, training "
                             "data or learners); pass another --reference folder or delete this one.")
        return ref
    seed = derive_seed(config.seed, TRAINING_STREAM)
    with atomic_directory(path) as tmp:
        log(f"reference: simulating {config.training_patients} policy-training patients")
        simulate_sepsis(config.training_patients, seed, tmp / "ehr", config=config.simulator_settings(base.time.step_hours))
        build_cohort(base, tmp / "ehr", tmp / "base_cohort", progress=False)
        spec = study_spec(base, _edges(TransitionSet.load(tmp / "base_cohort").manifest.action_space),
                          config.test_share)
        build_cohort(spec, tmp / "ehr", tmp / "cohort", progress=False)
        ts = TransitionSet.load(tmp / "cohort")
        log("reference: fitting the clinician model and training the learned candidates")
        behavior = fit_behavior(ts, config.reference_behavior.model_copy(update={"seed": seed}))
        behavior.save(tmp / "behavior")
        for k, (name, (algo, overrides)) in enumerate(sorted(LEARNED.items())):
            cfg = default_config(algo, n_updates=config.learner_updates, seed=seed + k, quiet=True, **overrides)
            policy = train_policy(algo, ts, behavior, None, cfg)
            policy.name = name
            policy.save(tmp / "policies" / name)
        shutil.rmtree(tmp / "ehr")
        shutil.rmtree(tmp / "base_cohort")
        atomic_write_json(tmp / REFERENCE_FILE, {
            "fingerprint": fingerprint, "study_spec": spec.model_dump(mode="json"),
            "learned": sorted(LEARNED), "training_patients": config.training_patients, "seed": seed,
            "base_spec": str(config.spec_path), "base_spec_hash": base.spec_hash(),
        })
    return load_reference(path)
