"""Fixtures for the explain tests."""

from __future__ import annotations

import pytest
from torch import nn

from .nets import trained_q_net


@pytest.fixture(scope="module")
def q_net() -> nn.Module:
    return trained_q_net()
