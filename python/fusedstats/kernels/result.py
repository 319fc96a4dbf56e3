"""TensorStats: the result of one fused pass, kept on device until read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .columns import EXTENDED_COLUMN_INDEX, EXTENDED_FIELDS, FIELDS


class TensorStats:
    """Statistics of a list of tensors, held in one ``[n_tensors + 1, n_columns]`` buffer.

    Row ``i`` holds tensor ``i``; the **last row** holds all tensors together
    ("global"). Columns are :data:`fusedstats.COLUMNS`. The buffer lives on the
    inputs' device; reading a value (``global_``, ``per_tensor``, ``to_dict``)
    copies it to the host once — the only host sync — and later reads reuse that copy.

    Example:
        >>> import numpy as np, fusedstats
        >>> s = fusedstats.tensor_stats([np.array([3.0, 4.0]), np.array([np.nan, 0.0])],
        ...                             names=["a", "b"])
        >>> s.global_["norm"], s.global_["n_nan"], s.per_tensor["b"]["n_zero"]
        (5.0, 1.0, 1.0)
        >>> sorted(s.to_dict(prefix="grad/", per_tensor=True))[:2]
        ['grad/abs_max', 'grad/abs_max/a']
    """

    __slots__ = ("_buffer", "_event", "_fields", "_hist", "_host", "extended", "names", "path")

    def __init__(
        self,
        buffer: Any,
        names: Sequence[str],
        path: str,
        *,
        extended: bool = False,
        histogram: Any = None,
        event: Any = None,
    ) -> None:
        self._buffer = buffer
        self._hist = histogram
        # CUDA: recorded on the launch stream; a read waits for it, whatever stream is
        # current then (reading on another stream could copy rows not yet written).
        self._event = event
        self._host: np.ndarray[Any, np.dtype[np.float64]] | None = None
        self.names: tuple[str, ...] = tuple(names)
        #: Which kernel produced the buffer: "cpu", "cuda", "torch" (CUDA tensors
        #: without a usable fusedstats._cuda) or "sharded" (DTensors, merged across ranks).
        self.path = path
        #: Whether the extended columns (and the exponent histogram) were computed.
        self.extended = extended
        self._fields = (*FIELDS, *EXTENDED_FIELDS) if extended else FIELDS

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"TensorStats(n_tensors={len(self.names)}, path={self.path!r})"

    def as_tensor(self) -> Any:
        """The raw buffer (torch tensor on the inputs' device, or numpy array). No sync."""
        return self._buffer

    @property
    def exponent_histogram(self) -> Any:
        """``[n_tensors + 1, HIST_BINS]`` int64 counts of finite elements by
        floor(log2|x|), on the inputs' device, last row global (extended pass only;
        bins in :mod:`fusedstats.kernels.columns`). No sync."""
        if self._hist is None:
            raise ValueError(
                "the exponent histogram is computed by the extended pass: extended=True"
            )
        return self._hist

    def host(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """The buffer as a float64 numpy array (copied from the device once)."""
        if self._host is None:
            buf = self._buffer
            if isinstance(buf, np.ndarray):
                self._host = buf
            else:
                if self._event is not None:
                    self._event.synchronize()
                self._host = buf.detach().cpu().numpy()
        return self._host

    def _row(self, i: int) -> dict[str, float]:
        values = self.host()[i].tolist()
        return {name: values[EXTENDED_COLUMN_INDEX[name]] for name in self._fields}

    @property
    def global_(self) -> dict[str, float]:
        """All tensors together: field name -> python float."""
        return self._row(len(self.names))

    @property
    def per_tensor(self) -> dict[str, dict[str, float]]:
        """Tensor name -> field name -> python float, in input order."""
        return {name: self._row(i) for i, name in enumerate(self.names)}

    def first_nonfinite(self) -> str | None:
        """The name of the first tensor holding a NaN or Inf, or None (reads the buffer)."""
        host = self.host()
        nan, inf = EXTENDED_COLUMN_INDEX["n_nan"], EXTENDED_COLUMN_INDEX["n_inf"]
        for i, name in enumerate(self.names):
            if host[i, nan] + host[i, inf] > 0:
                return name
        return None

    def to_dict(self, prefix: str = "", per_tensor: bool = False) -> dict[str, float]:
        """Flat dict: ``{prefix}{field}`` for the global row and, with ``per_tensor``,
        ``{prefix}{field}/{name}`` for every tensor."""
        out = {f"{prefix}{k}": v for k, v in self.global_.items()}
        if per_tensor:
            for name, row in self.per_tensor.items():
                for k, v in row.items():
                    out[f"{prefix}{k}/{name}"] = v
        return out
