"""Worker pools: one torch thread per worker, and no worker outlives a killed parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from clinical_mborl.core.parallel import worker_pool

PARENT = textwrap.dedent("""
    import os, time
    from clinical_mborl.core.parallel import worker_pool

    if __name__ == "__main__":
        with worker_pool(1) as pool:
            print(pool.submit(os.getpid).result(), flush=True)
            pool.submit(time.sleep, 120)
            time.sleep(120)
""")


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def test_workers_run_one_torch_thread():
    with worker_pool(1) as pool:
        assert pool.submit(_torch_threads).result() == 1


def _running(pid: int) -> bool:
    """Alive and not a zombie (a re-parented child may stay a zombie where PID 1 does not reap)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in state


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_exit_when_their_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        assert _running(worker)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 15
        while _running(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _running(worker), "the worker kept running after its parent was killed"
    finally:
        parent.kill()
