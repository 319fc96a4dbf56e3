"""``fusedstats.optimizer_stats``: statistics of an optimizer's state, one fused pass."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..kernels.api import tensor_stats
from ..kernels.columns import COLUMN_INDEX, FIELDS, NUM_COLUMNS

_ADDED = ("numel", "n_nan", "n_inf", "n_zero", "n_finite", "sum", "l1", "n_dormant_rows")


def merge_rows(rows: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """One ``tensor_stats`` row for the union of the tensors whose rows are ``rows``
    (``[k, NUM_COLUMNS]`` float64, host): counts and sums added, extremes of the
    extremes, and the mean and variance by Chan's formula from each row's count, mean
    and population variance (M2 = n · var_pop): exact merges, not means of means.

    Example:
        >>> import numpy as np, fusedstats
        >>> a, b = np.array([1.0, 2.0]), np.array([3.0, 4.0, 5.0])
        >>> rows = fusedstats.tensor_stats([a, b]).host()
        >>> merged = merge_rows(rows[:2])
        >>> bool(np.allclose(merged, rows[2])), float(merged[COLUMN_INDEX["var"]])
        (True, 2.5)
    """
    c = COLUMN_INDEX
    out = np.full(NUM_COLUMNS, math.nan)
    for name in _ADDED:
        out[c[name]] = float(rows[:, c[name]].sum()) if len(rows) else 0.0
    norms = rows[:, c["norm"]] if len(rows) else np.zeros(0)
    top = float(norms.max()) if norms.size else 0.0
    # Scaled so that norms near 1e200 do not overflow when squared.
    if 0 < top < math.inf:
        out[c["norm"]] = top * math.sqrt(float(((norms / top) ** 2).sum()))
    else:
        out[c["norm"]] = top
    counts = rows[:, c["n_finite"]] if len(rows) else np.zeros(0)
    some = rows[counts > 0]
    n = float(counts.sum())
    if n == 0:
        return out
    n_i = some[:, c["n_finite"]]
    mean_i = some[:, c["mean"]]
    mean = float((n_i * mean_i).sum() / n)
    if not math.isfinite(mean):  # n_i * mean_i overflowed: weigh the means instead
        mean = float(((n_i / n) * mean_i).sum())
    m2 = float((n_i * some[:, c["var_pop"]]).sum() + (n_i * (mean_i - mean) ** 2).sum())
    out[c["mean"]] = mean
    out[c["var_pop"]] = m2 / n
    if n >= 2:
        out[c["var"]] = m2 / (n - 1)
        out[c["std"]] = math.sqrt(m2 / (n - 1))
    out[c["min"]] = float(some[:, c["min"]].min())
    out[c["max"]] = float(some[:, c["max"]].max())
    out[c["abs_max"]] = float(some[:, c["abs_max"]].max())
    return out


def _tensors_in(value: Any, torch: Any, path: str = "") -> list[tuple[str, Any]]:
    """(suffix, tensor) of the state tensors in one state value: the value itself, or
    the tensors of a list/tuple (LBFGS keeps lists of directions)."""
    if isinstance(value, torch.Tensor):
        return [(path, value)]
    if isinstance(value, (list, tuple)):
        out = []
        for i, v in enumerate(value):
            out.extend(_tensors_in(v, torch, f"{path}[{i}]"))
        return out
    return []


def _param_names(optimizer: Any, model: Any) -> dict[int, str]:
    """id(parameter) -> name: the param groups' ``param_names`` (optimizers built from
    ``named_parameters()``), else ``model.named_parameters()``, else ``<group>.<index>``."""
    names: dict[int, str] = {}
    if model is not None:
        names = {id(p): n for n, p in model.named_parameters()}
    for g, group in enumerate(optimizer.param_groups):
        given = group.get("param_names")
        for i, p in enumerate(group["params"]):
            if given is not None and i < len(given):
                names[id(p)] = str(given[i])
            names.setdefault(id(p), f"{g}.{i}")
    return names


def state_tensors(optimizer: Any, model: Any = None) -> list[tuple[str, str, Any]]:
    """(kind, parameter name, tensor) of every state tensor the optimizer keeps, in
    param-group order: floating-point (complex ones as real pairs) tensors of at least
    one dim. Scalars (``step``, ASGD's ``eta`` and ``mu``) are bookkeeping, left out.

    Example:
        >>> import torch
        >>> layer = torch.nn.Linear(2, 1)
        >>> opt = torch.optim.Adam(layer.parameters())
        >>> layer(torch.ones(1, 2)).sum().backward(); opt.step()
        >>> [f"{kind}/{name}" for kind, name, _ in state_tensors(opt, layer)]
        ['exp_avg/weight', 'exp_avg_sq/weight', 'exp_avg/bias', 'exp_avg_sq/bias']
    """
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(optimizer, "param_groups") or not hasattr(optimizer, "state"):
        raise TypeError(
            f"optimizer_stats needs a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    names = _param_names(optimizer, model)
    out = []
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p)  # .get: the state is a defaultdict
            if not state:
                continue
            for kind, value in state.items():
                for suffix, t in _tensors_in(value, torch):
                    if t.dim() == 0:
                        continue
                    real = torch.view_as_real(t) if t.is_complex() else t
                    if real.is_floating_point():
                        out.append((str(kind), names[id(p)] + suffix, real))
    return out


def optimizer_stats(
    optimizer: Any,
    prefix: str = "optim/",
    per_parameter: bool = False,
    *,
    model: Any = None,
) -> dict[str, float]:
    """Statistics of every state tensor of ``optimizer``, per kind and over all.

    Reads ``optimizer.state`` (so any ``torch.optim`` optimizer works): Adam/AdamW's
    ``exp_avg`` and ``exp_avg_sq``, SGD's ``momentum_buffer``, Adagrad's ``sum``, ...
    One fused ``tensor_stats`` pass over all state tensors (one per device when the
    state is on several) gives per-tensor rows; each kind's statistics are the exact
    merge of its tensors' rows (Chan's formula), the global ones the kernel's.

    Keys: ``<prefix><field>`` over every state tensor, ``<prefix><kind>/<field>``
    per kind, and with ``per_parameter`` ``<prefix><kind>/<field>/<parameter>``, for
    the fields of ``tensor_stats`` (``norm``, ``mean``, ``abs_max``, ``n_nan``,
    ``n_inf``, ...). Parameter names come from the param groups' ``param_names``
    (optimizers built from ``named_parameters()``), else from ``model``, else are
    ``<group>.<index>``. ``{}`` when the optimizer holds no state tensor (before its
    first step, or SGD without momentum). Reading the result is a host sync.

    Example:
        >>> import torch, fusedstats
        >>> layer = torch.nn.Linear(3, 2)
        >>> opt = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
        >>> fusedstats.optimizer_stats(opt)
        {}
        >>> layer(torch.ones(4, 3)).sum().backward(); opt.step()
        >>> s = fusedstats.optimizer_stats(opt, per_parameter=True, model=layer)
        >>> s["optim/momentum_buffer/numel"], s["optim/numel"], s["optim/momentum_buffer/norm/bias"]
        (8.0, 8.0, 5.656854249492381)
    """
    found = state_tensors(optimizer, model)
    if not found:
        return {}
    by_device: dict[Any, list[int]] = {}
    for i, (_, _, t) in enumerate(found):
        by_device.setdefault(t.device, []).append(i)
    rows = np.empty((len(found), NUM_COLUMNS))
    globals_ = []
    for indices in by_device.values():
        stats = tensor_stats(
            [found[i][2] for i in indices], [f"{found[i][0]}/{found[i][1]}" for i in indices]
        )
        host = stats.host()
        rows[indices] = host[:-1]
        globals_.append(host[-1])
    everything = globals_[0] if len(globals_) == 1 else merge_rows(np.stack(globals_))
    out = _keyed(everything, prefix)
    kinds: dict[str, list[int]] = {}
    for i, (kind, _, _) in enumerate(found):
        kinds.setdefault(kind, []).append(i)
    for kind, indices in kinds.items():
        out.update(_keyed(merge_rows(rows[indices]), f"{prefix}{kind}/"))
    if per_parameter:
        for i, (kind, name, _) in enumerate(found):
            out.update(_keyed(rows[i], f"{prefix}{kind}/", f"/{name}"))
    return out


def _keyed(
    row: Sequence[float] | np.ndarray[Any, Any], prefix: str, suffix: str = ""
) -> dict[str, float]:
    return {f"{prefix}{f}{suffix}": float(row[COLUMN_INDEX[f]]) for f in FIELDS}


__all__ = ["merge_rows", "optimizer_stats", "state_tensors"]
