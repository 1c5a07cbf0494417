"""Ground truth of each candidate: its value in the simulator's closed loop, computed ONCE.

What is evaluated is exactly what the OPE estimates:

- the policy the estimators evaluate is the softened one, pi' = (1 - eps) pi_e + eps pi_b
  (`OPEConfig.soften_epsilon`), so the closed loop runs `SoftenedPolicy` with the same eps; its
  clinician component is the reference clinician model (each replicate's estimate pi_b differs
  from it by estimation error, which enters only through the eps share);
- the clinician's truth is the simulated clinician itself (`UsualCare`), whose on-policy mean
  the estimators target for the clinician;
- the population is the study cohort's: the closed loop and the study spec both keep short
  stays (no `min_stay_hours`) and have no readmissions; the closed loop applies the same age and
  required-feature criteria and the cohort's own return code.

`truth_episodes` episodes are run in chunks of `truth_chunk` with the SAME chunk seeds for every
candidate (common random numbers: the same simulated patients). The chunk means are pooled by
their included counts; the Monte Carlo SE of the value is sqrt(sum n_k^2 se_k^2) / sum n_k. The
SE of a difference between two candidates comes from their paired chunk means
(`paired_difference`), which keeps the common random numbers' correlation; truths cached with
fewer chunk means fall back to the conservative sqrt(se_1^2 + se_2^2). Each chunk's result is
cached too (`truth_chunks.json`, by candidate, seed index and episodes), so a longer truth computes
only the chunks a shorter one did not run, and an interrupted run keeps the chunks it finished.

>>> pool_chunks("x", "x", 0.01, "softened", [{"value": 0.5, "se": 0.02, "included": 100, "deaths": 20},
...                                           {"value": 0.3, "se": 0.02, "included": 100, "deaths": 30}]).value
0.4
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field

from clinical_mborl.core.io import atomic_write_json, sha256_file, sha256_json
from clinical_mborl.core.models import StrictModel
from clinical_mborl.simulators.sepsis.ground_truth import Z95, evaluate_in_closed_loop
from clinical_mborl.studies.candidates import resolve_kind, truth_policy
from clinical_mborl.studies.config import TRUTH_STREAM, StudyConfig, derive_seed
from clinical_mborl.studies.parallel import iter_tasks, state

TRUTHS_FILE = "truths.json"
CHUNKS_FILE = "truth_chunks.json"


class TruthRecord(StrictModel):
    """A candidate's true value (discounted return) and mortality in the closed loop."""

    candidate: str
    policy_name: str
    evaluated: str = Field(description="What ran in the closed loop (softened policy or simulated clinician).")
    soften_epsilon: float
    value: float
    mc_se: float = Field(description="Monte Carlo standard error of `value`.")
    value_ci_low: float
    value_ci_high: float
    mortality: float
    episodes: int
    included: int = Field(description="Episodes meeting the cohort criteria (the population counted).")
    chunks: int
    seconds: float
    key: str
    chunk_values: list[float] = Field(default_factory=list, description="Each chunk's mean (the same simulated "
                                      "patients for every candidate), for paired Monte Carlo errors; empty in "
                                      "truths cached before they were kept.")
    chunk_included: list[int] = Field(default_factory=list, description="Each chunk's included episodes.")


def truth_key(candidate: str, config: StudyConfig, reference_fingerprint: str) -> str:
    """Cache key: what determines the candidate's truth."""
    return sha256_json({**_closed_loop(candidate, config, reference_fingerprint),
                        "episodes": config.truth_episodes, "chunk": config.truth_chunk})


def chunk_key(candidate: str, config: StudyConfig, reference_fingerprint: str, index: int, episodes: int) -> str:
    """Cache key of one chunk: the candidate's closed loop, the chunk's seed index and its episodes."""
    return sha256_json({**_closed_loop(candidate, config, reference_fingerprint), "index": index,
                        "chunk_episodes": episodes})


def _closed_loop(candidate: str, config: StudyConfig, reference_fingerprint: str) -> dict[str, Any]:
    extra = sha256_file(candidate) if resolve_kind(candidate) == "yaml" else None
    key = {"candidate": candidate, "file": extra, "eps": config.ope.soften_epsilon, "seed": config.seed,
           "reference": reference_fingerprint}
    if candidate == "clinician" and config.usual_care == "markov":
        key["clinician"] = "reference clinician model"  # not usual care: another truth, same cache
    return key


def chunk_sizes(config: StudyConfig) -> list[int]:
    """Episodes per closed-loop run; they add up to `truth_episodes`."""
    n, size = config.truth_episodes, config.truth_chunk
    return [size] * (n // size) + ([n % size] if n % size else [])


def truth_chunk_task(task: tuple[str, int, int]) -> dict[str, Any]:
    """Worker: run one chunk of candidate `task[0]` (chunk index, episodes) in the closed loop."""
    name, index, n_episodes = task
    config: StudyConfig = state("config")
    ref = state("reference")
    eps = config.ope.soften_epsilon
    policy = None if name == "clinician" else ref.candidate(name, tuple(ref.manifest.feature_names),
                                                            ref.manifest.action_space)
    started = time.perf_counter()
    acting = truth_policy(name, policy, ref.behavior, eps, clinician_acts=config.usual_care == "markov")
    result = evaluate_in_closed_loop(acting, ref.spec, ref.manifest,
                                     n_episodes=n_episodes, seed=derive_seed(config.seed, TRUTH_STREAM, index),
                                     config=config.simulator_settings(ref.spec.time.step_hours))
    se = (result.value_ci_high - result.value_ci_low) / (2 * Z95)
    return {"value": result.value, "se": se, "included": result.included, "policy_name": result.policy,
            "deaths": int(round(result.mortality * result.included)), "seconds": time.perf_counter() - started}


def pool_chunks(candidate: str, policy_name: str, eps: float, evaluated: str, chunks: list[dict[str, Any]],
                key: str = "") -> TruthRecord:
    """Pool chunk means (weighted by included episodes) into one `TruthRecord`."""
    n = sum(c["included"] for c in chunks)
    value = sum(c["value"] * c["included"] for c in chunks) / n
    se = math.sqrt(sum((c["included"] * c["se"]) ** 2 for c in chunks)) / n
    return TruthRecord(
        candidate=candidate, policy_name=policy_name, evaluated=evaluated, soften_epsilon=eps,
        value=value, mc_se=se, value_ci_low=value - Z95 * se, value_ci_high=value + Z95 * se,
        mortality=sum(c["deaths"] for c in chunks) / n, episodes=sum(c.get("episodes", 0) for c in chunks),
        included=n, chunks=len(chunks), seconds=sum(c.get("seconds", 0.0) for c in chunks), key=key,
        chunk_values=[float(c["value"]) for c in chunks], chunk_included=[int(c["included"]) for c in chunks],
    )


MIN_PAIRED_CHUNKS = 10
"""Chunks both truths need before their difference's error is estimated from paired chunk means."""


def paired_difference(a: TruthRecord, b: TruthRecord) -> tuple[float, float]:
    """`a.value - b.value` and its Monte Carlo SE.

    Chunk k simulates the same patients for every candidate, so the chunk differences carry the
    common random numbers' correlation: SE^2 = K / (K - 1) * sum_k w_k^2 (d_k - d)^2 with w_k the
    chunk's share of the included episodes. With fewer than `MIN_PAIRED_CHUNKS` aligned chunks the
    conservative sqrt(se_a^2 + se_b^2) is returned (a variance from a handful of chunks is itself
    too uncertain).

    >>> t = lambda v: pool_chunks("x", "x", 0.0, "", [{"value": x, "se": 0.1, "included": 10, "deaths": 0}
    ...                                                for x in v])
    >>> d, se = paired_difference(t([0.5 + k / 100 for k in range(10)]), t([0.4 + k / 100 for k in range(10)]))
    >>> round(d, 6), round(se, 12)  # a constant difference in every chunk: no Monte Carlo error
    (0.1, 0.0)
    """
    diff = a.value - b.value
    k = len(a.chunk_values)
    if k < MIN_PAIRED_CHUNKS or len(b.chunk_values) != k:
        return diff, math.hypot(a.mc_se, b.mc_se)
    d = [x - y for x, y in zip(a.chunk_values, b.chunk_values, strict=True)]
    n = [(x + y) / 2 for x, y in zip(a.chunk_included, b.chunk_included, strict=True)]
    w = [x / sum(n) for x in n]
    mean = sum(wi * di for wi, di in zip(w, d, strict=True))
    var = k / (k - 1) * sum((wi * (di - mean)) ** 2 for wi, di in zip(w, d, strict=True))
    return diff, math.sqrt(var)


def describe(candidate: str, eps: float, usual_care: str = "hourly") -> str:
    """What the closed loop evaluates for `candidate`."""
    if candidate == "clinician" and usual_care == "markov":
        return ("the reference clinician model, the Markov policy that chose the doses in every data set, "
                "whose on-policy mean the estimators target")
    if candidate == "clinician":
        return "the simulated clinician (usual care), whose on-policy mean the estimators target"
    if eps > 0:
        return f"the candidate softened with eps={eps} toward the reference clinician model (as in OPE)"
    return "the candidate as is (no softening in OPE)"


def load_truths(ref_dir: str | Path) -> dict[str, TruthRecord]:
    """Cached truths by key."""
    path = Path(ref_dir) / TRUTHS_FILE
    if not path.is_file():
        return {}
    return {k: TruthRecord.model_validate(v) for k, v in json.loads(path.read_text()).items()}


def compute_truths(config: StudyConfig, ref_dir: str | Path, reference_fingerprint: str, jobs: int | None,
                   log: Callable[[str], None] = print) -> dict[str, TruthRecord]:
    """The truth of every candidate of `config` (cached in `ref_dir/truths.json`), by candidate."""
    cache = load_truths(ref_dir)
    keys = {c: truth_key(c, config, reference_fingerprint) for c in config.candidates}
    missing = [c for c in config.candidates if keys[c] not in cache]
    if missing:
        chunks_path = Path(ref_dir) / CHUNKS_FILE
        saved: dict[str, dict[str, Any]] = json.loads(chunks_path.read_text()) if chunks_path.is_file() else {}
        planned = {(c, k, n): chunk_key(c, config, reference_fingerprint, k, n)
                   for c in missing for k, n in enumerate(chunk_sizes(config))}
        tasks = [t for t, key in planned.items() if key not in saved]  # chunks of an earlier, shorter truth reused
        log(f"truth: {len(missing)} candidate(s) x {config.truth_episodes} closed-loop episodes "
            f"({len(planned) - len(tasks)} of {len(planned)} chunks cached)")
        for task, out in iter_tasks(truth_chunk_task, tasks, jobs, ref_dir, config.model_dump_json()):
            saved[planned[task]] = out
            atomic_write_json(chunks_path, saved)  # an interrupted run keeps the chunks it finished
        done: dict[str, list[dict[str, Any]]] = {c: [] for c in missing}
        for (name, index, n), key in sorted(planned.items()):  # chunk k: the same patients for every candidate
            done[name].append({**saved[key], "episodes": n, "index": index})
        eps = config.ope.soften_epsilon
        for c in missing:
            cache[keys[c]] = pool_chunks(c, done[c][0]["policy_name"], 0.0 if c == "clinician" else eps,
                                         describe(c, eps, config.usual_care), done[c], keys[c])
        atomic_write_json(Path(ref_dir) / TRUTHS_FILE, {k: v.model_dump(mode="json") for k, v in cache.items()})
    return {c: cache[keys[c]] for c in config.candidates}
