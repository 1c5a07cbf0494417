"""Replay buffers: dataset rows, next-state clinician probabilities, the model ring buffer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clinical_mborl.cohort.toy import make_toy_transitions
from clinical_mborl.policies.buffers import Batch, ReplayBuffer, concat, real_batch

TS = make_toy_transitions(20, seed=1)


def test_real_batch_takes_next_state_probabilities_from_the_next_row_of_the_stay() -> None:
    train = TS.split("train")
    n = len(train)
    log_pb = torch.arange(n, dtype=torch.float32)[:, None].expand(n, 9).clone()
    b = real_batch(train, log_pb)
    a = train.arrays()
    assert b.next_log_pb is not None
    for i in range(n):
        if a.end[i]:
            continue
        assert b.next_log_pb[i, 0].item() == i + 1  # same stay, step + 1
        np.testing.assert_array_equal(a.next_states[i], a.states[i + 1])
    assert b.is_real.all() and b.end.tolist() == a.end.tolist()


def test_continuous_actions_are_stored_box_scaled() -> None:
    ts = make_toy_transitions(20, seed=1, continuous=True)
    b = real_batch(ts.split("train"))
    assert b.actions.shape[1] == 2 and (b.actions.abs() < 1).all()
    untreated = torch.as_tensor(ts.split("train").arrays().doses == 0)
    assert (b.actions[untreated] < -0.99).all()


def _rows(start: int, n: int) -> Batch:
    x = torch.arange(start, start + n, dtype=torch.float32)[:, None]
    return Batch(states=x, actions=torch.zeros(n, dtype=torch.long), rewards=x[:, 0], next_states=x,
                 end=torch.zeros(n, dtype=torch.bool), is_real=torch.zeros(n, dtype=torch.bool))


def test_model_buffer_keeps_the_newest_rows() -> None:
    buf = ReplayBuffer(capacity=5)
    buf.add(_rows(0, 4))
    buf.add(_rows(4, 3))
    assert len(buf) == 5 and buf.data is not None
    assert buf.data.rewards.tolist() == [2.0, 3.0, 4.0, 5.0, 6.0]
    sample = buf.sample(100, torch.Generator().manual_seed(0))
    assert set(sample.rewards.tolist()) <= {2.0, 3.0, 4.0, 5.0, 6.0}


def test_sampling_is_reproducible_and_empty_buffers_refuse() -> None:
    buf = ReplayBuffer(_rows(0, 50))
    a, b = (buf.sample(10, torch.Generator().manual_seed(3)) for _ in range(2))
    assert torch.equal(a.states, b.states)
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer().sample(1, torch.Generator())


def test_concat_refuses_half_present_fields_but_drops_steps() -> None:
    with_pb = Batch(**{**_rows(0, 2).__dict__, "log_pb": torch.zeros(2, 9)})
    with pytest.raises(ValueError, match="log_pb"):
        concat([with_pb, _rows(0, 2)])
    with_steps = Batch(**{**_rows(0, 2).__dict__, "steps": torch.zeros(2, dtype=torch.long)})
    assert concat([with_steps, _rows(0, 2)]).steps is None
