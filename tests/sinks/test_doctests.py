"""The sinks modules' docstring examples run."""

import doctest
import importlib

import pytest

MODULES = [
    "fusedstats.sinks._lane",
    "fusedstats.sinks.base",
    "fusedstats.sinks.console",
    "fusedstats.sinks.jsonl",
    "fusedstats.sinks.runner",
    "fusedstats.sinks.spool",
    "fusedstats.sinks.tensorboard_sink",
]


@pytest.mark.parametrize("module", MODULES)
def test_doctests(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{module} has no doctest"
    assert result.failed == 0, f"{result.failed} doctest(s) of {module} failed (see output)"
