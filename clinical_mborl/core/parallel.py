"""Worker processes with one torch thread each, for the stages that fan out (scoring, the pipeline).

Workers are started with ``spawn``: a forked child of a process whose torch has started its
thread pools can deadlock. They inherit one OpenMP/BLAS thread from the environment set while the
pool starts, and `worker_pool` limits torch to one thread in each. The serial paths of the callers
run under `one_torch_thread`, so a parallel run gives the same numbers as a serial one.

Each worker watches its parent and exits when the parent is gone (killed, say, by `kill PID` while
a long study runs), so no orphaned worker keeps a core busy with work nobody will collect.

With ``spawn`` the workers re-import the caller's ``__main__``: a script that fans out must guard
its entry point with ``if __name__ == "__main__":`` (the CLI does).

>>> with one_torch_thread():
...     import torch
...     torch.get_num_threads()
1
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@contextmanager
def single_threaded_children() -> Iterator[None]:
    """Processes spawned inside inherit one OpenMP/BLAS thread from their first import."""
    saved = {k: os.environ.get(k) for k in THREAD_VARS}
    os.environ.update({k: "1" for k in THREAD_VARS})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the block with torch limited to one intra-op thread (restored afterwards)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


PARENT_POLL_SECONDS = 1.0


def _exit_with_parent(parent_pid: int) -> None:
    """Poll the parent process id; when this process is re-parented, its parent is gone: exit."""
    while True:
        time.sleep(PARENT_POLL_SECONDS)
        if os.getppid() != parent_pid:
            os._exit(1)


def _start_worker(initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    import torch

    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid is not None:
        threading.Thread(target=_exit_with_parent, args=(parent.pid,), daemon=True,
                         name="exit-with-parent").start()

    torch.set_num_threads(1)
    if initializer is not None:
        initializer(*initargs)


@contextmanager
def worker_pool(jobs: int, initializer: Callable[..., None] | None = None,
                initargs: tuple[Any, ...] = ()) -> Iterator[ProcessPoolExecutor]:
    """A pool of `jobs` spawned single-threaded workers, each running `initializer(*initargs)` once."""
    ctx = multiprocessing.get_context("spawn")
    with single_threaded_children(), ProcessPoolExecutor(
            max_workers=jobs, mp_context=ctx, initializer=_start_worker, initargs=(initializer, initargs)) as pool:
        yield pool
