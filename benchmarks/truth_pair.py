"""Settle the true order of two candidates: more closed-loop chunks for just the pair.

A coverage study's truths may leave two candidates' order open (the "True order within the
truths' Monte Carlo error" line of `coverage.md`). This script runs further chunks of the same
closed loop for the two of them only -- chunk indices after the cached truth's, so new simulated
patients, the same ones for both (common random numbers) -- and pools them with the cached
truth's chunk means into the paired difference and its Monte Carlo SE. Nothing is written to the
reference's truth cache; the result is printed (and saved with --out as JSON).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/truth_pair.py cql-kl bc --chunks 40 \
        --spec benchmarks/specs/sepsis_treatment_history.yaml --ref reference_history --truth-episodes 200000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from coverage_study import REFERENCE_DIR, study_config  # noqa: E402

from clinical_mborl.core.io import atomic_write_json  # noqa: E402
from clinical_mborl.studies.parallel import iter_tasks  # noqa: E402
from clinical_mborl.studies.reference import load_reference  # noqa: E402
from clinical_mborl.studies.truth import (  # noqa: E402
    load_truths,
    paired_difference,
    pool_chunks,
    truth_chunk_task,
    truth_key,
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("first", help="Candidate whose truth is higher in the cached estimate.")
    p.add_argument("second")
    p.add_argument("--chunks", type=int, default=40, help="Further chunks per candidate (truth_chunk episodes each).")
    p.add_argument("--arm", default="hourly", choices=sorted(REFERENCE_DIR))
    p.add_argument("--spec", help="The study's cohort spec (as given to pilot_study.py).")
    p.add_argument("--ref", help="Reference folder name under --work (default: the arm's).")
    p.add_argument("--truth-episodes", type=int, default=20000, help="Episodes of the cached truths to extend.")
    p.add_argument("--work", type=Path, default=Path("/tmp/clinical_mborl_studies"))
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", type=Path, help="Write the result as JSON here.")
    a = p.parse_args()
    config = study_config(1000, 1, 0, None, usual_care=a.arm).model_copy(update={"truth_episodes": a.truth_episodes})
    if a.spec:
        config = config.model_copy(update={"spec_path": a.spec})
    ref_dir = a.work / (a.ref or REFERENCE_DIR[a.arm])
    fingerprint = load_reference(ref_dir).fingerprint
    cached = load_truths(ref_dir)
    records = {c: cached[truth_key(c, config, fingerprint)] for c in (a.first, a.second)}
    start = records[a.first].chunks
    if records[a.second].chunks != start or len(records[a.first].chunk_values) != start:
        raise SystemExit("the cached truths of the pair need the same chunks, with their chunk means kept")
    tasks = [(c, start + k, config.truth_chunk) for c in (a.first, a.second) for k in range(a.chunks)]
    started = time.time()
    done: dict[str, list[dict]] = {a.first: [], a.second: []}
    for (name, index, n), out in iter_tasks(truth_chunk_task, tasks, a.jobs, ref_dir, config.model_dump_json()):
        done[name].append({**out, "episodes": n, "index": index})
    pooled = {}
    for c, rec in records.items():
        old = [{"value": v, "se": 0.0, "included": n, "deaths": 0, "index": i}
               for i, (v, n) in enumerate(zip(rec.chunk_values, rec.chunk_included, strict=True))]
        new = sorted(done[c], key=lambda x: x["index"])
        pooled[c] = pool_chunks(c, c, rec.soften_epsilon, rec.evaluated, old + new)
    rows = {}
    for label, recs in (("cached", records), ("new chunks only", {c: pool_chunks(c, c, 0.0, "", sorted(
            done[c], key=lambda x: x["index"])) for c in done}), ("pooled", pooled)):
        diff, se = paired_difference(recs[a.first], recs[a.second])
        rows[label] = {"chunks": recs[a.first].chunks, "difference": diff, "mc_se": se, "z": diff / se if se else None,
                       a.first: recs[a.first].value, a.second: recs[a.second].value}
        print(f"{label:16s} chunks {recs[a.first].chunks:3d}: {a.first} - {a.second} = {diff:+.4f} "
              f"(SE {se:.4f}, z {diff / se:+.2f}); {a.first} {recs[a.first].value:.4f}, {a.second} "
              f"{recs[a.second].value:.4f}")
    print(f"{len(tasks)} chunks in {time.time() - started:.0f} s")
    if a.out:
        atomic_write_json(a.out, {"pair": [a.first, a.second], "episodes_per_chunk": config.truth_chunk, **rows})


if __name__ == "__main__":
    main()
