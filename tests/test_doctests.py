"""Every docstring example of the package runs: one runner over every module it finds.

Modules are discovered by walking the installed package, so a new module's examples run
without anyone adding it to a list. The discovery must find the package's known
modules (a runner that finds nothing passes nothing), and a module that gains an
example must keep it passing.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import fusedstats

# Modules not to import for their examples: the command-line entry runs on import.
SKIPPED = frozenset({"fusedstats.__main__"})


def _modules() -> list[str]:
    names = ["fusedstats"]
    for info in pkgutil.walk_packages(fusedstats.__path__, prefix="fusedstats."):
        if info.name in SKIPPED:
            continue
        spec = importlib.util.find_spec(info.name)
        origin = getattr(spec, "origin", None) or ""
        if origin.endswith(".py"):  # compiled extensions carry no examples
            names.append(info.name)
    return sorted(names)


MODULES = _modules()


def test_discovery_finds_the_package() -> None:
    # Well-known modules with examples, from every layer: if the walk missed them, the
    # parametrized test below would silently test less.
    for name in (
        "fusedstats.kernels.api",
        "fusedstats.logger.metrics_logger",
        "fusedstats.reporter.reporter",
        "fusedstats.sinks.runner",
        "fusedstats.store.sql",
        "fusedstats.rollout.stats",
        "fusedstats.health.keys",
        "fusedstats.bench.timing",
        "fusedstats.kernels.fallback",
    ):
        assert name in MODULES, f"{name} was not discovered"
    assert len(MODULES) > 60


@pytest.mark.parametrize("module", MODULES)
def test_doctests(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} doctest(s) of {module} failed (see output)"


def test_the_examples_are_many() -> None:
    attempted = sum(
        doctest.testmod(
            importlib.import_module(m), optionflags=doctest.ELLIPSIS, report=False
        ).attempted
        for m in ("fusedstats", "fusedstats.kernels.api", "fusedstats.kernels.model_stats")
    )
    assert attempted >= 5
