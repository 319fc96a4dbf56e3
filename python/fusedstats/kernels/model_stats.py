"""Gradient and weight statistics of a model, Metta's keys, one fused pass."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

from .api import _stats
from .columns import COLUMN_INDEX, EXTENDED_COLUMN_INDEX, EXTENDED_FIELDS, FIELDS
from .result import TensorStats

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


def _rows(stats: TensorStats) -> list[Any]:
    """The buffer's rows: lists of python floats (one host sync), or, inside
    torch.compile, rows of 0-d float64 tensors (no sync, no graph break)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.compiler.is_compiling():
        buf = stats.as_tensor()
        return [buf[i] for i in range(buf.shape[0])]
    return stats.host().tolist()  # type: ignore[no-any-return]


def metta_name(field: str) -> str:
    """A field's name in Metta's payload keys (``var`` is ``variance``)."""
    return _METTA_NAMES.get(field, field)


def _keyed(row: Any, prefix: str, suffix: str = "", extended: bool = False) -> dict[str, Any]:
    fields = (*FIELDS, *EXTENDED_FIELDS) if extended else FIELDS
    return {
        f"{prefix}{_METTA_NAMES.get(f, f)}{suffix}": row[EXTENDED_COLUMN_INDEX[f]] for f in fields
    }


def _gradients(model_or_named_parameters: Any) -> list[tuple[str, Any]]:
    named = []
    for n, p in _named_parameters(model_or_named_parameters):
        _check_tensor(n, p, "torch.Tensor with .grad")
        if p.grad is not None:
            named.append((n, p.grad))
    return named


def grad_tensor_stats(
    model_or_named_parameters: Any, *, extended: bool = False
) -> TensorStats | None:
    """The fused pass over every gradient, as rows named by parameter (no host sync
    until read): what :func:`grad_stats` turns into keys, for callers that make keys of
    their own. None when no parameter has a gradient.

    Example:
        >>> import torch
        >>> layer = torch.nn.Linear(2, 1)
        >>> layer(torch.ones(3, 2)).sum().backward()
        >>> stats = grad_tensor_stats(layer)
        >>> stats.names, stats.per_tensor["bias"]["norm"]
        (('weight', 'bias'), 3.0)
    """
    named = _gradients(model_or_named_parameters)
    if not named:
        return None
    return _stats([g for _, g in named], [n for n, _ in named], None, 0.0, None, extended)


def _set_found_inf(stats: TensorStats, found_inf: Any) -> None:
    """found_inf <- 1.0 if the global row counts a NaN or Inf, else 0.0; on the
    buffer's device, no host sync (the flag a fused optimizer reads to skip a step)."""
    torch = sys.modules.get("torch")
    if (
        torch is None
        or not isinstance(found_inf, torch.Tensor)
        or not found_inf.is_floating_point()
    ):
        raise TypeError(
            "found_inf must be a floating-point torch.Tensor (e.g. "
            f"torch.zeros((), device=...)), got {type(found_inf).__name__}"
        )
    buf = stats.as_tensor()
    if not isinstance(buf, torch.Tensor):
        raise TypeError("found_inf needs torch gradients")
    last = buf[-1]
    bad = last[COLUMN_INDEX["n_nan"]] + last[COLUMN_INDEX["n_inf"]]
    found_inf.copy_((bad > 0).to(found_inf.dtype).expand_as(found_inf))


def gate_nonfinite(
    model_or_named_parameters: Any, found_inf: Any, *, extended: bool = False
) -> TensorStats | None:
    """Writes the step gate of a fused optimizer, with no host sync.

    One fused pass over all gradients; ``found_inf`` (a float tensor on their
    device, e.g. ``torch.zeros((), device=dev)``) becomes 1.0 if any gradient holds a
    NaN or Inf, else 0.0 — on the device. Give the same tensor to a fused optimizer
    (``opt.found_inf = found_inf`` for ``torch.optim.AdamW(fused=True)``, which reads
    that attribute as it does ``torch.amp.GradScaler``'s; it must be 0-d there, the
    shape of the optimizer's step counters) and it skips the step on the device. The returned
    TensorStats is read later (the only sync); ``first_nonfinite()`` names the first
    parameter whose gradient was not finite. None when no parameter has a gradient
    (``found_inf`` is then set to 0).

    Example:
        >>> import torch, fusedstats
        >>> layer = torch.nn.Linear(2, 1)
        >>> layer(torch.ones(1, 2)).sum().backward()
        >>> layer.bias.grad[0] = float("nan")
        >>> flag = torch.zeros(())
        >>> stats = fusedstats.gate_nonfinite(layer, flag)
        >>> flag.item(), stats.first_nonfinite()
        (1.0, 'bias')
    """
    stats = grad_tensor_stats(model_or_named_parameters, extended=extended)
    if stats is None:
        found_inf.zero_()
        return None
    _set_found_inf(stats, found_inf)
    return stats


def grad_stats(
    model_or_named_parameters: Any,
    per_parameter: bool = False,
    prefix: str = "grad/",
    *,
    extended: bool = False,
    found_inf: Any = None,
) -> dict[str, float]:
    """Statistics of all gradients of a model, in one fused pass.

    Keys follow Metta: ``grad/mean``, ``grad/variance``, ``grad/norm`` and the other
    fields (``grad/abs_max``, ``grad/n_nan``, ...); with ``per_parameter``, also
    ``grad/<field>/<parameter name>``; with ``extended``, the extended fields too
    (``grad/kurtosis``, ``grad/underflow_e4m3``, ...). Parameters without a gradient
    are skipped; with no gradient at all the result is ``{}``. DTensor gradients
    (FSDP2) give the statistics of the full gradients on every rank (a collective).
    With ``found_inf``, the step gate is written on the device first (see
    :func:`gate_nonfinite`); building the returned dict is a host sync. Inside
    ``torch.compile`` the values are 0-d float64 tensors instead (no sync).

    Example:
        >>> import torch, fusedstats
        >>> layer = torch.nn.Linear(3, 2)
        >>> layer(torch.ones(4, 3)).sum().backward()
        >>> g = fusedstats.grad_stats(layer)
        >>> g["grad/numel"], g["grad/norm"] > 0
        (8.0, True)
    """
    stats = grad_tensor_stats(model_or_named_parameters, extended=extended)
    if stats is None:
        if found_inf is not None:
            found_inf.zero_()
        return {}
    if found_inf is not None:
        _set_found_inf(stats, found_inf)
    rows = _rows(stats)
    out = _keyed(rows[-1], prefix, extended=extended)
    if per_parameter:
        for i, name in enumerate(stats.names):
            out.update(_keyed(rows[i], prefix, f"/{name}", extended))
    return out


def weight_stats(
    model: Any,
    prefix: str = "weights/",
    dormant_threshold: float | None = 1e-6,
    per_parameter: bool = False,
    *,
    extended: bool = False,
) -> dict[str, float]:
    """Statistics of all parameter values, plus the dormant-neuron fraction per layer.

    Global keys ``weights/<field>`` (``var`` as ``variance``). For every 2-D weight
    ``[out, in]``, ``weights/dormant_frac/<name>`` is the fraction of output rows
    whose mean ``|w|`` (over finite entries, divided by ``in``) is below
    ``dormant_threshold``, computed in the same pass; ``weights/dormant_frac`` is the
    fraction over all rows of all 2-D weights (``dormant_threshold=None``: not
    counted). With ``per_parameter``, also ``weights/<field>/<name>``; with
    ``extended``, the extended fields. DTensor parameters (FSDP2) give the statistics
    of the full parameters on every rank; dormant rows of a weight sharded along its
    rows (``Shard(1)``) cannot be counted from shards and raise ValueError (pass
    ``dormant_threshold=None``).

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
    counting = dormant_threshold is not None
    row_lens = [
        int(v.shape[1]) if counting and v.dim() == 2 and v.numel() > 0 else 0 for v in values
    ]
    threshold = float(dormant_threshold) if dormant_threshold is not None else 0.0
    stats = _stats(values, names, row_lens, threshold, None, extended)
    rows = _rows(stats)
    out = _keyed(rows[-1], prefix, extended=extended)
    dormant_col = COLUMN_INDEX["n_dormant_rows"]
    total_rows = 0
    total_dormant: Any = 0.0
    for i, (name, v) in enumerate(zip(names, values, strict=True)):
        if row_lens[i] > 0:
            n_rows = int(v.shape[0])
            dormant = rows[i][dormant_col]
            out[f"{prefix}dormant_frac/{name}"] = dormant / n_rows
            total_rows += n_rows
            total_dormant = total_dormant + dormant
        if per_parameter:
            out.update(_keyed(rows[i], prefix, f"/{name}", extended))
    if total_rows:
        out[f"{prefix}dormant_frac"] = total_dormant / total_rows
    return out
