"""Ensemble training speed: one batched layer per depth vs an unvectorised per-member loop.

Both train the same network (7 members, 4 x 200 Swish by default; the loop copies the vectorised
weights, and the first outputs are checked equal) with the same loss (Gaussian NLL on state change
and reward, termination CE, outcome BCE) and one Adam step per batch. Samples/s counts transitions
(each seen by every member). A Lightning `fit_dynamics` run on a toy cohort gives end-to-end
throughput. Run: `python benchmarks/dynamics_speed.py [--device cuda]`.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from clinical_mborl.dynamics.network import N_TERM, EnsembleOutput, GaussianEnsemble
from clinical_mborl.dynamics.system import gaussian_nll


class LoopEnsemble(nn.Module):
    """The same ensemble as M separate `nn.Linear` MLPs, evaluated one member after another."""

    def __init__(self, net: GaussianEnsemble) -> None:
        super().__init__()
        self.members = nn.ModuleList()
        for m in range(net.n_members):
            layers = []
            for layer in [*net.hidden, net.head]:
                lin = nn.Linear(layer.weight.shape[1], layer.weight.shape[2])
                with torch.no_grad():
                    lin.weight.copy_(layer.weight[m].T)
                    lin.bias.copy_(layer.bias[m, 0])
                layers.append(lin)
            self.members.append(nn.ModuleList(layers))
        self.max_logvar = nn.Parameter(net.max_logvar.detach().clone())
        self.min_logvar = nn.Parameter(net.min_logvar.detach().clone())
        self.out_dim = net.out_dim

    def member(self, x: Tensor, m: int) -> EnsembleOutput:
        layers = self.members[m]
        for lin in layers[:-1]:
            x = F.silu(lin(x))
        h = layers[-1](x)
        d = self.out_dim
        logvar = self.max_logvar - F.softplus(self.max_logvar - h[:, d : 2 * d])
        logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
        return EnsembleOutput(h[:, :d], logvar, h[:, 2 * d : 2 * d + N_TERM], h[:, -1])


def _loss(out: EnsembleOutput, target: Tensor, term: Tensor, outcome: Tensor) -> Tensor:
    nll = gaussian_nll(out.mean, out.logvar, target).sum(-1).mean()
    ce = F.cross_entropy(out.term_logits.reshape(-1, N_TERM), term.repeat(out.term_logits.shape[0]))
    return nll + ce + F.binary_cross_entropy_with_logits(out.outcome_logit, outcome.expand_as(out.outcome_logit))


def _batches(n_steps: int, batch: int, in_dim: int, out_dim: int, device: torch.device) -> list[tuple[Tensor, ...]]:
    g = torch.Generator().manual_seed(0)
    return [
        (torch.randn(batch, in_dim, generator=g).to(device), torch.randn(batch, out_dim, generator=g).to(device),
         torch.randint(0, N_TERM, (batch,), generator=g).to(device), torch.rand(batch, generator=g).round().to(device))
        for _ in range(n_steps)
    ]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_vectorised(net: GaussianEnsemble, data: list[tuple[Tensor, ...]], device: torch.device) -> float:
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    _sync(device)
    start = time.perf_counter()
    for x, y, term, outcome in data:
        loss = _loss(net(x), y, term, outcome) * net.n_members  # sum over members, as in training
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return time.perf_counter() - start


def time_loop(loop: LoopEnsemble, data: list[tuple[Tensor, ...]], device: torch.device) -> float:
    opt = torch.optim.Adam(loop.parameters(), lr=1e-3)
    _sync(device)
    start = time.perf_counter()
    for x, y, term, outcome in data:
        loss = sum(_loss(EnsembleOutput(*(t.unsqueeze(0) for t in loop.member(x, m))), y, term, outcome)
                   for m in range(len(loop.members)))
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[union-attr]
        opt.step()
    _sync(device)
    return time.perf_counter() - start


def lightning_throughput(patients: int) -> tuple[float, int, float]:
    """End-to-end `fit_dynamics` (default architecture) on a toy cohort: rows/s over a fixed 5 epochs."""
    from clinical_mborl.cohort.toy import make_toy_transitions
    from clinical_mborl.dynamics import DynamicsConfig, fit_dynamics

    ts = make_toy_transitions(n_patients=patients, seed=0, n_steps=18)
    cfg = DynamicsConfig(max_epochs=5, patience=100)
    start = time.perf_counter()
    ens = fit_dynamics(ts, cfg, quiet=True)
    seconds = time.perf_counter() - start
    rows = ens.metrics["n_rows"]["model_train"] * ens.metrics["epochs_trained"]
    return rows / seconds, rows, seconds


def compare(members: int, hidden: tuple[int, ...], batch: int, in_dim: int, out_dim: int, steps: int,
            rounds: int, device: torch.device) -> tuple[float, float]:
    """Best-of-`rounds` seconds for `steps` training steps: (vectorised, per-member loop)."""
    torch.manual_seed(0)
    net = GaussianEnsemble(members, in_dim, out_dim, hidden).to(device)
    loop = LoopEnsemble(net).to(device)
    x = torch.randn(8, in_dim, device=device)
    with torch.no_grad():  # same network: identical outputs before training
        assert torch.allclose(net(x).mean[-1], loop.member(x, members - 1).mean, atol=1e-5), "networks differ"
    data = _batches(steps, batch, in_dim, out_dim, device)
    time_vectorised(net, data[:3], device), time_loop(loop, data[:3], device)  # warm-up
    # interleaved rounds, best of each: robust to other load on a shared machine
    timings = [(time_vectorised(net, data, device), time_loop(loop, data, device)) for _ in range(rounds)]
    return min(t[0] for t in timings), min(t[1] for t in timings)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=7)
    p.add_argument("--hidden", nargs="+", default=["200,200,200,200", "64,64,64,64"],
                   help="one or more architectures (comma-separated widths)")
    p.add_argument("--features", type=int, default=47, help="state features (sepsis cohorts: ~47)")
    p.add_argument("--doses", type=int, default=2)
    p.add_argument("--batch", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--steps", type=int, default=30, help="gradient steps per timed round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best round counts")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--lightning-patients", type=int, default=2000, help="0 skips the Lightning run")
    args = p.parse_args()
    device = torch.device(args.device)
    in_dim, out_dim = args.features + args.doses + 1, args.features + 1
    print(f"device={device} threads={torch.get_num_threads()} members={args.members} "
          f"in={in_dim} out={out_dim} torch={torch.__version__}")
    print(f"{'hidden':>16} {'batch':>6} {'vectorised samples/s':>21} {'per-member loop samples/s':>26} {'speed-up':>9}")
    for spec in args.hidden:
        hidden = tuple(int(h) for h in spec.split(","))
        for batch in args.batch:
            tv, tl = compare(args.members, hidden, batch, in_dim, out_dim, args.steps, args.rounds, device)
            n = batch * args.steps
            print(f"{spec:>16} {batch:>6} {n / tv:>21,.0f} {n / tl:>26,.0f} {tl / tv:>8.2f}x")
    if args.lightning_patients:
        rate, rows, seconds = lightning_throughput(args.lightning_patients)
        print(f"Lightning fit_dynamics (7x4x200, batch 256, toy cohort, 5 epochs): "
              f"{rate:,.0f} rows/s ({rows:,} rows in {seconds:.1f} s)")


if __name__ == "__main__":
    main()
