"""What a logged value may be, and plain-data conversion of values and results."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import numpy as np

from . import gather
from .ops import EMA, MAX, MIN, SUM

#: The largest python int that converts to a float (2**1024 - 2**970 rounds to inf).
FLOAT_INT_MAX = 2**1024 - 2**970 - 1

#: ``[torch.Tensor]`` once a tensor was logged: log_value's fast path compares classes
#: with it (``[None]`` before, so that torch is never imported here).
TENSOR_CLASS: list[Any] = [None]


def _torch() -> Any | None:
    return sys.modules.get("torch")


def is_tensor(value: Any) -> bool:
    torch = _torch()
    return torch is not None and isinstance(value, torch.Tensor)


def normalize(value: Any, any_object: bool) -> tuple[Any, bool]:
    """(value to store, is a torch tensor) for a pushed value.

    Numbers become python int/float (bool and numpy integers → int), 1-element numpy
    arrays their element. A one-element CPU tensor becomes its python float now (read
    as a float would be: torch's checked scalar read, ~0.2 µs, so that reduce runs at
    float speed); other one-element tensors (CUDA, ...) are detached and kept on their
    device until a reduce gathers them (``gather.py``); lists keep any tensor as it
    is. Anything else is stored only in lists (``any_object``), else TypeError; an int
    no float can hold (beyond ±1.8e308), only in lists too, else ValueError.
    """
    if value.__class__ is TENSOR_CLASS[0]:
        return _tensor(value, any_object)
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
        TENSOR_CLASS[0] = torch.Tensor
        return _tensor(value, any_object)
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "biuf":
        return normalize(value.reshape(()).item(), any_object)
    if any_object:
        return value, False
    raise TypeError(f"expected a number or a one-element tensor, got {type(value).__name__}")


def _tensor(value: Any, any_object: bool) -> tuple[Any, bool]:
    if any_object:
        return value.detach(), True  # a list's item, as it is
    if value.is_cpu:
        try:
            x = value.item()
        except Exception as err:  # several elements, or no data (meta, fake)
            raise TypeError(_unreadable(value, err)) from None
        if type(x) is complex:
            raise TypeError("complex tensors cannot be reduced")
        return float(x), False
    if value.numel() != 1:
        raise TypeError(_unreadable(value, None))
    if value.is_complex():
        raise TypeError("complex tensors cannot be reduced")
    # A tensor that needs no grad is in no graph: kept as it is (detach costs 0.5 µs).
    return (value.detach() if value.requires_grad else value), True


def _unreadable(value: Any, err: Exception | None) -> str:
    n = value.numel()
    if n != 1:
        return (
            f"a tensor of {n} elements cannot be reduced; log one-element tensors (or use "
            "reduce=None to keep a list)"
        )
    return f"this tensor's value cannot be read: {err}"


def tensors_to_host(values: list[Any]) -> list[Any]:
    """``values`` with every one-element torch tensor replaced by a python float: each
    device's in one native gather (``gather.py``); other tensors (lists of
    many-element tensors) stay as they are."""
    return gather.to_host(values)


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
    x = gather.on_device(values)  # one gather launch, no host sync
    if x is None:
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
