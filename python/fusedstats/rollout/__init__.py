"""Rollout-info aggregation: per-key running statistics of vectorized envs' info dicts.

Info dicts are walked once per :meth:`RolloutStats.add` call by the compiled core
(``fusedstats._core.InfoFlattener``), which writes key ids and float64 values into
buffers that numba kernels then reduce (count, sum, mean, M2, min, max per key).
Importing this package loads numpy only; numba is imported by :func:`warmup` (which
:class:`RolloutStats` calls when it is built), and torch is never imported here: tensors
are recognised only when the caller has imported torch.

What a leaf is, and what is skipped, rejected or forgotten: docs/reporter.md, "Rollout
infos".
"""

from __future__ import annotations

from .stats import RolloutStats, warmup

__all__ = ["RolloutStats", "warmup"]
