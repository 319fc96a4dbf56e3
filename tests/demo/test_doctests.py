"""The docstring examples of the demo, report, bench-suite and CLI modules run."""

import doctest
import importlib

import pytest

MODULES = [
    "fusedstats.cli",
    "fusedstats.demo.config",
    "fusedstats.demo.env",
    "fusedstats.demo.evaluate",
    "fusedstats.demo.policy",
    "fusedstats.demo.progress",
    "fusedstats.demo.train",
    "fusedstats.report.data",
    "fusedstats.report.html",
    "fusedstats.bench.suite",
    "fusedstats.bench.timing",
    "fusedstats.bench.workloads",
]


@pytest.mark.parametrize("module", MODULES)
def test_doctests(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{module} has no doctest"
    assert result.failed == 0, f"{result.failed} doctest(s) of {module} failed (see output)"
