"""Benchmarks of fusedstats against pure torch, importable so the CLI can run them.

``fusedstats bench`` runs :mod:`fusedstats.bench.suite` (tensor stats of a model's
gradients from :mod:`fusedstats.bench.demo`, the logger against
:mod:`fusedstats.bench.logger_baseline`, rollout aggregation and ``report_epoch``
against :mod:`fusedstats.bench.workloads`); ``bench/bench_tensor_stats.py`` runs the
full tensor-stats benchmark, :mod:`fusedstats.bench.tensor_stats`. Importing this
package loads neither torch nor numpy-heavy state: torch is imported inside the
functions that race it.
"""

from __future__ import annotations
