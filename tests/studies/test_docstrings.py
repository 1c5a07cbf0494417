"""The examples in the studies docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import clinical_mborl.studies as studies

MODULES = sorted(m.name for m in pkgutil.iter_modules(studies.__path__, prefix="clinical_mborl.studies."))


@pytest.mark.parametrize("name", ["clinical_mborl.studies", *MODULES])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
