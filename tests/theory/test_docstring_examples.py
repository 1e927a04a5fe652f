"""The Examples sections of the theory API docstrings run and show what they print."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["theory.flows", "theory.flow_scales", "theory.lp_flow", "theory.deep", "theory.deep_grad_norms",
           "theory.deep_task", "theory.deep_experiment"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_pass(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
