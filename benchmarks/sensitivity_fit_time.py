"""Time one plain FQE fit, one sensitivity bound and four bounds trained together (one core).

Study-sized random data: 7,000 rows, 40 features, 25 actions, 19 iterations of one epoch.
Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sensitivity_fit_time.py
"""

import time

import numpy as np
import torch

from clinical_mborl.ope.fqe import FQEConfig, FQEData, fit_fqe
from clinical_mborl.ope.sensitivity import fit_sensitivity_bounds, fit_sensitivity_fqe

torch.set_num_threads(1)
rng = np.random.default_rng(0)
n, f, A = 7000, 40, 25
x = rng.normal(size=(n, f)).astype(np.float32)
pi = rng.dirichlet(np.ones(A), size=n)
d = FQEData(features=x, actions=rng.integers(0, A, n), rewards=rng.choice([-1.0, 0.0, 1.0], n), end=rng.random(n) < 0.1,
            next_features=x, next_policy=pi, patient=np.arange(n) // 18, behavior_prob=rng.uniform(0.05, 1, n))
cfg = FQEConfig(epochs_per_iteration=1)


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


print("plain FQE", seconds(lambda: fit_fqe(d, A, 0.99, 18, cfg)))
b = [(1.1, "lower"), (1.1, "upper"), (1.25, "lower"), (1.25, "upper")]
print("four bounds, one network", seconds(lambda: fit_sensitivity_bounds(d, A, 0.99, 18, b, cfg)))
print("one bound", seconds(lambda: fit_sensitivity_fqe(d, A, 0.99, 18, 1.1, "lower", cfg)))
