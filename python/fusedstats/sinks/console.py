"""ConsoleSink: one short summary line per payload, for a human watching the run."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

from .base import to_float

DEFAULT_KEYS = ("overview/sps", "overview/reward", "losses/policy_loss", "metric/agent_step")
_UNITS = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def compact(value: float) -> str:
    """A number in a few characters: 4 significant digits, k/M/G/T from 10,000 on.

    Example:
        >>> [compact(v) for v in (0.51234, -0.0123, 1200.0, 12345.0, 999_999.0, float("nan"))]
        ['0.5123', '-0.0123', '1200', '12.3k', '1M', 'nan']
    """
    if not math.isfinite(value):
        return str(value)
    if abs(value) < 1e4:
        return f"{value:.4g}"
    rounded = float(f"{value:.3g}")  # round first: 999,999 is "1M", not "1e+03k"
    scale, suffix = next((s, u) for s, u in _UNITS if abs(rounded) >= s)
    return f"{rounded / scale:g}{suffix}"


class ConsoleSink:
    """Writes ``epoch E | step S | <key> <value> | ...`` for the chosen keys present.

    Each key is shown by its last path part (``overview/sps`` as ``sps``) unless two
    chosen keys share it. Lines go to ``stream``, by default the ``sys.stderr`` of the
    moment of writing (so redirections and pytest's capture see them) rather than
    ``logging``: a console summary the user asked for should not hang on logging's
    level configuration. The stream is flushed by :meth:`flush`, never closed.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> sink = ConsoleSink(stream=out)
        >>> payload = {"overview/sps": 12345.0, "overview/reward": 0.51234, "other": 1.0}
        >>> sink.write(payload, step=1200, epoch=3)
        >>> out.getvalue()
        'epoch 3 | step 1,200 | sps 12.3k | reward 0.5123\\n'
    """

    name = "console"

    def __init__(self, keys: Sequence[str] = DEFAULT_KEYS, stream: TextIO | None = None) -> None:
        self.keys = tuple(keys)
        self.stream = stream
        short = [key.rsplit("/", 1)[-1] for key in self.keys]
        self._labels = {
            key: label if short.count(label) == 1 else key
            for key, label in zip(self.keys, short, strict=True)
        }

    def format(self, payload: Mapping[str, float], *, step: int, epoch: int) -> str:
        """The line :meth:`write` writes, without its newline."""
        parts = [f"epoch {int(epoch)}", f"step {int(step):,}"]
        for key in self.keys:
            value = to_float(payload.get(key))
            if value is not None:
                parts.append(f"{self._labels[key]} {compact(value)}")
        return " | ".join(parts)

    def write(self, payload: Mapping[str, float], *, step: int, epoch: int) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        stream.write(self.format(payload, step=step, epoch=epoch) + "\n")

    def flush(self) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        stream.flush()

    def close(self) -> None:
        self.flush()
