"""StatsReporter: Metta's trainer stats reporter, fed by compiled rollout aggregation."""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any
from uuid import UUID

from . import inputs
from .client import StatsClient, guarded, response_id
from .component import TrainerComponent
from .config import StatsReporterConfig
from .delivery import CurrentRunWandbSink, build_runner, build_sinks
from .health import HealthStats
from .payload import (
    EnvKeys,
    add_default_zero_metrics,
    build_wandb_payload,
    process_training_stats,
)
from .state import EvalRewardSummary, StatsReporterState
from .timing import Stopwatch, Timer, TimingInfo, compute_timing_stats

if TYPE_CHECKING:
    from fusedstats.health import WatchHandle
    from fusedstats.sinks import DeliveryReport, Sink, SinkRunner

logger = logging.getLogger("fusedstats.reporter")

NOOP_INTERVAL = 999999
UNKNOWN = "unknown"


def _due(epoch: int, interval: int) -> bool:
    return interval > 0 and epoch % interval == 0


class StatsReporter(TrainerComponent):
    """Aggregates rollout infos, builds an epoch payload with Metta's keys, and hands it
    to W&B, JSONL, the console and any extra sinks on a background thread.

    Args:
        config: the settings.
        stats_client: an optional stats store/server client (:class:`StatsClient`); a
            training run is created on it now when ``report_to_stats_client``.
        wandb_run: an optional W&B run (may also be set later).
        extra_sinks: more sinks (``fusedstats.sinks.Sink``) beside the configured ones.
        process_group: the torch.distributed group whose ranks' rollout stats are merged
            (default: the whole job).

    Across ranks: with ``config.merge_rollout_across_ranks`` (the default) in a
    torch.distributed job of more than one rank, the rollout stats of every rank are
    merged into the payload of the group's first rank (rank 0); the other ranks keep
    their own. :meth:`report_epoch` is then a collective call: every rank must call it
    for the same epochs. With the option off each rank reports its own environments.
    When torch.distributed is not initialized (or torch not even imported: then it is
    not imported here either) or the world is one rank, everything stays local.

    Example:
        >>> r = StatsReporter(StatsReporterConfig(report_to_console=False))
        >>> r.on_step([{"game/score": 1.0}, {"game/score": 3.0}, {}])
        >>> r.report_epoch(epoch=1, agent_step=64, losses_stats={"value_loss": 0.5},
        ...                experience={"rewards": 0.25})
        >>> p = r.get_latest_payload()
        >>> p["env_game/score"], p["losses/value_loss"], p["overview/reward"]
        (2.0, 0.5, 0.25)
        >>> r.finalize().complete
        True
    """

    def __init__(
        self,
        config: StatsReporterConfig,
        stats_client: StatsClient | None = None,
        wandb_run: Any = None,
        *,
        extra_sinks: Sequence[Sink] = (),
        process_group: Any = None,
    ) -> None:
        self._setup(config, stats_client, wandb_run, extra_sinks, process_group)
        from fusedstats.rollout import warmup

        warmup()  # numba compiles (or loads its cache) here, not in a training step
        self._warm_imports()
        self._state = StatsReporterState()
        if stats_client is not None and config.report_to_stats_client:
            self._state.stats_run_id = self._create_training_run(stats_client)

    def _setup(
        self,
        config: StatsReporterConfig,
        stats_client: StatsClient | None,
        wandb_run: Any,
        extra_sinks: Sequence[Sink],
        process_group: Any,
    ) -> None:
        """The plain fields of a reporter (no numba, no sink, no client call yet)."""
        TrainerComponent.__init__(self, epoch_interval=config.interval)
        self._config = config
        self._stats_client = stats_client
        self._wandb_run = wandb_run
        self._extra_sinks = list(extra_sinks)
        self._runner: SinkRunner | None = None
        self._wandb_sink: CurrentRunWandbSink | None = None
        self._sinks_wanted = True  # until the config turns out to ask for none
        self._env_keys = EnvKeys()
        self._latest_payload: dict[str, float] | None = None
        self._gate: Any = None  # device sum of found_inf flags since the last report
        self._process_group = process_group
        self._health = HealthStats(config)  # activation watch, optimizer stats

    @staticmethod
    def _warm_imports() -> None:
        """Setup work done at construction rather than in the first ``report_epoch``
        (measured on the demo: ~5 ms there, 1.5% of that epoch): the sink modules are
        imported (the runner and its threads still start only at the first payload) and,
        when torch is in use, the fused kernel's torch ops are registered."""
        import fusedstats.sinks  # noqa: F401

        if "torch" in sys.modules:
            from fusedstats.kernels import ops

            try:
                ops.ensure_registered()
            except Exception as e:  # the first tensor_stats call meets it again
                logger.warning("fusedstats' torch ops could not be registered yet: %r", e)

    @classmethod
    def from_config(
        cls,
        config: StatsReporterConfig | None,
        stats_client: StatsClient | None = None,
        wandb_run: Any = None,
        *,
        extra_sinks: Sequence[Sink] = (),
    ) -> StatsReporter:
        """A reporter for ``config``, or a :class:`NoOpStatsReporter` when it is None."""
        if config is None:
            return NoOpStatsReporter()
        return cls(config, stats_client, wandb_run, extra_sinks=extra_sinks)

    # ---- properties ------------------------------------------------------------------

    @property
    def config(self) -> StatsReporterConfig:
        return self._config

    @property
    def state(self) -> StatsReporterState:
        return self._state

    @property
    def wandb_run(self) -> Any:
        """The W&B run payloads go to (None: none). Settable: the next payload goes to
        the new run."""
        return self._wandb_run

    @wandb_run.setter
    def wandb_run(self, run: Any) -> None:
        self._wandb_run = run

    @property
    def stats_run_id(self) -> UUID | None:
        """The stats client's id of this training run (None without one)."""
        return self._state.stats_run_id

    @property
    def sink_counters(self) -> dict[str, Any]:
        """The sink runner's delivery counters (``{}`` before the first payload)."""
        return dict(self._runner.counters) if self._runner is not None else {}

    @property
    def activation_watch(self) -> WatchHandle | None:
        """The activation watch on the policy (``activation_stats_interval > 0``), or None;
        its ``seconds`` is the time its hooks spent recording."""
        return self._health.handle

    def watch_activations(self, model: Any) -> WatchHandle | None:
        """Starts watching ``model``'s activations now (``activation_stats_interval >
        0``); otherwise the first ``report_epoch`` given a policy starts it, and the
        epoch before goes unwatched. None when activation stats are off."""
        return self._health.watch_model(model)

    # ---- trainer component -----------------------------------------------------------

    def register(self, context: Any) -> None:
        """Keeps ``context`` and sets ``context.stats_reporter = self``."""
        super().register(context)
        context.stats_reporter = self

    def on_step(self, infos: Any) -> None:
        """Accumulates one step's infos: a dict, or a list (any iterable) of dicts; empty
        dicts, None and anything else that is not a dict are dropped."""
        if isinstance(infos, Mapping):
            batch: list[Any] = [infos] if infos else []
        elif isinstance(infos, Iterable) and not isinstance(infos, str | bytes):
            batch = [info for info in infos if isinstance(info, Mapping) and info]
        else:
            return
        if batch:
            self.process_rollout(batch)

    def accumulate_infos(self, info: Any) -> None:
        """The same as :meth:`on_step`."""
        self.on_step(info)

    def on_epoch_end(self, epoch: int) -> None:
        """Reports ``epoch`` from the registered context: its ``agent_step``,
        ``latest_losses_stats``, ``experience``, ``policy``, ``stopwatch``, ``config``
        (or ``trainer_cfg``), ``optimizer``, and ``system_monitor`` /
        ``memory_monitor`` when present."""
        ctx = self._context
        if ctx is None:
            logger.warning("on_epoch_end(%d) before register(context): nothing reported", epoch)
            return
        trainer_cfg = getattr(ctx, "config", None)
        if trainer_cfg is None:
            trainer_cfg = getattr(ctx, "trainer_cfg", None)
        self.report_epoch(
            epoch=epoch,
            agent_step=int(getattr(ctx, "agent_step", 0) or 0),
            losses_stats=getattr(ctx, "latest_losses_stats", None) or {},
            experience=getattr(ctx, "experience", None),
            policy=getattr(ctx, "policy", None),
            timer=getattr(ctx, "stopwatch", None),
            trainer_cfg=trainer_cfg,
            optimizer=getattr(ctx, "optimizer", None),
        )

    def on_training_complete(self) -> None:
        self.finalize("completed")

    def on_failure(self) -> None:
        self.finalize("failed")

    # ---- accumulating ----------------------------------------------------------------

    def process_rollout(self, raw_infos: Iterable[Mapping[str, Any]] | Mapping[str, Any]) -> None:
        """Accumulates every numeric leaf of every info dict under its "/"-joined path
        (compiled ragged aggregation; non-numeric leaves are skipped and counted in
        ``state.rollout_stats.skipped``).

        ``raw_infos``: a list (any iterable) of info dicts, or one info dict (one info).
        Anything else (a str, a number, None) is refused with a warning. An info that
        cannot be read (it contains itself, is nested deeper than 512 levels, or is
        changed by another thread meanwhile) is left out and counted in
        ``state.rollout_stats.rejected``, and the call's other infos are kept; the first
        of each kind is logged as a warning.
        """
        stats = self._state.rollout_stats
        given: object = raw_infos  # typed callers can still pass anything: checked here
        if isinstance(given, str | bytes) or not isinstance(given, Mapping | Iterable):
            self._warn_rollout_once(
                "argument",
                "process_rollout(raw_infos) takes a list of info dicts or one info dict, "
                f"got {type(given).__name__}: refused (nothing accumulated)",
            )
            return
        rejected_before = sum(stats.rejected.values())
        try:
            stats.add(raw_infos)
        except Exception as e:  # add() does not raise on bad infos; this is a last guard
            logger.warning("rollout infos not accumulated: %r", e)
            return
        if sum(stats.rejected.values()) != rejected_before:
            for reason in stats.rejected:
                self._warn_rollout_once(
                    reason,
                    f"rollout infos left out ({reason}; the latest: {stats.last_rejection}); "
                    "the other infos were kept (counts in state.rollout_stats.rejected)",
                )

    def _warn_rollout_once(self, reason: str, message: str) -> None:
        # The reasons already warned about, made on first use (no field in __init__).
        warned: set[str] = self.__dict__.setdefault("_warned_rollout", set())
        if reason not in warned:
            warned.add(reason)
            logger.warning("%s", message)

    def clear_rollout_stats(self) -> None:
        self._state.rollout_stats.clear()

    def clear_grad_stats(self) -> None:
        self._state.grad_stats = {}

    def update_grad_stats(self, grad_stats: Mapping[str, float]) -> None:
        """Replaces the grad stats reported with the next epoch (keys as given,
        ``grad/mean``...); the reporter then does not compute its own that epoch."""
        self._state.grad_stats = dict(grad_stats)

    def record_step_gate(self, found_inf: Any) -> None:
        """Counts a step the non-finite gate skipped: ``found_inf`` is the flag
        :func:`fusedstats.gate_nonfinite` wrote (1.0: skipped). Summed on its device with
        no host sync; read once per report as ``overview/skipped_steps`` (this epoch) and
        ``overview/skipped_steps_total`` (the whole run)."""
        flag = found_inf.detach().reshape(-1)[0]
        self._gate = flag.clone() if self._gate is None else self._gate + flag

    def update_eval_scores(self, scores: EvalRewardSummary) -> None:
        """Keeps ``scores`` for the next payloads (and sets
        ``context.latest_eval_scores`` when registered)."""
        self._state.eval_scores = scores
        if self._context is not None:
            self._context.latest_eval_scores = scores

    # ---- reporting -------------------------------------------------------------------

    def report_epoch(
        self,
        epoch: int,
        agent_step: int,
        losses_stats: Any,
        experience: Any,
        policy: Any = None,
        timer: Timer | None = None,
        trainer_cfg: Any = None,
        optimizer: Any = None,
        *,
        system_stats: Mapping[str, Any] | None = None,
        memory_stats: Mapping[str, Any] | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
    ) -> None:
        """Builds the epoch's payload and queues it for every sink; never waits on I/O.

        Inside ``timer("_process_stats")`` when a timer is given. The payload is
        :func:`build_wandb_payload` of: the rollout means since the last report; the
        scalars of ``losses_stats`` and ``experience`` (mappings, or objects with
        ``stats()``); timing from :func:`compute_timing_stats` when ``timer`` is a
        :class:`Stopwatch` (else no time-derived keys); gradient stats of ``policy``
        every ``grad_mean_variance_interval`` epochs (``epoch % interval == 0``) unless
        :meth:`update_grad_stats` gave some; weight stats of ``policy`` every
        ``analyze_weights_interval`` epochs; ``parameters/`` from ``optimizer``,
        ``trainer_cfg`` and ``experience``; ``hyperparameters/`` (given, or
        ``trainer_cfg.hyperparameters``); system and memory stats (given, or the
        registered context's ``system_monitor`` / ``memory_monitor``); eval scores;
        the model-health keys due at this epoch (``act/``, ``act_grad/``, ``optim/``,
        ``exp_hist/``; see :mod:`fusedstats.reporter.health`).

        Then: a finite ``experience/rewards`` is added to ``state.area_under_reward``,
        reported as ``experience/area_under_reward`` (when rewards are reported).
        Each ``default_zero_metrics`` key missing from the payload is set to 0.0, and
        ``<key>.avg`` is added: the mean of the key's finite values at the last
        ``rolling_window`` reports, this one included (NaN if none was finite).
        Finally the payload is kept as the latest one and queued for the sinks, and
        the rollout and grad stats are cleared.

        Raises:
            TypeError: an argument of the wrong type (``epoch="3"``, ``losses_stats``
                with a key that is not a string, ...); the message names the argument
                and what it must be. Nothing is reported or changed then.
        """
        epoch = inputs.step_number("epoch", epoch)
        agent_step = inputs.step_number("agent_step", agent_step)
        if timer is not None and not callable(timer):
            raise TypeError(
                "report_epoch: timer must be a Stopwatch (a callable giving a context "
                f"manager) or None, got {timer!r:.80} ({type(timer).__name__})"
            )
        for name, value in (
            ("system_stats", system_stats),
            ("memory_stats", memory_stats),
            ("hyperparameters", hyperparameters),
        ):
            inputs.checked_keys(name, value)
        # Checked before anything changes (the timer's laps, the rollout means, which
        # may be a collective across ranks).
        losses = inputs.checked_stats("losses_stats", losses_stats)
        experience_stats = inputs.checked_stats("experience", experience)
        block: AbstractContextManager[Any] = (
            nullcontext() if timer is None else timer("_process_stats")
        )
        with block:
            timing = (
                compute_timing_stats(timer, agent_step) if isinstance(timer, Stopwatch) else None
            )
            payload = self._build_payload(
                epoch,
                agent_step,
                losses,
                experience_stats,
                experience,
                policy,
                timing,
                trainer_cfg,
                optimizer,
                system_stats,
                memory_stats,
                hyperparameters,
            )
            self._publish(payload, epoch=epoch, agent_step=agent_step)
            self.clear_rollout_stats()
            self.clear_grad_stats()

    def _build_payload(
        self,
        epoch: int,
        agent_step: int,
        losses: Mapping[str, Any],
        experience_stats: Mapping[str, Any],
        experience: Any,
        policy: Any,
        timing: TimingInfo | None,
        trainer_cfg: Any,
        optimizer: Any,
        system_stats: Mapping[str, Any] | None,
        memory_stats: Mapping[str, Any] | None,
        hyperparameters: Mapping[str, Any] | None,
    ) -> dict[str, float]:
        config, state = self._config, self._state
        try:
            means: Mapping[str, Any] = self._rollout_means()
        except Exception as e:
            logger.warning("rollout means unavailable: %r", e)
            means = {}
        processed = process_training_stats(means, losses, experience_stats, self._env_keys)
        weights: dict[str, float] = {}
        if policy is not None:
            if not state.grad_stats and _due(epoch, config.grad_mean_variance_interval):
                state.grad_stats = inputs.policy_grad_stats(
                    policy,
                    per_parameter=config.per_parameter_grad_stats,
                    extended=config.extended_grad_stats,
                    histograms=config.exponent_histograms,
                )
            if _due(epoch, config.analyze_weights_interval):
                weights = inputs.policy_weight_stats(policy, extended=config.extended_weight_stats)
        payload = build_wandb_payload(
            processed,
            timing,
            weights,
            state.grad_stats,
            inputs.monitor_stats(self._context, "system_monitor")
            if system_stats is None
            else system_stats,
            inputs.monitor_stats(self._context, "memory_monitor")
            if memory_stats is None
            else memory_stats,
            inputs.training_parameters(
                optimizer, trainer_cfg, experience, None if timing is None else timing.epoch_steps
            ),
            inputs.hyperparameters_of(trainer_cfg)
            if hyperparameters is None
            else inputs.flatten(hyperparameters),
            state.eval_scores,
            agent_step=agent_step,
            epoch=epoch,
        )
        payload.update(self._health.epoch_keys(epoch, policy, optimizer))
        if self._gate is not None:
            skipped = float(self._gate.item())  # the one host read of the gate per epoch
            self._gate = None
            state.skipped_steps_total += int(skipped)
            payload["overview/skipped_steps"] = skipped
            payload["overview/skipped_steps_total"] = float(state.skipped_steps_total)
        rewards = payload.get("experience/rewards")
        if rewards is not None:
            if math.isfinite(rewards):  # one NaN epoch must not poison every later one
                state.area_under_reward += rewards
            payload["experience/area_under_reward"] = state.area_under_reward
        if config.default_zero_metrics:
            add_default_zero_metrics(
                payload, config.default_zero_metrics, state.rolling, config.rolling_window
            )
        return payload

    def _rollout_means(self) -> Mapping[str, Any]:
        """The rollout means: this rank's, or on the group's first rank those of every
        rank's values (``merge_rollout_across_ranks`` in a world of several ranks; a
        collective call, see the class docstring)."""
        stats = self._state.rollout_stats
        if not self._config.merge_rollout_across_ranks:
            return stats.means()
        # No process group, no import: fusedstats.distributed costs ~10 ms to import, which
        # a single-process run must not pay at its first report.
        dist = sys.modules.get("torch.distributed")
        if dist is None or not dist.is_available() or not dist.is_initialized():
            return stats.means()
        from fusedstats.distributed import sync_rollout_stats, world_size

        group = self._process_group
        if world_size(group) <= 1:
            return stats.means()
        import torch.distributed as dist  # initialized, so torch is imported already

        dst = 0 if group is None else dist.get_process_group_ranks(group)[0]
        try:
            merged = sync_rollout_stats(stats, group, dst=dst)
        except Exception as e:  # every rank gets the same error: all report their own
            logger.warning("rollout stats not merged across ranks: %r", e)
            return stats.means()
        return stats.means() if merged is None else merged.means()

    def _publish(self, payload: dict[str, float], *, epoch: int, agent_step: int) -> None:
        if not payload:
            self._latest_payload = None
            return
        self._latest_payload = payload
        runner = self._sink_runner()
        if runner is None:
            return
        if self._wandb_sink is not None:
            self._wandb_sink.bind(self._wandb_run, step=agent_step, epoch=epoch)
        runner.submit(payload, step=agent_step, epoch=epoch)  # copies it; never blocks

    def _sink_runner(self) -> SinkRunner | None:
        # Made at the first payload: a reporter that never reports starts no thread.
        if self._runner is None and self._sinks_wanted:
            sinks = build_sinks(
                self._config,
                lambda: self._wandb_run,
                self._extra_sinks,
                stats_client=self._stats_client,
                stats_run_id=self._state.stats_run_id,
            )
            self._wandb_sink = next((s for s in sinks if isinstance(s, CurrentRunWandbSink)), None)
            if sinks:
                self._runner = build_runner(self._config, sinks)
            else:
                self._sinks_wanted = False
        return self._runner

    def get_latest_payload(self) -> dict[str, float] | None:
        """A copy of the last payload, or None (none yet, or after :meth:`finalize`)."""
        return None if self._latest_payload is None else dict(self._latest_payload)

    # ---- stats client --------------------------------------------------------------

    def _create_training_run(self, client: StatsClient) -> UUID | None:
        run = self._wandb_run

        def text(name: str) -> str:
            value = getattr(run, name, None) if run is not None else None
            return str(value) if value else UNKNOWN

        tags = getattr(run, "tags", None) if run is not None else None
        response = guarded(
            "create_training_run",
            client.create_training_run,
            name=text("name"),
            url=text("url"),
            description=text("notes"),
            tags=[str(t) for t in tags] if tags else [],
        )
        return response_id("create_training_run", response)

    def create_epoch(
        self,
        run_id: UUID,
        start_epoch: int,
        end_epoch: int,
        attributes: Mapping[str, Any] | None = None,
    ) -> UUID | None:
        """Records epochs ``start_epoch..end_epoch`` of run ``run_id`` on the stats
        client; the new epoch's id, or None (no client, disabled, or a failure, which
        is logged)."""
        client = self._stats_client
        if client is None or not self._config.report_to_stats_client:
            return None
        response = guarded(
            "create_epoch",
            client.create_epoch,
            run_id=run_id,
            start_training_epoch=start_epoch,
            end_training_epoch=end_epoch,
            attributes=dict(attributes or {}),
        )
        return response_id("create_epoch", response)

    def finalize(self, status: str = "completed") -> DeliveryReport:
        """Sets the run's status on the stats client (a failure is logged), drops the
        latest payload, delivers what the sinks still have queued and closes them, and
        returns what became of every sink's payloads. A later payload starts new sinks.

        Within ``sink_close_timeout_s``: delivery stops a little before it (a fifth of
        it, at most 1 s, is kept) and what is left is appended to each sink's spool file
        (``spool_dir``), so that when this returns every payload of every sink was
        delivered or is on disk, and the :class:`~fusedstats.sinks.DeliveryReport`
        says which (per sink: delivered, spooled, lost, pending). Payloads are only
        ``lost`` without a ``spool_dir`` or when the spool cannot be written; anything
        not delivered is also logged at WARNING.
        """
        from fusedstats.sinks import DeliveryReport

        client, run_id = self._stats_client, self._state.stats_run_id
        if client is not None and run_id is not None and self._config.report_to_stats_client:
            guarded(
                "update_training_run_status",
                client.update_training_run_status,
                run_id=run_id,
                status=status,
            )
        self._latest_payload = None
        self._health.close()
        runner, self._runner = self._runner, None
        if runner is None:
            return DeliveryReport({})
        report = runner.close(timeout_s=self._config.sink_close_timeout_s)
        if not report.all_delivered:
            logger.warning("finalize: not every payload was delivered: %s", report)
        return report


_NOOP_CONFIG = StatsReporterConfig(
    report_to_wandb=False,
    report_to_stats_client=False,
    report_to_console=False,
    interval=NOOP_INTERVAL,
    grad_mean_variance_interval=0,
)


class NoOpStatsReporter(StatsReporter):
    """A reporter that does nothing: what :meth:`StatsReporter.from_config` gives for no
    config. Its interval is so large that no epoch is handled; every hook returns at
    once; no sink, client or numba compilation is ever touched. :meth:`register` still
    sets ``context.stats_reporter``, so trainer code can call it unconditionally.

    Example:
        >>> r = NoOpStatsReporter()
        >>> r.on_step([{"a/b": 1.0}]); r.report_epoch(1, 10, {}, {})
        >>> r.get_latest_payload(), r.wandb_run, r.stats_run_id, r.epoch_interval
        (None, None, None, 999999)
    """

    def __init__(self) -> None:
        # The plain fields only: no numba warm-up, no state (made on demand), no sinks.
        self._setup(_NOOP_CONFIG, None, None, (), None)
        self._noop_state: StatsReporterState | None = None

    @property
    def state(self) -> StatsReporterState:
        if self._noop_state is None:  # made on demand: it loads numba
            self._noop_state = StatsReporterState()
        return self._noop_state

    @property
    def wandb_run(self) -> Any:
        return None

    @wandb_run.setter
    def wandb_run(self, run: Any) -> None:
        return None

    @property
    def stats_run_id(self) -> UUID | None:
        return None

    @property
    def activation_watch(self) -> WatchHandle | None:
        return None

    def watch_activations(self, model: Any) -> WatchHandle | None:
        return None

    def on_step(self, infos: Any) -> None:
        return None

    def accumulate_infos(self, info: Any) -> None:
        return None

    def on_epoch_end(self, epoch: int) -> None:
        return None

    def on_training_complete(self) -> None:
        return None

    def on_failure(self) -> None:
        return None

    def process_rollout(self, raw_infos: Iterable[Mapping[str, Any]] | Mapping[str, Any]) -> None:
        return None

    def clear_rollout_stats(self) -> None:
        return None

    def clear_grad_stats(self) -> None:
        return None

    def update_grad_stats(self, grad_stats: Mapping[str, float]) -> None:
        return None

    def record_step_gate(self, found_inf: Any) -> None:
        return None

    def update_eval_scores(self, scores: EvalRewardSummary) -> None:
        return None

    def report_epoch(
        self,
        epoch: int,
        agent_step: int,
        losses_stats: Any,
        experience: Any,
        policy: Any = None,
        timer: Timer | None = None,
        trainer_cfg: Any = None,
        optimizer: Any = None,
        *,
        system_stats: Mapping[str, Any] | None = None,
        memory_stats: Mapping[str, Any] | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
    ) -> None:
        return None

    def get_latest_payload(self) -> dict[str, float] | None:
        return None

    def create_epoch(
        self,
        run_id: UUID,
        start_epoch: int,
        end_epoch: int,
        attributes: Mapping[str, Any] | None = None,
    ) -> UUID | None:
        return None

    def finalize(self, status: str = "completed") -> DeliveryReport:
        from fusedstats.sinks import DeliveryReport

        return DeliveryReport({})
