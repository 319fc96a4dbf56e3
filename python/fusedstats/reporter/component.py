"""A minimal trainer component: an epoch interval, a context, and do-nothing hooks."""

from __future__ import annotations

from typing import Any


class TrainerComponent:
    """Something a trainer calls at every step and epoch, every ``epoch_interval`` epochs.

    Example:
        >>> c = TrainerComponent(epoch_interval=3)
        >>> [e for e in range(10) if c.should_handle_epoch(e)]
        [0, 3, 6, 9]
        >>> c.should_handle_epoch(7, prev=5), c.should_handle_epoch(8, prev=6)
        (True, False)
    """

    def __init__(self, epoch_interval: int = 1) -> None:
        self.epoch_interval = epoch_interval
        self._context: Any = None

    @property
    def context(self) -> Any:
        """The trainer context given to :meth:`register` (None before)."""
        return self._context

    def register(self, context: Any) -> None:
        """Keeps the trainer context the hooks read from."""
        self._context = context

    def should_handle_epoch(self, epoch: int, prev: int | None = None) -> bool:
        """Whether an interval boundary lies in ``(prev, epoch]``: never when
        ``epoch_interval <= 0``, else ``epoch // interval > prev // interval`` with
        ``prev = epoch - 1`` unless given (so a trainer that skips epochs still
        reports once per boundary crossed)."""
        interval = self.epoch_interval
        if interval <= 0:
            return False
        if prev is None:
            prev = epoch - 1
        return epoch // interval > prev // interval

    def on_step(self, infos: Any) -> None:
        """Called with the environment infos of every rollout step."""

    def on_epoch_end(self, epoch: int) -> None:
        """Called at the end of an epoch this component handles."""

    def on_training_complete(self) -> None:
        """Called once when training ends normally."""

    def on_failure(self) -> None:
        """Called once when training ends with an error."""
