"""What a logged value may be, and plain-data conversion of values and results."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import numpy as np

from .ops import EMA, MAX, MIN, SUM

#: The largest python int that converts to a float (2**1024 - 2**970 rounds to inf).
FLOAT_INT_MAX = 2**1024 - 2**970 - 1


def _torch() -> Any | None:
    return sys.modules.get("torch")


def is_tensor(value: Any) -> bool:
    torch = _torch()
    return torch is not None and isinstance(value, torch.Tensor)


def normalize(value: Any, any_object: bool) -> tuple[Any, bool]:
    """(value to store, is a torch tensor) for a pushed value.

    Numbers become python int/float (bool and numpy integers → int), 1-element numpy
    arrays their element, torch tensors are detached and kept on their device (one
    element each, except in lists). Anything else is stored only in lists
    (``any_object``), else TypeError; an int no float can hold (beyond ±1.8e308), only
    in lists too, else ValueError.
    """
    if isinstance(value, (bool, np.bool_)):
        return int(value), False
    if isinstance(value, (int, np.integer)):
        value = int(value)
        if not any_object and not -FLOAT_INT_MAX <= value <= FLOAT_INT_MAX:
            raise ValueError(
                f"an int of {len(str(abs(value)))} digits cannot be reduced: no float holds "
                "it (beyond ±1.8e308); log it as a float, or use reduce=None to keep a list"
            )
        return value, False
    if isinstance(value, (float, np.floating)):
        return float(value), False
    torch = _torch()
    if torch is not None and isinstance(value, torch.Tensor):
        if not any_object and value.numel() != 1:
            raise TypeError(
                f"a tensor of {value.numel()} elements cannot be reduced; log one-element "
                "tensors (or use reduce=None to keep a list)"
            )
        if value.is_complex():
            raise TypeError("complex tensors cannot be reduced")
        return value.detach(), True
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "biuf":
        return normalize(value.reshape(()).item(), any_object)
    if any_object:
        return value, False
    raise TypeError(f"expected a number or a one-element tensor, got {type(value).__name__}")


def tensors_to_host(values: list[Any]) -> list[Any]:
    """``values`` with every one-element torch tensor replaced by a python float.

    All tensors on one device move to the host in one transfer (a stack on the
    device, then one copy); other tensors (lists of many-element tensors) stay as they
    are.
    """
    torch = _torch()
    if torch is None:
        return values
    by_device: dict[Any, list[int]] = {}
    for i, v in enumerate(values):
        if isinstance(v, torch.Tensor) and v.numel() == 1:
            by_device.setdefault(v.device, []).append(i)
    if not by_device:
        return values
    out = list(values)
    for idx in by_device.values():
        stacked = torch.stack([values[i].reshape(()).to(torch.float64) for i in idx])
        for i, x in zip(idx, stacked.cpu().tolist(), strict=True):
            out[i] = x
    return out


def plain(x: Any) -> Any:
    """A reduce result or value as JSON/pickle/torch.load-safe plain data."""
    if isinstance(x, dict):
        return {"__percentiles__": [[plain(k), plain(v)] for k, v in x.items()]}
    if isinstance(x, list):
        return plain_list(x)
    if is_tensor(x):
        return tensors_to_host([x])[0] if x.numel() == 1 else x.detach().cpu().tolist()
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x


def plain_list(values: Iterable[Any]) -> list[Any]:
    return [plain(v) for v in tensors_to_host(list(values))]


def unplain(x: Any) -> Any:
    """Inverse of :func:`plain` for reduce results."""
    if isinstance(x, dict) and "__percentiles__" in x:
        return {k: v for k, v in x["__percentiles__"]}
    return x


def fold_on_device(op: int, ema_coeff: float | None, values: list[Any]) -> Any:
    """The fold (EMA, sum, min or max; op codes of ``stats``) of ``values`` as one
    0-d float64 tensor, computed on their device with no host sync; None unless
    every value is a one-element tensor on one device.

    The EMA is the closed form ``(1-c)^(n-1) x0 + sum_i c (1-c)^(n-1-i) x_i``: the same
    value as the step-by-step fold up to rounding (a NaN still poisons it).
    """
    torch = _torch()
    if torch is None or not values or op not in (EMA, SUM, MIN, MAX):
        return None
    first = values[0]
    if not all(isinstance(v, torch.Tensor) and v.numel() == 1 for v in values):
        return None
    if any(v.device != first.device for v in values):
        return None
    x = torch.stack([v.reshape(()).to(torch.float64) for v in values])
    nan = torch.full((), float("nan"), dtype=torch.float64, device=x.device)
    if op == EMA:
        c = float(ema_coeff or 0.0)
        n = x.numel()
        powers = torch.arange(n - 1, -1, -1, dtype=torch.float64, device=x.device)
        weights = c * torch.pow(torch.full_like(powers, 1.0 - c), powers)
        weights[0] = (1.0 - c) ** (n - 1)
        return (weights * x).sum()
    if op == SUM:
        return torch.nansum(x)  # all NaN: 0, as numpy's nansum
    missing = torch.isnan(x)
    all_nan = missing.all()
    fill = float("inf") if op == MIN else float("-inf")
    picked = torch.where(missing, torch.full_like(x, fill), x)
    return torch.where(all_nan, nan, picked.min() if op == MIN else picked.max())
