"""Model health beyond gradient norms: activations, their gradients, dormant units and
optimizer state, through the same fused pass as ``tensor_stats``.

- :func:`watch`: forward hooks (and tensor hooks on outputs) that accumulate each
  module's output statistics on the device, every ``every`` steps, with no host sync
  until :meth:`WatchHandle.stats`.
- :func:`optimizer_stats`: statistics of every state tensor kind of a ``torch.optim``
  optimizer (``exp_avg``, ``exp_avg_sq``, ``momentum_buffer``, ...) in one fused call.

Nothing here imports torch at import time.
"""

from __future__ import annotations

from .activations import HealthReport, WatchHandle, WatchWarning, default_unit_dim, watch
from .keys import exponent_histogram_keys
from .optimizer import optimizer_stats

__all__ = [
    "HealthReport",
    "WatchHandle",
    "WatchWarning",
    "default_unit_dim",
    "exponent_histogram_keys",
    "optimizer_stats",
    "watch",
]
