"""``fusedstats.watch``: statistics of a model's activations, their gradients, and
dormant units, accumulated in the forward and backward passes with no host sync.

How it works: a forward hook on each watched module merges its output's statistics
into a preallocated row of mergeable records on the output's device (the fused
kernel's records: counts, moments, extremes, optionally the extended columns and the
exponent histogram) and adds the output's per-unit sums of |x| to a small device
buffer; a hook on the output tensor does the same for the gradient flowing into it.
Nothing is read back and nothing is kept: the hook returns before the module's caller
sees the output. :meth:`WatchHandle.stats` is the one host sync.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from ..kernels.columns import EXTENDED_COLUMN_INDEX, EXTENDED_FIELDS, FIELDS
from ..kernels.inputs import Prepared
from .arena import Arena
from .units import add_unit_abs_sums

#: The key prefixes of activation and activation-gradient statistics.
ACT = "act"
ACT_GRAD = "act_grad"
#: Outputs nested deeper than this inside tuples, lists and dicts are not looked at.
MAX_LEAF_DEPTH = 8


class WatchWarning(UserWarning):
    """A watched module whose output cannot be recorded (said once per module)."""


@dataclass
class HealthReport:
    """What :meth:`WatchHandle.report` returns.

    ``scalars``: ``act/<module>/<field>``, ``act/<module>/dormant_frac``,
    ``act/<module>/calls``, ``act_grad/<module>/<field>``, ``act_grad/<module>/calls``.
    ``histograms``: ``"act/<module>"`` / ``"act_grad/<module>"`` -> the exponent
    histogram (int64 counts in the bins of :mod:`fusedstats.kernels.columns`); only
    with ``extended``.
    """

    scalars: dict[str, float] = field(default_factory=dict)
    histograms: dict[str, np.ndarray[Any, Any]] = field(default_factory=dict)


@dataclass
class _Slot:
    """One accumulated output: a module's activation (or one tensor leaf of it), or the
    gradient flowing into it."""

    key: str  # "act/<module>" or "act_grad/<module>"
    arena: Arena
    row: int
    unit_dim: int | None = None  # for activations: where the units are (None: the default)
    fresh: bool = True  # no data since the last reset: the next record replaces the row
    calls: int = 0
    units: int | None = None  # None: not known yet; -1: changed between calls (no dormant_frac)
    unit_sums: Any = None  # float64 [units] on the device: Σ|x| per unit
    unit_elems: int = 0  # elements per unit summed so far


def _in_backward() -> bool:
    """Whether this thread runs inside a backward pass (where a forward is a recompute
    of torch.utils.checkpoint, reentrant or not)."""
    import torch

    task_id = getattr(torch._C, "_current_graph_task_id", None)
    return task_id is not None and task_id() != -1


def _tensor_leaves(
    output: Any, torch: Any, path: str = "", depth: int = 0
) -> list[tuple[str, Any]]:
    """(path, tensor) of the floating-point tensors in ``output``: ``""`` for a tensor
    output, ``"[0]"``, ``"[1][0]"``, ``"[logits]"`` inside tuples, lists and dicts."""
    if isinstance(output, torch.Tensor):
        return [(path, output)] if output.is_floating_point() else []
    if depth >= MAX_LEAF_DEPTH:
        return []
    if isinstance(output, (tuple, list)):
        items: Iterable[tuple[Any, Any]] = enumerate(output)
    elif isinstance(output, Mapping):
        items = output.items()
    else:
        return []
    leaves = []
    for k, v in items:
        leaves.extend(_tensor_leaves(v, torch, f"{path}[{k}]", depth + 1))
    return leaves


_CHANNEL_FIRST: tuple[type, ...] | None = None


def _channel_first_types(torch: Any) -> tuple[type, ...]:
    """Module types whose outputs are [N, C, ...] with units (channels) at dim 1."""
    global _CHANNEL_FIRST  # noqa: PLW0603
    if _CHANNEL_FIRST is None:
        nn = torch.nn
        _CHANNEL_FIRST = (
            nn.modules.batchnorm._BatchNorm,
            nn.modules.instancenorm._InstanceNorm,
            nn.GroupNorm,
            nn.modules.pooling._MaxPoolNd,
            nn.modules.pooling._AvgPoolNd,
            nn.modules.pooling._AdaptiveAvgPoolNd,
            nn.modules.pooling._AdaptiveMaxPoolNd,
            nn.modules.pooling._LPPoolNd,
            nn.modules.dropout._DropoutNd,
        )
    return _CHANNEL_FIRST


def default_unit_dim(module: Any, x: Any) -> int | None:
    """The dim of ``x`` (an output of ``module``) that holds its units, or None when it
    has none (a 0-d output).

    Convolutions: the channel dim (1 for batched outputs, 0 for unbatched). Batch,
    instance and group norms, pooling and 2-D/3-D dropout on outputs of 3 or more dims:
    dim 1. Any other output of 4 or more dims (e.g. a ReLU after a Conv2d): dim 1.
    Everything else (Linear, attention, elementwise modules on [N, D] or [N, T, D]):
    the last dim. Override per module with ``watch(..., unit_dims={name: dim})``.

    Example:
        >>> import torch
        >>> conv, lin = torch.nn.Conv1d(2, 3, 1), torch.nn.Linear(2, 3)
        >>> default_unit_dim(conv, torch.zeros(4, 3, 5)), default_unit_dim(conv, torch.zeros(3, 5))
        (1, 0)
        >>> default_unit_dim(lin, torch.zeros(4, 7, 3)), default_unit_dim(lin, torch.zeros(()))
        (2, None)
    """
    torch = sys.modules["torch"]
    dim = x.dim()
    if dim == 0:
        return None
    if isinstance(module, torch.nn.modules.conv._ConvNd):
        return 1 if dim == len(module.kernel_size) + 2 else 0
    if dim >= 3 and isinstance(module, _channel_first_types(torch)):
        return 1
    if dim >= 4:
        return 1
    return int(dim - 1)


def _check_options(every: Any, dormant_tau: Any, step_by: Any) -> None:
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be an int >= 1, got {every!r}")
    if not isinstance(dormant_tau, (int, float)) or not (0.0 <= dormant_tau < math.inf):
        raise ValueError(f"dormant_tau must be a finite number >= 0, got {dormant_tau!r}")
    if step_by not in ("forward", "manual"):
        raise ValueError(f"step_by must be 'forward' or 'manual', got {step_by!r}")


class WatchHandle:
    """The hooks :func:`watch` installed, and what they accumulated.

    Steps: with ``step_by="forward"`` each call of the watched model's ``forward`` (not
    one re-run by activation checkpointing during backward) is one step; with
    ``step_by="manual"`` the caller ends each step with :meth:`step`. Step 0, ``every``,
    ``2 * every``, ... are recorded: every module call (and, with ``activation_grads``,
    the backward through it) during a recorded step is merged into the module's
    statistics. A module called several times in a step accumulates all calls.

    Call :meth:`step` after the step's backward pass: a checkpointed block recomputed
    in backward is recorded only while its step is. Module hooks are attached only
    during recorded steps (and not inside :meth:`paused`), so the other steps run
    exactly as unwatched.

    Statistics accumulate over recorded steps until :meth:`stats` (or :meth:`report`)
    reads them, which starts a new window (``reset=False`` keeps accumulating).
    """

    def __init__(
        self,
        model: Any,
        *,
        activations: bool,
        activation_grads: bool,
        modules: Iterable[str] | None,
        every: int,
        dormant_tau: float,
        extended: bool,
        step_by: str,
        unit_dims: Mapping[str, int] | None,
    ) -> None:
        import torch

        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"watch needs a torch.nn.Module, got {type(model).__name__}")
        _check_options(every, dormant_tau, step_by)
        if not activations and not activation_grads:
            raise ValueError("nothing to watch: activations and activation_grads are both False")
        self.activations = bool(activations)
        self.activation_grads = bool(activation_grads)
        self.every = every
        self.dormant_tau = float(dormant_tau)
        self.extended = bool(extended)
        self.step_by = step_by
        #: Seconds the hooks spent (perf_counter, on the training thread): recording,
        #: and counting steps (attaching and detaching the module hooks).
        self.seconds = 0.0
        self._torch = torch
        self._steps = 0
        self._recording = True
        self._paused = 0
        self._removed = False
        self._slots: dict[str, _Slot] = {}
        self._arenas: dict[Any, Arena] = {}
        self._warned: set[str] = set()
        self._broken: set[str] = set()
        self._unit_dims = dict(unit_dims or {})
        self._watched = self._select(model, modules)
        unknown = sorted(set(self._unit_dims) - {n for n, _ in self._watched})
        if unknown:
            raise ValueError(f"unit_dims names modules that are not watched: {unknown}")
        # Module hooks are attached only while a step is recorded: on the other steps
        # the modules run hook-free, on torch's fast path (no cost at all in manual mode;
        # in forward mode only the model's pre-hook runs).
        self._module_hooks: list[Any] = []
        self._model_hook = (
            model.register_forward_pre_hook(self._on_model_forward)
            if step_by == "forward"
            else None
        )
        self._update_hooks()

    @staticmethod
    def _select(model: Any, modules: Iterable[str] | None) -> list[tuple[str, Any]]:
        named = dict(model.named_modules())
        if modules is None:
            chosen = [(n, m) for n, m in named.items() if next(m.children(), None) is None]
        else:
            if isinstance(modules, str):
                raise TypeError("modules must be a list of module names, not one string")
            chosen = []
            for name in modules:
                if name not in named:
                    some = ", ".join(repr(n) for n in list(named)[:8])
                    raise ValueError(f"model has no module named {name!r} (it has {some}, ...)")
                chosen.append((name, named[name]))
        # The model itself (name "") is keyed by its class name.
        return [(n or type(m).__name__, m) for n, m in chosen]

    # ---- steps -----------------------------------------------------------------------

    @property
    def steps(self) -> int:
        """Steps counted so far."""
        return self._steps

    @property
    def recording(self) -> bool:
        """Whether the current step is recorded."""
        return self._recording

    @property
    def modules(self) -> list[str]:
        """The watched modules' names, in hook order."""
        return [n for n, _ in self._watched]

    def step(self) -> None:
        """Ends the current step (``step_by="manual"``)."""
        if self.step_by != "manual":
            raise RuntimeError(
                "this watch counts forwards as steps (step_by='forward'); "
                "create it with step_by='manual' to call step()"
            )
        start = time.perf_counter()
        self._steps += 1
        self._recording = self._steps % self.every == 0
        self._update_hooks()
        self.seconds += time.perf_counter() - start

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Nothing inside the block is recorded or counted as a step (e.g. rollouts or
        evaluation forwards of a policy whose training steps are watched). Gradient hooks
        already placed on outputs of an earlier forward still record."""
        self._paused += 1
        self._update_hooks()
        try:
            yield
        finally:
            self._paused -= 1
            self._update_hooks()

    def _update_hooks(self) -> None:
        """Attaches the module hooks when this step is recorded, detaches them when not."""
        wanted = self._recording and not self._paused and not self._removed
        if wanted and not self._module_hooks:
            self._module_hooks = [
                module.register_forward_hook(partial(self._on_forward, name))
                for name, module in self._watched
            ]
        elif not wanted and self._module_hooks:
            for hook in self._module_hooks:
                hook.remove()
            self._module_hooks = []

    def _on_model_forward(self, module: Any, args: Any) -> None:
        if self._paused or _in_backward():  # a checkpoint's recompute: the same step
            return
        start = time.perf_counter()
        self._recording = self._steps % self.every == 0
        self._steps += 1
        self._update_hooks()
        self.seconds += time.perf_counter() - start

    # ---- hooks -----------------------------------------------------------------------

    def _on_forward(self, name: str, module: Any, args: Any, output: Any) -> None:
        if not self._recording or self._paused or self._removed or name in self._broken:
            return
        torch = self._torch
        recompute = _in_backward()  # counted when it first ran
        want_act = self.activations and not recompute
        want_grad = self.activation_grads and torch.is_grad_enabled()
        if not (want_act or want_grad) or torch.compiler.is_compiling():
            return
        start = time.perf_counter()
        try:
            leaves = _tensor_leaves(output, torch)
            if not leaves:
                self._warn_once(
                    name,
                    f"fusedstats.watch: module {name!r} returned a {type(output).__name__} "
                    "with no floating-point tensor in it; it is skipped",
                )
                return
            for path, x in leaves:
                key = name + path
                if want_act:
                    self._record(f"{ACT}/{key}", x, module, name)
                if want_grad and x.requires_grad:
                    # With reentrant checkpointing the first forward ran without grad and
                    # only the recompute's outputs carry gradients; with non-reentrant
                    # checkpointing the recompute's outputs get none: counted once.
                    x.register_hook(partial(self._on_grad, name, f"{ACT_GRAD}/{key}"))
        except Exception as e:  # a hook must not break the training step
            self._broken.add(name)
            self._warn_once(
                name, f"fusedstats.watch: module {name!r} not recorded from now on: {e}"
            )
        finally:
            self.seconds += time.perf_counter() - start

    def _on_grad(self, name: str, key: str, grad: Any) -> None:
        if self._removed or name in self._broken:
            return
        start = time.perf_counter()
        try:
            self._record(key, grad, None, name)
        except Exception as e:
            self._broken.add(name)
            self._warn_once(
                name, f"fusedstats.watch: module {name!r} not recorded from now on: {e}"
            )
        finally:
            self.seconds += time.perf_counter() - start

    def _warn_once(self, name: str, message: str) -> None:
        if name not in self._warned:
            self._warned.add(name)
            warnings.warn(message, WatchWarning, stacklevel=3)

    def _slot(self, key: str, x: Any, module: Any, name: str) -> _Slot | None:
        slot = self._slots.get(key)
        if slot is None:
            arena = self._arenas.get(x.device)
            if arena is None:
                arena = self._arenas[x.device] = Arena(x.device, self.extended)
            slot = _Slot(key=key, arena=arena, row=arena.add_row())
            if module is not None:
                slot.unit_dim = self._unit_dims.get(name)
            self._slots[key] = slot
        elif slot.arena.device != x.device:
            self._warn_once(
                key,
                f"fusedstats.watch: {key} moved from {slot.arena.device} to {x.device}; "
                "calls on the new device are skipped",
            )
            return None
        return slot

    def _record(self, key: str, x: Any, module: Any, name: str) -> None:
        slot = self._slot(key, x, module, name)
        if slot is None:
            return
        x = x.detach()
        prep = slot.arena.record(slot.row, x, slot.fresh)
        if module is not None and slot.units != -1:
            self._record_units(slot, x, module, key, prep)
        slot.fresh = False
        slot.calls += 1

    def _record_units(
        self, slot: _Slot, x: Any, module: Any, key: str, prep: Prepared | None
    ) -> None:
        """Adds Σ|x| per unit to the slot's device buffer (ReDo's dormant units)."""
        torch = self._torch
        dim = slot.unit_dim if slot.unit_dim is not None else default_unit_dim(module, x)
        if dim is None:
            return
        dim = dim % x.dim() if x.dim() else 0
        units = int(x.shape[dim])
        if slot.units is not None and units != slot.units:
            slot.units, slot.unit_sums = -1, None
            self._warn_once(
                key,
                f"fusedstats.watch: {key} had {units} units in one call and a different "
                "number in another (a module reused on outputs of different widths); "
                "its dormant_frac is not reported",
            )
            return
        if slot.units is None:
            slot.units = units
            slot.unit_sums = torch.zeros(units, dtype=torch.float64, device=x.device)
        if units == 0 or x.numel() == 0:
            return
        add_unit_abs_sums(x, dim, slot.unit_sums, slot.unit_elems == 0, prep)
        slot.unit_elems += x.numel() // units

    # ---- reading ---------------------------------------------------------------------

    def report(self, reset: bool = True) -> HealthReport:
        """Everything accumulated since the last reset: scalars and (with ``extended``)
        exponent histograms. The one host sync. ``reset`` starts a new window."""
        fields = (*FIELDS, *EXTENDED_FIELDS) if self.extended else FIELDS
        # Activations first, then gradients, each in the order the modules first ran.
        live = sorted(
            (s for s in self._slots.values() if not s.fresh),
            key=lambda s: s.key.startswith(ACT_GRAD + "/"),
        )
        by_arena: dict[int, list[_Slot]] = {}
        for slot in live:
            by_arena.setdefault(id(slot.arena), []).append(slot)
        per_slot: dict[str, tuple[list[float], Any]] = {}
        for slots in by_arena.values():
            rows, hists = slots[0].arena.rows([s.row for s in slots])
            for i, slot in enumerate(slots):
                per_slot[slot.key] = (rows[i].tolist(), None if hists is None else hists[i])
        out = HealthReport()
        for slot in live:
            values, hist = per_slot[slot.key]
            for f in fields:
                out.scalars[f"{slot.key}/{f}"] = values[EXTENDED_COLUMN_INDEX[f]]
            out.scalars[f"{slot.key}/calls"] = float(slot.calls)
            frac = self._dormant_frac(slot)
            if frac is not None:
                out.scalars[f"{slot.key}/dormant_frac"] = frac
            if hist is not None:
                out.histograms[slot.key] = hist
        if reset:
            for slot in self._slots.values():
                slot.fresh, slot.calls, slot.unit_elems = True, 0, 0
        return out

    def stats(self, reset: bool = True) -> dict[str, float]:
        """``report(reset).scalars``: a flat dict of python floats."""
        return self.report(reset).scalars

    def _dormant_frac(self, slot: _Slot) -> float | None:
        """The fraction of units whose mean |x| over their elements is <= dormant_tau times
        the mean of those means over the units with a finite mean (ReDo). A unit whose
        mean is not finite (its activations held NaN or Inf) is not dormant."""
        if slot.units is None or slot.units < 0 or slot.unit_sums is None:
            return None
        if slot.units == 0 or slot.unit_elems == 0:
            return math.nan
        means = slot.unit_sums.cpu().numpy() / slot.unit_elems
        finite = np.isfinite(means)
        if not finite.any():
            return 0.0
        layer_mean = float(means[finite].mean())
        dormant = finite & (means <= self.dormant_tau * layer_mean)
        return float(dormant.sum()) / slot.units

    @property
    def memory_bytes(self) -> int:
        """Bytes of device memory held for the statistics (records and unit sums)."""
        total = sum(a.nbytes for a in self._arenas.values())
        for slot in self._slots.values():
            if slot.unit_sums is not None:
                total += int(slot.unit_sums.numel() * slot.unit_sums.element_size())
        return total

    # ---- lifetime --------------------------------------------------------------------

    def remove(self) -> None:
        """Removes every hook (gradient hooks already on live tensors do nothing more).
        What was accumulated can still be read."""
        self._removed = True
        self._update_hooks()
        if self._model_hook is not None:
            self._model_hook.remove()
            self._model_hook = None

    def __enter__(self) -> WatchHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        return (
            f"WatchHandle({len(self._watched)} modules, every={self.every}, "
            f"steps={self._steps}, removed={self._removed})"
        )


def watch(
    model: Any,
    *,
    activations: bool = True,
    activation_grads: bool = False,
    modules: Iterable[str] | None = None,
    every: int = 1,
    dormant_tau: float = 0.0,
    extended: bool = False,
    step_by: str = "forward",
    unit_dims: Mapping[str, int] | None = None,
) -> WatchHandle:
    """Watches a model's activations (and their gradients) with the fused kernel.

    Hooks the leaf modules of ``model`` (or the named ``modules``). Every ``every``
    steps, each watched module's output — each floating-point tensor in it, for tuple,
    list and dict outputs — is merged into a preallocated row of mergeable statistics
    on its device, in the hook, with no host sync and without keeping the tensor; with
    ``activation_grads`` a hook on the output does the same for the gradient flowing
    into it. ``handle.stats()`` returns, for each module ``<m>`` (``<m>[i]`` for tuple
    leaves, ``<m>[key]`` for dict leaves):

    - ``act/<m>/<field>`` for every field of ``tensor_stats`` (and the extended ones
      with ``extended=True``), over all recorded calls since the last read;
    - ``act/<m>/dormant_frac``: ReDo's dormant units. A unit is a feature of the output
      (the last dim; the channel dim of convolutions and of other outputs with 4 or
      more dims, see :func:`default_unit_dim`; ``unit_dims`` overrides per module); its
      score is its mean |activation| over every other dim and every recorded call,
      divided by the mean score of the layer's units; ``dormant_frac`` is the fraction
      of units whose score is <= ``dormant_tau`` (0: exactly dead units);
    - ``act/<m>/calls``, and ``act_grad/<m>/<field>``, ``act_grad/<m>/calls``.

    Steps (see :class:`WatchHandle`): each forward of ``model`` by default
    (``step_by="manual"``: :meth:`WatchHandle.step`). A forward re-run by
    ``torch.utils.checkpoint`` during backward is not counted again (its gradients
    are, once). A module called several times in a recorded step accumulates every
    call. Modules whose output has no floating-point tensor are skipped with one
    :class:`WatchWarning` each. Eager mode only: inside ``torch.compile`` the hooks do
    nothing. Not thread-safe: one training thread per model.

    Args:
        model: a ``torch.nn.Module``.
        activations: record module outputs.
        activation_grads: record the gradients flowing into the outputs.
        modules: names (as in ``model.named_modules()``) to watch instead of the leaves.
        every: record one step in ``every``.
        dormant_tau: ReDo's threshold τ.
        extended: also the extended columns and exponent histograms (about 10x the
            cost of the default columns on CPU).
        step_by: "forward" or "manual".
        unit_dims: module name -> the dim of its output that holds its units.

    Returns:
        A :class:`WatchHandle`; ``handle.remove()`` (or leaving ``with watch(...)``)
        removes the hooks.

    Example:
        >>> import torch, fusedstats
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU())
        >>> with torch.no_grad():
        ...     _ = model[0].bias.fill_(-100.0)  # every ReLU unit dead
        >>> with fusedstats.watch(model) as handle:
        ...     _ = model(torch.randn(16, 4))
        ...     stats = handle.stats()
        >>> stats["act/1/dormant_frac"], stats["act/0/numel"], stats["act/1/calls"]
        (1.0, 128.0, 1.0)
    """
    return WatchHandle(
        model,
        activations=activations,
        activation_grads=activation_grads,
        modules=modules,
        every=every,
        dormant_tau=dormant_tau,
        extended=extended,
        step_by=step_by,
        unit_dims=unit_dims,
    )
