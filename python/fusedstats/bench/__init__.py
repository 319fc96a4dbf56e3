"""Benchmarks of fusedstats against the ways people compute the same numbers.

- :mod:`.harness`: the one race harness (interleaved rounds, untimed setups, medians,
  same-run ratios, the machine and checkout, JSON) every benchmark uses, here and in
  the repository's ``bench/`` scripts;
- :mod:`.workloads`: what is raced: inputs, the plain ways fusedstats replaces, the
  races shared by the suite and the scripts; :mod:`.logger_baseline`: the plain-Python
  metrics logger;
- :mod:`.suite`: ``fusedstats bench``, one table over tensor stats (:mod:`.demo`), the
  logger, rollout aggregation and ``report_epoch``;
- :mod:`.tensor_stats`: the full tensor-stats benchmark (``bench/bench_tensor_stats.py``).

Importing this package loads neither torch nor numba: they are imported inside the
functions that race them.
"""

from __future__ import annotations
