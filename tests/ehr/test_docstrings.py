"""The examples in the ehr docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import clinical_mborl.ehr as ehr

MODULES = sorted(m.name for m in pkgutil.iter_modules(ehr.__path__, prefix="clinical_mborl.ehr."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
