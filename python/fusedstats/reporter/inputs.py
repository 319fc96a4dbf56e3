"""Reading a trainer's objects (losses, experience, optimizer, config, policy) into
plain ``{key: value}`` dicts for the payload. Everything is duck-typed: Metta's
objects, plain dicts and torch objects all work, and what is missing is left out."""

from __future__ import annotations

import logging
import numbers
import operator
from collections.abc import Mapping
from typing import Any

from .payload import as_scalar

logger = logging.getLogger("fusedstats.reporter")


def field_of(obj: Any, name: str) -> Any:
    """``obj[name]`` for a mapping, ``obj.name`` otherwise; None when absent."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def stats_of(source: Any) -> Mapping[str, Any]:
    """A stats mapping from a mapping itself, or from an object's ``stats()`` (Metta's
    losses and experience objects); ``{}`` for None or anything else."""
    if source is None:
        return {}
    if isinstance(source, Mapping):
        return source
    stats = getattr(source, "stats", None)
    if callable(stats):
        result = stats()
        if isinstance(result, Mapping):
            return result
    return {}


def step_number(name: str, value: Any) -> int:
    """``value`` (an epoch or agent step) as an int; TypeError naming ``name`` otherwise.

    Integers (numpy's too) and floats without a fraction are accepted; bools, strings
    and anything else are not.

    Example:
        >>> step_number("epoch", 3), step_number("agent_step", 1024.0)
        (3, 1024)
        >>> step_number("epoch", "3")
        Traceback (most recent call last):
        ...
        TypeError: report_epoch: epoch must be an int, got '3' (str)
    """
    if not isinstance(value, bool):
        try:
            return operator.index(value)
        except TypeError:
            pass
        if isinstance(value, numbers.Real):
            number = float(value)
            if number.is_integer():
                return int(number)
    raise TypeError(
        f"report_epoch: {name} must be an int, got {value!r:.80} ({type(value).__name__})"
    )


def checked_stats(name: str, source: Any) -> Mapping[str, Any]:
    """:func:`stats_of` for argument ``name`` of ``report_epoch``: None, a mapping with
    string keys, or an object whose ``stats()`` gives one; TypeError naming ``name``
    and what was expected otherwise.

    Example:
        >>> checked_stats("losses_stats", {"policy_loss": 0.5})
        {'policy_loss': 0.5}
        >>> checked_stats("losses_stats", {1: 0.5})
        Traceback (most recent call last):
        ...
        TypeError: report_epoch: losses_stats must have string keys, got the key 1 (int)
    """
    if (
        source is not None
        and not isinstance(source, Mapping)
        and not callable(getattr(source, "stats", None))
    ):
        raise TypeError(
            f"report_epoch: {name} must be a mapping of str to numbers, an object with "
            f"stats(), or None, got {source!r:.80} ({type(source).__name__})"
        )
    stats = stats_of(source)
    return checked_keys(name, stats)


def checked_keys(name: str, values: Mapping[Any, Any] | None) -> Mapping[str, Any]:
    """``values`` (``{}`` for None) if it is a mapping with string keys; else TypeError
    naming ``name``."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise TypeError(
            f"report_epoch: {name} must be a mapping or None, got {values!r:.80} "
            f"({type(values).__name__})"
        )
    for key in values:
        if type(key) is not str and not isinstance(key, str):
            raise TypeError(
                f"report_epoch: {name} must have string keys, got the key {key!r:.80} "
                f"({type(key).__name__})"
            )
    return values


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings flattened to ``"a/b"`` keys."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def training_parameters(
    optimizer: Any, trainer_cfg: Any, experience: Any, epoch_steps: int | None
) -> dict[str, Any]:
    """``parameters/`` values: ``learning_rate`` (first param group's ``lr``), the
    schedule-free ``schedulefree_scheduled_lr`` / ``schedulefree_lr_max`` (their param
    groups carry ``scheduled_lr`` and ``lr_max``), ``epoch_steps`` (the timing lap)
    and ``num_minibatches`` (the experience's, the config's, or ``batch_size //
    minibatch_size``)."""
    params: dict[str, Any] = {}
    groups = getattr(optimizer, "param_groups", None) if optimizer is not None else None
    if groups:
        group = groups[0]
        if "lr" in group:
            params["learning_rate"] = group["lr"]
        if "scheduled_lr" in group:
            params["schedulefree_scheduled_lr"] = group["scheduled_lr"]
        if "lr_max" in group:
            params["schedulefree_lr_max"] = group["lr_max"]
    if epoch_steps is not None:
        params["epoch_steps"] = epoch_steps
    minibatches = field_of(experience, "num_minibatches")
    if minibatches is None:
        minibatches = field_of(trainer_cfg, "num_minibatches")
    if minibatches is None:
        batch = as_scalar(field_of(trainer_cfg, "batch_size"))
        minibatch = as_scalar(field_of(trainer_cfg, "minibatch_size"))
        if batch is not None and minibatch is not None and minibatch > 0:
            minibatches = batch // minibatch
    if minibatches is not None:
        params["num_minibatches"] = minibatches
    return params


def hyperparameters_of(trainer_cfg: Any) -> dict[str, Any]:
    """``hyperparameters/`` values: the trainer config's ``hyperparameters`` mapping,
    nested mappings flattened with "/"."""
    values = field_of(trainer_cfg, "hyperparameters")
    return flatten(values) if isinstance(values, Mapping) else {}


def monitor_stats(context: Any, name: str) -> Mapping[str, Any]:
    """``context.<name>.stats()`` (Metta's system and memory monitors), or ``{}``."""
    monitor = field_of(context, name)
    if monitor is None:
        return {}
    try:
        return stats_of(monitor)
    except Exception as e:  # a monitor is a nicety; its failure must not stop training
        logger.warning("%s.stats() failed: %r", name, e)
        return {}


#: The stats of ``grad_param/<parameter name>/<stat>`` (``n_nonfinite`` = NaN + Inf count).
PER_PARAMETER_GRAD_STATS = ("norm", "mean", "std", "abs_max", "n_nonfinite")


def policy_grad_stats(
    policy: Any, per_parameter: bool = False, *, extended: bool = False, histograms: bool = False
) -> dict[str, float]:
    """``grad/...`` of every parameter's gradient, one fused pass; ``{}`` (warned) when
    the policy has no parameters to read.

    With ``per_parameter``, also ``grad_param/<parameter name>/<stat>`` for each stat of
    :data:`PER_PARAMETER_GRAD_STATS`, read from the per-tensor rows of the same kernel
    call (names from ``policy.named_parameters()``; parameters without a gradient are
    left out). Stats are over each gradient's finite elements, so ``mean`` is NaN for a
    gradient with none and ``std`` (unbiased) for one with fewer than two. With
    ``extended``, also the extended fields (``grad/kurtosis``, ``grad/underflow_e4m3``,
    ...); with ``histograms`` as well, the exponent histogram of all gradients as
    ``exp_hist/grad/<bin>`` keys (same pass).

    Example:
        >>> import torch
        >>> layer = torch.nn.Linear(2, 1)
        >>> layer(torch.ones(3, 2)).sum().backward()
        >>> stats = policy_grad_stats(layer, per_parameter=True)
        >>> stats["grad_param/bias/norm"], stats["grad_param/weight/n_nonfinite"]
        (3.0, 0.0)
        >>> stats["grad/numel"], "grad_param/bias/norm" in policy_grad_stats(layer)
        (3.0, False)
    """
    from fusedstats.health.keys import exponent_histogram_keys, grad_param_key
    from fusedstats.kernels.columns import EXTENDED_FIELDS, FIELDS
    from fusedstats.kernels.model_stats import grad_tensor_stats, metta_name

    try:
        stats = grad_tensor_stats(policy, extended=extended)
        if stats is None:
            return {}
        fields = (*FIELDS, *EXTENDED_FIELDS) if extended else FIELDS
        glob = stats.global_
        out = {f"grad/{metta_name(f)}": glob[f] for f in fields}
        if per_parameter:
            for name, row in stats.per_tensor.items():
                row["n_nonfinite"] = row["n_nan"] + row["n_inf"]
                for stat in PER_PARAMETER_GRAD_STATS:
                    out[grad_param_key(name, stat)] = row[stat]
        if extended and histograms:
            out.update(exponent_histogram_keys("grad", stats.exponent_histogram[-1].tolist()))
    except Exception as e:
        logger.warning("gradient stats skipped: %r", e)
        return {}
    return out


def policy_weight_stats(policy: Any, extended: bool = False) -> dict[str, float]:
    """``weights/<metric>/<layer>``: from ``policy.compute_weight_metrics()`` when the
    policy has it (a list of dicts, ``name`` being the layer), else from the fused
    kernel over the policy's parameters (per parameter, plus the global
    ``weights/<metric>`` and ``weights/dormant_frac/<parameter>``; with ``extended``,
    the extended fields too)."""
    compute = getattr(policy, "compute_weight_metrics", None)
    try:
        if not callable(compute):
            from fusedstats import weight_stats

            return weight_stats(policy, per_parameter=True, extended=extended)
        out: dict[str, float] = {}
        for entry in compute() or ():
            layer = entry.get("name", "unknown")
            for metric, value in entry.items():
                if metric == "name":
                    continue
                scalar = as_scalar(value)
                if scalar is not None:
                    out[f"weights/{metric}/{layer}"] = scalar
        return out
    except Exception as e:
        logger.warning("weight stats skipped: %r", e)
        return {}
