"""The examples in the scoring docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import clinical_mborl.scoring as scoring

MODULES = ["clinical_mborl.scoring",
           *sorted(m.name for m in pkgutil.iter_modules(scoring.__path__, prefix="clinical_mborl.scoring."))]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
