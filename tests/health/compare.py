"""Float64 references for the health tests: outputs captured by plain hooks, their
statistics by the pure-torch reference, and dormant fractions computed directly."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch
from tests.helpers import extended_mismatch, field_mismatch

from fusedstats import EXTENDED_FIELDS, FIELDS
from fusedstats.kernels import reference


class Capture:
    """Plain forward hooks that keep a float64 copy of every output of the named
    modules (and, with ``grads``, of the gradient flowing into it), call by call."""

    def __init__(self, model: torch.nn.Module, names: list[str], grads: bool = False) -> None:
        self.acts: dict[str, list[torch.Tensor]] = defaultdict(list)
        self.grads: dict[str, list[torch.Tensor]] = defaultdict(list)
        self.calls: dict[str, int] = defaultdict(int)
        modules = dict(model.named_modules())
        self._hooks = [
            modules[name].register_forward_hook(self._hook(name, grads)) for name in names
        ]

    def _hook(self, name: str, grads: bool) -> Any:
        def hook(module: Any, args: Any, out: torch.Tensor) -> None:
            self.calls[name] += 1
            self.acts[name].append(out.detach().clone())
            if grads and out.requires_grad:
                out.register_hook(lambda g: self.grads[name].append(g.detach().clone()))

        return hook

    def remove(self) -> None:
        for h in self._hooks:
            h.remove()


def expected(tensors: list[torch.Tensor], extended: bool = False) -> tuple[dict[str, float], Any]:
    """Reference fields (and exponent histogram) of all ``tensors`` together."""
    flat = [t.reshape(-1).double() for t in tensors]
    rows, hist = reference.stats_buffers([torch.cat(flat)], extended=extended)
    names = (*reference.COLUMNS, *EXTENDED_FIELDS) if extended else reference.COLUMNS
    row = dict(zip(names, rows[0].tolist(), strict=True))
    return row, (None if hist is None else hist[0].numpy())


def rtol_of(tensors: list[torch.Tensor]) -> float:
    return 1e-9 if all(t.dtype == torch.float64 for t in tensors) else 1e-6


#: Kurtosis tolerance scale for statistics merged over a module's calls and steps.
KURTOSIS_SCALE = 20.0


def assert_stats_match(
    stats: dict[str, float], base: str, tensors: list[torch.Tensor], extended: bool = False
) -> None:
    """``stats[base/<field>]`` against the reference of ``tensors``, every field."""
    want, _ = expected(tensors, extended)
    rtol = rtol_of(tensors)
    problems = []
    for f in FIELDS:
        why = field_mismatch(f, stats[f"{base}/{f}"], want, rtol)
        if why:
            problems.append(f"{base}/{f}: {why}")
    if extended:
        for f in EXTENDED_FIELDS:
            why = extended_mismatch(f, stats[f"{base}/{f}"], want[f], rtol, KURTOSIS_SCALE)
            if why:
                problems.append(f"{base}/{f}: {why}")
    assert not problems, "\n".join(problems)


def dormant_fraction(tensors: list[torch.Tensor], dim: int, tau: float) -> float:
    """ReDo's dormant fraction of the calls ``tensors`` (units along ``dim``), in float64:
    per unit the mean |x| over every other dim of every call, divided by the mean over
    units; units with a non-finite mean are never dormant and not in the layer mean."""
    sums, count = None, 0
    for t in tensors:
        x = t.double().abs().movedim(dim, -1)
        unit_sum = x.reshape(-1, x.shape[-1]).sum(0)
        sums = unit_sum if sums is None else sums + unit_sum
        count += x.numel() // x.shape[-1]
    assert sums is not None
    means = (sums / count).numpy()
    finite = np.isfinite(means)
    layer = means[finite].mean()
    return float((finite & (means <= tau * layer)).sum()) / means.size


def ambiguous_units(tensors: list[torch.Tensor], dim: int, tau: float, rel: float = 1e-5) -> int:
    """Units whose score is within ``rel`` of the threshold: float32 sums may put them
    on either side."""
    sums = sum(t.double().abs().movedim(dim, -1).reshape(-1, t.shape[dim]).sum(0) for t in tensors)
    count = sum(t.numel() // t.shape[dim] for t in tensors)
    means = (sums / count).numpy()
    finite = np.isfinite(means)
    bar = tau * means[finite].mean()
    return int((np.abs(means - bar) <= rel * max(bar, 1e-300)).sum())
