"""The examples in the policies docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import clinical_mborl.policies as policies

MODULES = sorted(m.name for m in pkgutil.iter_modules(policies.__path__, prefix="clinical_mborl.policies."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
