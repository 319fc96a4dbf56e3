"""What a reporter carries between epochs, and the evaluation scores it reports."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from fusedstats.rollout import RolloutStats


@dataclass
class EvalRewardSummary:
    """Evaluation scores: one per category and one per (category, simulation).

    Example:
        >>> s = EvalRewardSummary({"navigation": 0.5}, {("navigation", "maze"): 0.25})
        >>> s.to_wandb_metrics_format()
        {'navigation/score': 0.5, 'navigation/maze': 0.25}
        >>> s.avg_category_score, EvalRewardSummary().avg_simulation_score
        (0.5, 0.0)
    """

    category_scores: dict[str, float] = field(default_factory=dict)
    simulation_scores: dict[tuple[str, str], float] = field(default_factory=dict)

    @property
    def avg_category_score(self) -> float:
        """The mean of the category scores; 0 when there are none."""
        scores = self.category_scores
        return sum(scores.values()) / len(scores) if scores else 0.0

    @property
    def avg_simulation_score(self) -> float:
        """The mean of the simulation scores; 0 when there are none."""
        scores = self.simulation_scores
        return sum(scores.values()) / len(scores) if scores else 0.0

    def to_wandb_metrics_format(self) -> dict[str, float]:
        """``{"<category>/score": ..., "<category>/<simulation>": ...}`` (the payload adds
        ``eval_`` in front)."""
        out = {f"{category}/score": score for category, score in self.category_scores.items()}
        for (category, sim), score in self.simulation_scores.items():
            out[f"{category}/{sim}"] = score
        return out


def _new_rollout_stats() -> RolloutStats:
    # Imported here: fusedstats.rollout loads numba, which a NoOp reporter never needs.
    from fusedstats.rollout import RolloutStats

    return RolloutStats()


@dataclass
class StatsReporterState:
    """The reporter's state.

    Attributes:
        rollout_stats: rollout infos accumulated since the last report, key path ->
            values (``rollout_stats.get(key)`` is an array ``np.mean`` accepts).
        grad_stats: ``grad/...`` values to report with the next epoch.
        eval_scores: the latest evaluation scores.
        stats_run_id: the stats client's id of this training run, if it made one.
        area_under_reward: sum of every reported epoch's finite ``experience/rewards``.
        rolling: per ``default_zero_metrics`` key, its values at the last
            ``rolling_window`` reports (NaN where it was not finite).
        skipped_steps_total: optimizer steps the non-finite gate skipped so far
            (``StatsReporter.record_step_gate``).
    """

    rollout_stats: RolloutStats = field(default_factory=_new_rollout_stats)
    grad_stats: dict[str, float] = field(default_factory=dict)
    eval_scores: EvalRewardSummary = field(default_factory=EvalRewardSummary)
    stats_run_id: UUID | None = None
    area_under_reward: float = 0.0
    rolling: dict[str, deque[float]] = field(default_factory=dict)
    skipped_steps_total: int = 0
