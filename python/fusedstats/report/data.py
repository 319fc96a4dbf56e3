"""Reading one run back from a stats store: the series the report draws and its summary."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

STORE_FILE = "stats.db"
#: Timers whose share of an epoch is stats overhead: the reporter's own
#: ``_process_stats`` and every timer the trainer named ``_stats...``.
STATS_TIMER_PREFIX = "_stats"
PROCESS_STATS = "_process_stats"
FRAC_PREFIX = "timing_per_epoch/frac/"

Series = list[tuple[int, float]]


def is_stats_timer(op: str) -> bool:
    """Whether timer ``op`` counts as stats overhead.

    Example:
        >>> [is_stats_timer(op) for op in ("_stats_rollout", "_process_stats", "_train")]
        [True, True, False]
    """
    return op == PROCESS_STATS or op.startswith(STATS_TIMER_PREFIX)


@dataclass
class RunData:
    """One run as the report needs it: its row, its epochs, and the series by key."""

    run: dict[str, Any]
    epochs: list[dict[str, Any]]
    series: dict[str, Series] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return str(self.run["id"])

    def get(self, key: str) -> Series:
        """The (step, value) series of ``key``; empty when the run never reported it."""
        return self.series.get(key, [])

    def with_prefix(self, prefix: str) -> dict[str, Series]:
        """Every series whose key starts with ``prefix``, keyed by the rest."""
        return {k[len(prefix) :]: v for k, v in self.series.items() if k.startswith(prefix)}

    def stats_share(self) -> Series:
        """Per reported step, the summed ``timing_per_epoch/frac/`` of the stats timers."""
        totals: dict[int, float] = {}
        for op, points in self.with_prefix(FRAC_PREFIX).items():
            if is_stats_timer(op):
                for step, value in points:
                    if math.isfinite(value):
                        totals[step] = totals.get(step, 0.0) + value
        return sorted(totals.items())

    def summary(self) -> list[tuple[str, str]]:
        """(label, text) rows of the run's summary table."""
        run = self.run
        rows: list[tuple[str, str]] = [
            ("run id", self.run_id),
            ("name", str(run.get("name", ""))),
            ("status", str(run.get("status", ""))),
            ("created", str(run.get("created_at", ""))),
            ("url", str(run.get("url", ""))),
            ("description", str(run.get("description", ""))),
            ("tags", ", ".join(str(t) for t in run.get("tags") or [])),
            ("epochs recorded", str(len(self.epochs))),
            ("payloads", str(len(self.get("metric/agent_step")))),
            ("metric keys", str(len(self.keys))),
        ]
        steps = self.get("metric/agent_step")
        if steps:
            rows.append(("agent steps", f"{steps[-1][1]:,.0f}"))
        total = self.get("metric/total_time")
        if total:
            rows.append(("training time", f"{total[-1][1]:.1f} s"))
        reward = [v for _, v in self.get("overview/reward")]
        if reward:
            k = max(1, len(reward) // 4)
            rows.append(("reward, first epochs", f"{statistics.fmean(reward[:k]):.4f}"))
            rows.append(("reward, last epochs", f"{statistics.fmean(reward[-k:]):.4f}"))
        sps = [v for _, v in self.get("overview/sps")]
        if sps:
            rows.append(("steps/s (median epoch)", f"{statistics.median(sps):,.0f}"))
        share = [v for _, v in self.stats_share()]
        if share:
            rows.append(
                ("stats share of step time (median epoch)", f"{statistics.median(share):.2%}")
            )
        for key, points in sorted(self.with_prefix("eval_").items()):
            if points:
                rows.append((f"eval {key} (last)", f"{points[-1][1]:.3f}"))
        return rows


def store_path(run_dir: str | Path) -> Path:
    """The SQLite file of ``run_dir`` (a run directory, or the ``.db`` file itself).

    Raises:
        FileNotFoundError: there is no store there (naming the path looked at).
    """
    path = Path(run_dir)
    db = path if path.suffix == ".db" else path / STORE_FILE
    if not db.is_file():
        raise FileNotFoundError(f"no stats store at {db} (run `fusedstats demo` first?)")
    return db


def load_run(run_dir: str | Path, run_id: str | None = None) -> RunData:
    """The run ``run_id`` (default: the newest) of the store in ``run_dir``.

    Raises:
        FileNotFoundError: no store in ``run_dir``.
        LookupError: the store holds no run, or none with ``run_id``.
    """
    from fusedstats.store import connect

    store = connect(store_path(run_dir))
    try:
        if run_id is not None:
            run = store.get_run(UUID(run_id))
            if run is None:
                raise LookupError(f"run {run_id} is not in {store_path(run_dir)}")
        else:
            runs = store.list_runs()
            if not runs:
                raise LookupError(f"the store {store_path(run_dir)} holds no run")
            run = max(runs, key=lambda r: str(r.get("created_at", "")))
        rid = run["id"]
        data = RunData(run=dict(run), epochs=store.epochs(rid), keys=store.metric_keys(rid))
        # One read of every payload (by step) rather than one query per key.
        for record in store.payloads(rid):
            step = int(record["step"])
            for key, value in record["payload"].items():
                data.series.setdefault(key, []).append((step, float(value)))
        return data
    finally:
        store.close()


__all__ = ["RunData", "is_stats_timer", "load_run", "store_path"]
