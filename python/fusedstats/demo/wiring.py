"""The one place the demo builds its StatsReporter, store and sinks.

The reporter attaches the sinks itself: a ``StatsStoreSink`` because its stats client
(the embedded store) has ``record_metrics``, a ``TensorBoardSink`` because
``tensorboard_dir`` is set, a JSONL sink because ``jsonl_path`` is.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .config import DemoConfig

STORE_FILE = "stats.db"
JSONL_FILE = "stats.jsonl"
TENSORBOARD_DIR = "tensorboard"
SPOOL_DIR = "spool"


class EpochRecorder:
    """``reporter.create_epoch`` on a background thread.

    An epoch row in the embedded SQLite store costs 1-5 ms here (a transaction and its
    commit), more than everything else the demo spends on stats per epoch; the
    training thread only queues the call (~20 us). :attr:`seconds` sums the calls' wall
    time, reported apart from the training thread's stats time.
    """

    def __init__(self, reporter: Any, run_id: Any) -> None:
        self._reporter = reporter
        self._run_id = run_id
        self._pool: ThreadPoolExecutor | None = None
        self.seconds = 0.0

    def record(self, epoch: int, attributes: Mapping[str, Any]) -> None:
        """Queues ``create_epoch(run_id, epoch, epoch, attributes)``."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="fusedstats-demo-epochs")
        self._pool.submit(self._create, epoch, dict(attributes))

    def _create(self, epoch: int, attributes: dict[str, Any]) -> None:
        start = time.perf_counter()
        # Never raises: the reporter logs a failing stats client as a warning.
        self._reporter.create_epoch(self._run_id, epoch, epoch, attributes)
        self.seconds += time.perf_counter() - start

    def close(self) -> None:
        """Waits for the queued calls."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


@dataclass
class Wiring:
    """What :func:`build_reporter` made. :meth:`finish` waits for queued epochs,
    finalizes the reporter with ``status`` and closes W&B and the store."""

    reporter: Any
    store: Any
    run_id: Any
    wandb_run: Any
    epochs: EpochRecorder = field(init=False)

    def __post_init__(self) -> None:
        self.epochs = EpochRecorder(self.reporter, self.run_id)

    def finish(self, status: str) -> None:
        try:
            self.epochs.close()
            self.reporter.finalize(status)
        finally:
            if self.wandb_run is not None:
                self.wandb_run.finish(exit_code=0 if status == "completed" else 1)
            self.store.close()


def run_label(name: str, run_dir: Path, config: DemoConfig) -> SimpleNamespace:
    """The run's name, url, notes and tags, shaped like a W&B run: the reporter names the
    store's training run from these when there is no W&B run."""
    return SimpleNamespace(
        name=name,
        url=run_dir.resolve().as_uri(),
        notes=f"fusedstats demo: PPO on forage, {config.envs} envs x {config.agents} agents",
        tags=["demo", "forage", "ppo"],
    )


def start_wandb(name: str, run_dir: Path, config: DemoConfig, log: Any) -> Any:
    """A W&B run (``WANDB_MODE=offline`` and the other WANDB_* settings are honoured),
    or None with a logged reason when wandb is not installed or fails to start."""
    try:
        import wandb
    except ImportError:
        log("--wandb: wandb is not installed (pip install 'fusedstats[wandb]'); skipped")
        return None
    try:
        return wandb.init(
            project="fusedstats-demo",
            name=name,
            dir=str(run_dir),
            config=config.to_dict(),
            tags=["demo", "forage", "ppo"],
        )
    except Exception as e:  # no login, no network: the demo goes on without W&B
        log(f"--wandb: wandb.init failed ({e!r}); going on without W&B")
        return None


def build_reporter(config: DemoConfig, run_dir: Path, name: str, log: Any = print) -> Wiring:
    """A StatsReporter writing to the embedded store (``<run_dir>/stats.db``), JSONL,
    TensorBoard, and W&B when ``config.wandb``.

    The reporter computes gradient stats every epoch (with per-parameter rows for
    TensorBoard's histograms) and weight stats every ``analyze_weights_interval``
    epochs; with ``config.health``, gradient stats carry the extended columns and the
    exponent histogram, activation stats (with their gradients and dormant units) are
    reported every ``activation_interval`` epochs from one update step in
    ``activation_every`` (the trainer calls the watch's ``step()``), and
    optimizer-state stats every ``optimizer_interval`` epochs. The demo's own progress
    display replaces the console sink.
    """
    from fusedstats.reporter import StatsReporter, StatsReporterConfig
    from fusedstats.store import connect

    run_dir.mkdir(parents=True, exist_ok=True)
    store = connect(run_dir)
    wandb_run = start_wandb(name, run_dir, config, log) if config.wandb else None
    reporter_config = StatsReporterConfig(
        report_to_wandb=wandb_run is not None,
        report_to_stats_client=True,
        report_to_console=False,
        grad_mean_variance_interval=1,
        analyze_weights_interval=config.analyze_weights_interval,
        jsonl_path=str(run_dir / JSONL_FILE),
        spool_dir=str(run_dir / SPOOL_DIR),
        tensorboard_dir=str(run_dir / TENSORBOARD_DIR),
        per_parameter_grad_stats=True,
        extended_grad_stats=config.health,
        exponent_histograms=config.health,
        activation_stats_interval=config.activation_interval if config.health else 0,
        activation_stats_every=config.activation_every,
        activation_step_by="manual",
        activation_modules=config.activation_modules,
        activation_grad_stats=True,
        activation_dormant_tau=config.dormant_tau,
        optimizer_stats_interval=config.optimizer_interval if config.health else 0,
    )
    reporter = StatsReporter(
        reporter_config,
        stats_client=store,
        wandb_run=wandb_run if wandb_run is not None else run_label(name, run_dir, config),
    )
    run_id = reporter.stats_run_id
    if run_id is None:
        raise RuntimeError(f"the stats store at {run_dir / STORE_FILE} created no training run")
    return Wiring(reporter=reporter, store=store, run_id=run_id, wandb_run=wandb_run)


__all__ = [
    "EpochRecorder",
    "Wiring",
    "build_reporter",
    "run_label",
]
