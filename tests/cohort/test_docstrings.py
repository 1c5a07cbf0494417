"""The examples in the cohort docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import clinical_mborl.cohort as cohort

MODULES = sorted(m.name for m in pkgutil.iter_modules(cohort.__path__, prefix="clinical_mborl.cohort."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
