"""TensorStats: the result of one fused pass, kept on device until read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .columns import COLUMN_INDEX, FIELDS


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

    __slots__ = ("_buffer", "_host", "names", "path")

    def __init__(self, buffer: Any, names: Sequence[str], path: str) -> None:
        self._buffer = buffer
        self._host: np.ndarray[Any, np.dtype[np.float64]] | None = None
        self.names: tuple[str, ...] = tuple(names)
        #: Which kernel produced the buffer: "cpu", "cuda" or "reference".
        self.path = path

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"TensorStats(n_tensors={len(self.names)}, path={self.path!r})"

    def as_tensor(self) -> Any:
        """The raw buffer (torch tensor on the inputs' device, or numpy array). No sync."""
        return self._buffer

    def host(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """The buffer as a float64 numpy array (copied from the device once)."""
        if self._host is None:
            buf = self._buffer
            if isinstance(buf, np.ndarray):
                self._host = buf
            else:
                self._host = buf.detach().cpu().numpy()
        return self._host

    def _row(self, i: int) -> dict[str, float]:
        values = self.host()[i].tolist()
        return {name: values[COLUMN_INDEX[name]] for name in FIELDS}

    @property
    def global_(self) -> dict[str, float]:
        """All tensors together: field name -> python float."""
        return self._row(len(self.names))

    @property
    def per_tensor(self) -> dict[str, dict[str, float]]:
        """Tensor name -> field name -> python float, in input order."""
        return {name: self._row(i) for i, name in enumerate(self.names)}

    def to_dict(self, prefix: str = "", per_tensor: bool = False) -> dict[str, float]:
        """Flat dict: ``{prefix}{field}`` for the global row and, with ``per_tensor``,
        ``{prefix}{field}/{name}`` for every tensor."""
        out = {f"{prefix}{k}": v for k, v in self.global_.items()}
        if per_tensor:
            for name, row in self.per_tensor.items():
                for k, v in row.items():
                    out[f"{prefix}{k}/{name}"] = v
        return out
