"""The model-health part of a StatsReporter: extended gradient stats with exponent
histograms, activation watching and optimizer-state stats (``fusedstats.health``),
driven by the ``StatsReporterConfig`` fields of the same names.

Payload keys (all python floats):

- ``grad/<extended field>`` (``grad/kurtosis``, ``grad/underflow_e4m3``, ...) with
  ``extended_grad_stats``; ``weights/<extended field>`` with ``extended_weight_stats``.
- ``act/<module>/<field>``, ``act/<module>/dormant_frac``, ``act/<module>/calls`` and,
  with ``activation_grad_stats``, ``act_grad/<module>/...``: accumulated over the
  recorded forwards since the previous report, every ``activation_stats_interval``
  epochs.
- ``optim/<field>``, ``optim/<kind>/<field>`` (and per parameter with
  ``optimizer_stats_per_parameter``) every ``optimizer_stats_interval`` epochs.
- ``exp_hist/<base>/<bin>`` with ``exponent_histograms``: the exponent histogram of
  the extended passes (``grad``, ``act/<module>``, ``act_grad/<module>``), one key per
  nonzero bin (:mod:`fusedstats.health.keys`); the TensorBoard sink draws them as
  histograms.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

from .config import StatsReporterConfig

if TYPE_CHECKING:
    from fusedstats.health import WatchHandle

logger = logging.getLogger("fusedstats.reporter")


def _due(epoch: int, interval: int) -> bool:
    return interval > 0 and epoch % interval == 0


class HealthStats:
    """Activation watching and optimizer stats for one reporter.

    The watch is installed on the policy by :meth:`watch_model` (the reporter's
    ``watch_activations``) or, failing that, at the first ``report_epoch`` that is
    handed a policy (then the first epoch goes unwatched).
    """

    def __init__(self, config: StatsReporterConfig) -> None:
        self._config = config
        self.handle: WatchHandle | None = None
        self._model: Any = None

    @property
    def watching(self) -> bool:
        return self._config.activation_stats_interval > 0

    def watch_model(self, model: Any) -> WatchHandle | None:
        """Watches ``model`` (replacing a watch on another model); None when activation
        stats are off or ``model`` is not a torch module."""
        if not self.watching:
            return None
        if self.handle is not None and self._model is model:
            return self.handle
        torch = sys.modules.get("torch")
        if torch is None or not isinstance(model, torch.nn.Module):
            return None
        from fusedstats.health import watch

        self.close()
        config = self._config
        self.handle = watch(
            model,
            activation_grads=config.activation_grad_stats,
            modules=config.activation_modules,
            every=config.activation_stats_every,
            dormant_tau=config.activation_dormant_tau,
            extended=config.activation_extended,
            step_by=config.activation_step_by,
        )
        self._model = model
        return self.handle

    def epoch_keys(self, epoch: int, policy: Any, optimizer: Any) -> dict[str, float]:
        """The activation and optimizer keys due at ``epoch`` (``{}`` when none is)."""
        config = self._config
        out: dict[str, float] = {}
        if self.watching:
            try:
                if policy is not None and (self.handle is None or self._model is not policy):
                    self.watch_model(policy)  # a new policy: watched from now on
                elif self.handle is not None and _due(epoch, config.activation_stats_interval):
                    out.update(self._activation_keys(self.handle))
            except Exception as e:  # a health stat must not stop training
                logger.warning("activation stats skipped: %r", e)
        if optimizer is not None and _due(epoch, config.optimizer_stats_interval):
            from fusedstats.health import optimizer_stats

            try:
                out.update(
                    optimizer_stats(
                        optimizer,
                        per_parameter=config.optimizer_stats_per_parameter,
                        model=policy if _has_parameters(policy) else None,
                    )
                )
            except Exception as e:
                logger.warning("optimizer stats skipped: %r", e)
        return out

    def _activation_keys(self, handle: WatchHandle) -> dict[str, float]:
        report = handle.report(reset=True)
        out = dict(report.scalars)
        if self._config.exponent_histograms:
            from fusedstats.health.keys import exponent_histogram_keys

            for base, counts in report.histograms.items():
                out.update(exponent_histogram_keys(base, counts))
        return out

    def close(self) -> None:
        """Removes the hooks (a later epoch with a policy watches it again)."""
        if self.handle is not None:
            self.handle.remove()
        self.handle, self._model = None, None


def _has_parameters(policy: Any) -> bool:
    return policy is not None and callable(getattr(policy, "named_parameters", None))
