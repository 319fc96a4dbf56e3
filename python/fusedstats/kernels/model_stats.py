"""Gradient and weight statistics of a model, Metta's keys, one fused pass."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

from .api import _stats
from .columns import COLUMN_INDEX, FIELDS

# Metta reports the unbiased variance as "variance"; every other field keeps its name.
_METTA_NAMES = {"var": "variance"}


def _named_parameters(model_or_named: Any) -> list[tuple[str, Any]]:
    if hasattr(model_or_named, "named_parameters"):
        return list(model_or_named.named_parameters())
    if isinstance(model_or_named, Mapping):
        return list(model_or_named.items())
    if isinstance(model_or_named, Iterable):
        pairs = list(model_or_named)
        for i, p in enumerate(pairs):
            if not (isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str)):
                raise TypeError(
                    f"item {i} is a {type(p).__name__}; expected (name, parameter) pairs "
                    "as given by model.named_parameters()"
                )
        return pairs
    raise TypeError(
        f"expected a torch.nn.Module, a dict of parameters or (name, parameter) pairs, "
        f"got {type(model_or_named).__name__}"
    )


def _check_tensor(name: str, value: Any, what: str) -> None:
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(value, torch.Tensor):
        raise TypeError(f"parameter {name!r} is a {type(value).__name__}; expected a {what}")


def _keyed(row: list[float], prefix: str, suffix: str = "") -> dict[str, float]:
    return {f"{prefix}{_METTA_NAMES.get(f, f)}{suffix}": row[COLUMN_INDEX[f]] for f in FIELDS}


def grad_stats(
    model_or_named_parameters: Any,
    per_parameter: bool = False,
    prefix: str = "grad/",
) -> dict[str, float]:
    """Statistics of all gradients of a model, in one fused pass.

    Keys follow Metta: ``grad/mean``, ``grad/variance``, ``grad/norm`` and the other
    fields (``grad/abs_max``, ``grad/n_nan``, ...); with ``per_parameter``, also
    ``grad/<field>/<parameter name>``. Parameters without a gradient are skipped; with
    no gradient at all the result is ``{}``.

    Example:
        >>> import torch, fusedstats
        >>> layer = torch.nn.Linear(3, 2)
        >>> layer(torch.ones(4, 3)).sum().backward()
        >>> g = fusedstats.grad_stats(layer)
        >>> g["grad/numel"], g["grad/norm"] > 0
        (8.0, True)
    """
    named = []
    for n, p in _named_parameters(model_or_named_parameters):
        _check_tensor(n, p, "torch.Tensor with .grad")
        if p.grad is not None:
            named.append((n, p.grad))
    if not named:
        return {}
    names = [n for n, _ in named]
    stats = _stats([g for _, g in named], names, None, 0.0, None)
    host = stats.host()
    out = _keyed(host[-1].tolist(), prefix)
    if per_parameter:
        for i, name in enumerate(names):
            out.update(_keyed(host[i].tolist(), prefix, f"/{name}"))
    return out


def weight_stats(
    model: Any,
    prefix: str = "weights/",
    dormant_threshold: float = 1e-6,
    per_parameter: bool = False,
) -> dict[str, float]:
    """Statistics of all parameter values, plus the dormant-neuron fraction per layer.

    Global keys ``weights/<field>`` (``var`` as ``variance``). For every 2-D weight
    ``[out, in]``, ``weights/dormant_frac/<name>`` is the fraction of output rows
    whose mean ``|w|`` (over finite entries, divided by ``in``) is below
    ``dormant_threshold``, computed in the same pass; ``weights/dormant_frac`` is the
    fraction over all rows of all 2-D weights. With ``per_parameter``, also
    ``weights/<field>/<name>``.

    Example:
        >>> import torch, fusedstats
        >>> layer = torch.nn.Linear(4, 3)
        >>> with torch.no_grad():
        ...     _ = layer.weight[0].zero_()
        >>> fusedstats.weight_stats(layer)["weights/dormant_frac/weight"]
        0.3333333333333333
    """
    named = _named_parameters(model)
    if not named:
        return {}
    for n, p in named:
        _check_tensor(n, p, "torch.Tensor")
    names = [n for n, _ in named]
    values = [p.detach() for _, p in named]
    row_lens = [int(v.shape[1]) if v.dim() == 2 and v.numel() > 0 else 0 for v in values]
    stats = _stats(values, names, row_lens, float(dormant_threshold), None)
    host = stats.host()
    out = _keyed(host[-1].tolist(), prefix)
    dormant_col = COLUMN_INDEX["n_dormant_rows"]
    total_rows = 0
    total_dormant = 0.0
    for i, (name, v) in enumerate(zip(names, values, strict=True)):
        if row_lens[i] > 0:
            rows = int(v.shape[0])
            dormant = float(host[i, dormant_col])
            out[f"{prefix}dormant_frac/{name}"] = dormant / rows
            total_rows += rows
            total_dormant += dormant
        if per_parameter:
            out.update(_keyed(host[i].tolist(), prefix, f"/{name}"))
    if total_rows:
        out[f"{prefix}dormant_frac"] = total_dormant / total_rows
    return out
