"""The examples in the ope docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import clinical_mborl.ope as ope

MODULES = sorted(m.name for m in pkgutil.iter_modules(ope.__path__, prefix="clinical_mborl.ope."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
