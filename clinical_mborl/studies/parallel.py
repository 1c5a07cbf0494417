"""Process-parallel execution of study tasks: one torch thread per worker, the reference loaded once.

Workers come from `core.parallel.worker_pool` (``spawn``, one OpenMP/torch thread each); each loads
the study reference and config in its initializer, and then runs module-level task functions.
`jobs == 1` runs everything in this process (tests, debugging) with the same code path.
With ``spawn`` the workers re-import the caller's ``__main__``: a script that runs a study with
``jobs > 1`` must guard its entry point with ``if __name__ == "__main__":`` (the CLI does).

>>> run_tasks(_square, [1, 2, 3], jobs=1, ref_dir=None, config_json="{}")
[1, 4, 9]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path
from typing import Any, TypeVar

from clinical_mborl.core.parallel import worker_pool

T = TypeVar("T")
R = TypeVar("R")

_STATE: dict[str, Any] = {}


def init_worker(ref_dir: str | None, config_json: str) -> None:
    """Limit torch to one thread and load the study reference and config once per process."""
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from clinical_mborl.studies.config import StudyConfig

    _STATE.clear()
    _STATE["config"] = StudyConfig.model_validate_json(config_json) if config_json != "{}" else None
    if ref_dir is not None:
        from clinical_mborl.studies.reference import load_reference

        _STATE["reference"] = load_reference(ref_dir)


def state(key: str) -> Any:
    """The worker's loaded `config` or `reference`."""
    return _STATE[key]


def default_jobs() -> int:
    """One worker per CPU core."""
    return max(1, os.cpu_count() or 1)


def iter_tasks(fn: Callable[[T], R], tasks: Iterable[T], jobs: int | None, ref_dir: str | Path | None,
               config_json: str) -> Iterator[tuple[T, R]]:
    """Yield (task, result) as tasks finish; `fn` must be a module-level function."""
    items = list(tasks)
    jobs = default_jobs() if jobs is None else jobs
    ref = None if ref_dir is None else str(ref_dir)
    if jobs <= 1 or len(items) <= 1:
        saved = dict(_STATE)
        init_worker(ref, config_json)
        try:
            for item in items:
                yield item, fn(item)
        finally:
            _STATE.clear()
            _STATE.update(saved)
        return
    with worker_pool(min(jobs, len(items)), init_worker, (ref, config_json)) as pool:
        pending: dict[Future[R], T] = {pool.submit(fn, item): item for item in items}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                item = pending.pop(fut)
                yield item, fut.result()


def run_tasks(fn: Callable[[T], R], tasks: Iterable[T], jobs: int | None, ref_dir: str | Path | None,
              config_json: str) -> list[R]:
    """`fn` over `tasks` (in parallel), results in task order."""
    items = [(i, fn, item) for i, item in enumerate(tasks)]
    out: dict[int, R] = {}
    for (i, _, _), result in iter_tasks(_apply, items, jobs, ref_dir, config_json):
        out[i] = result
    return [out[i] for i in range(len(items))]


def _apply(task: tuple[int, Callable[[Any], R], Any]) -> R:
    return task[1](task[2])


def _square(x: int) -> int:
    return x * x
