"""Benchmarks of fusedstats against pure torch, importable so the CLI can run them.

``fusedstats bench`` and ``bench/bench_tensor_stats.py`` run
:mod:`fusedstats.bench.tensor_stats`; ``fusedstats demo`` runs
:mod:`fusedstats.bench.demo`. Importing this package loads neither torch nor numpy-heavy
state: torch is imported inside the functions that race it.
"""

from __future__ import annotations
