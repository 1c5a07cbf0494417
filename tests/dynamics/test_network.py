"""GaussianEnsemble: vectorised members equal a per-member loop; log-variance bounds hold."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_mborl.dynamics.network import EnsembleLinear, GaussianEnsemble


def _net(seed: int = 0) -> GaussianEnsemble:
    torch.manual_seed(seed)
    return GaussianEnsemble(n_members=5, in_dim=7, out_dim=4, hidden_sizes=(16, 12))


def test_vectorised_equals_member_loop_shared_input() -> None:
    net = _net()
    x = torch.randn(9, 7)
    out = net(x)
    for m in range(net.n_members):
        ref = net.forward_member(x, m)
        for got, want in zip(out, ref, strict=True):
            torch.testing.assert_close(got[m], want[0], rtol=1e-5, atol=1e-5)


def test_vectorised_equals_member_loop_per_member_batches() -> None:
    net = _net(1)
    x = torch.randn(5, 6, 7)  # a different batch for every member
    out = net(x)
    for m in range(net.n_members):
        ref = net.forward_member(x[m], m)
        torch.testing.assert_close(out.mean[m], ref.mean[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out.term_logits[m], ref.term_logits[0], rtol=1e-5, atol=1e-5)


def test_members_are_independent() -> None:
    net = _net(2)
    out = net(torch.randn(8, 7))
    out.mean[1].sum().backward()  # a loss on member 1 only
    w = net.hidden[0].weight.grad
    assert w is not None
    assert torch.count_nonzero(w[1]) > 0
    assert torch.count_nonzero(w[[0, 2, 3, 4]]) == 0


def test_members_differ_at_initialisation() -> None:
    layer = EnsembleLinear(3, 4, 5)
    assert not torch.allclose(layer.weight[0], layer.weight[1])


@settings(max_examples=40, deadline=None)
@given(st.floats(-1e4, 1e4), st.floats(-30.0, 5.0), st.floats(0.1, 20.0))
def test_logvar_inside_soft_bounds(raw: float, lo: float, width: float) -> None:
    net = GaussianEnsemble(n_members=2, in_dim=3, out_dim=2, hidden_sizes=(4,),
                           init_max_logvar=lo + width, init_min_logvar=lo)
    lv = net.bound_logvar(torch.full((2, 3, 2), raw, dtype=torch.float64))
    lo32, hi32 = net.min_logvar[0].item(), net.max_logvar[0].item()
    # soft bounds: above min; above max by at most log(1 + exp(-(max - min))) (2.7e-5 at defaults)
    slack = torch.log1p(torch.exp(torch.tensor(lo32 - hi32, dtype=torch.float64)))
    assert torch.all(lv >= lo32 - 1e-6) and torch.all(lv <= hi32 + slack + 1e-6)


def test_network_outputs_respect_bounds_on_extreme_inputs() -> None:
    net = _net(3)
    out = net(1e4 * torch.randn(50, 7))
    assert torch.all(out.logvar <= net.max_logvar + 1e-4)  # default bounds: slack 2.7e-5
    assert torch.all(out.logvar >= net.min_logvar - 1e-6)
    assert torch.isfinite(out.logvar).all()


def test_bound_penalty_gradient_tightens_bounds() -> None:
    net = _net(4)
    net.logvar_bound_penalty().backward()
    assert net.max_logvar.grad is not None and net.min_logvar.grad is not None
    assert torch.all(net.max_logvar.grad > 0) and torch.all(net.min_logvar.grad < 0)
