"""The demo's live progress: a rich progress bar on a terminal, plain lines elsewhere.

Both show the epoch, agent steps per second, the epoch's mean reward, the share of
the epoch's wall time that went to stats, and the latest eval score.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO


def epoch_line(
    epoch: int, epochs: int, sps: float, reward: float, stats_frac: float, score: float | None
) -> str:
    """One epoch as a plain line.

    Example:
        >>> epoch_line(3, 20, 41234.5, 0.1234, 0.0042, None)
        'epoch  3/20  steps/s 41,234  reward 0.1234  stats 0.42% of step time'
    """
    width = len(str(epochs))
    line = (
        f"epoch {epoch:>{width}}/{epochs}  steps/s {sps:,.0f}  reward {reward:.4f}  "
        f"stats {stats_frac:.2%} of step time"
    )
    return line if score is None else f"{line}  eval {score:.2f}"


class ProgressDisplay:
    """``with ProgressDisplay(epochs) as show: show.update(...)`` once per epoch.

    A rich progress bar when ``stream`` is a terminal and ``live`` is True; otherwise
    one plain line per epoch (logs, pipes, tests), or nothing with ``quiet``.
    """

    def __init__(
        self,
        epochs: int,
        *,
        live: bool = True,
        quiet: bool = False,
        stream: TextIO | None = None,
    ) -> None:
        self.epochs = epochs
        self._stream = stream or sys.stdout
        self._quiet = quiet
        self._live = live and not quiet and self._stream.isatty()
        self._rich: Any = None
        self._task: Any = None
        self._score: float | None = None

    def __enter__(self) -> ProgressDisplay:
        if self._live:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._rich = Progress(
                TextColumn("epoch {task.completed}/{task.total}"),
                BarColumn(),
                TextColumn("{task.fields[sps]:>9,.0f} steps/s"),
                TextColumn("reward {task.fields[reward]:.4f}"),
                TextColumn("stats {task.fields[stats]:.2%} of step time"),
                TextColumn("{task.fields[score]}"),
                TimeElapsedColumn(),
                console=Console(file=self._stream),
            )
            self._rich.__enter__()
            self._task = self._rich.add_task(
                "train", total=self.epochs, sps=0.0, reward=0.0, stats=0.0, score=""
            )
        return self

    def update(self, epoch: int, sps: float, reward: float, stats_frac: float) -> None:
        """Shows epoch ``epoch``'s figures."""
        if self._quiet:
            return
        if self._rich is not None:
            score = "" if self._score is None else f"eval {self._score:.2f}"
            self._rich.update(
                self._task, completed=epoch, sps=sps, reward=reward, stats=stats_frac, score=score
            )
        else:
            line = epoch_line(epoch, self.epochs, sps, reward, stats_frac, self._score)
            print(line, file=self._stream, flush=True)

    def eval_score(self, score: float) -> None:
        """Shows ``score`` from now on."""
        self._score = score

    def log(self) -> Callable[[str], None]:
        """A function printing a line above the live display (or to the stream)."""
        if self._rich is not None:
            return lambda line: self._rich.console.print(line, highlight=False)
        return lambda line: print(line, file=self._stream, flush=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._rich is not None:
            self._rich.__exit__(exc_type, exc, tb)
            self._rich = None


__all__ = ["ProgressDisplay", "epoch_line"]
