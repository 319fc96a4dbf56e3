"""What the benchmarks race on: inputs, the plain ways fusedstats replaces, shared races.

One module per subject, each used by ``fusedstats bench`` and by the repository's
``bench/`` scripts alike, so a workload is written once:

- :mod:`.tensors`: gradient-like tensors and small models;
- :mod:`.logger`: the metrics-logger races (``log_value``, ``reduce()``, merges) and
  the filled logger of the distributed benchmark;
- :mod:`.rollout`: rollout infos, the pure-Python ways of averaging them (Metta's, a
  lean one, the plainest) and their race with ``RolloutStats``;
- :mod:`.reporter`: an epoch of a trainer's stats, ``report_epoch`` over it, the same
  payload built in plain Python, and trainer-like payloads for the stats store.

The plain-Python metrics logger is :mod:`fusedstats.bench.logger_baseline`; the
pure-torch tensor statistics are :mod:`fusedstats.kernels.fallback`.
"""

from __future__ import annotations
