"""The store modules' docstring examples run."""

import doctest
import importlib

import pytest

MODULES = [
    "fusedstats.store",
    "fusedstats.store.engine",
    "fusedstats.store.server",
    "fusedstats.store.spool",
    "fusedstats.store.sql",
    "fusedstats.store.values",
    "fusedstats.sinks.stats_store",
]


@pytest.mark.parametrize("module", MODULES)
def test_doctests(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{module} has no doctest"
    assert result.failed == 0, f"{result.failed} doctest(s) of {module} failed (see output)"
