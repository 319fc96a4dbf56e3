"""Payload keys that carry structure (per-parameter gradient rows, exponent
histograms), made here and read back here: the reporter makes them, the TensorBoard
sink reads them (payloads are flat ``{key: float}`` dicts because they cross threads,
spool files and processes as such).

Per-parameter gradient stats: ``grad_param/<parameter name>/<stat>`` (a parameter
name may hold "/", a stat never does).

Exponent histograms:

A payload is a flat ``{key: float}`` dict, so an exponent histogram (280 bins, see
:mod:`fusedstats.kernels.columns`) travels as one key per nonzero bin:
``exp_hist/<base>/<label>`` where ``<base>`` names what was counted (``grad``,
``weights``, ``act/<module>``, ``act_grad/<module>``) and ``<label>`` is the exponent
e = floor(log2|x|) of the bin, or ``zero``, ``below`` (nonzero |x| < 2**-149) and
``above`` (|x| >= 2**128). Sparse: a gradient typically fills 30-60 bins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..kernels.columns import HIST_BINS, HIST_MAX_EXP, HIST_MIN_EXP, hist_bin_exponents

#: Payload keys of per-parameter gradient stats start with this.
GRAD_PARAM_PREFIX = "grad_param/"


def grad_param_key(parameter: str, stat: str) -> str:
    """The payload key of one per-parameter gradient stat.

    Example:
        >>> grad_param_key("enc.0.weight", "norm")
        'grad_param/enc.0.weight/norm'
    """
    return f"{GRAD_PARAM_PREFIX}{parameter}/{stat}"


def split_grad_param_key(key: str) -> tuple[str, str] | None:
    """(parameter, stat) of a :func:`grad_param_key`, or None for any other key.

    Example:
        >>> split_grad_param_key("grad_param/a/b.weight/norm"), split_grad_param_key("grad/norm")
        (('a/b.weight', 'norm'), None)
    """
    if not key.startswith(GRAD_PARAM_PREFIX):
        return None
    parameter, sep, stat = key[len(GRAD_PARAM_PREFIX) :].rpartition("/")
    return (parameter, stat) if sep and parameter and stat else None


#: Payload keys of exponent-histogram bins start with this.
EXP_HIST_PREFIX = "exp_hist/"
ZERO, BELOW, ABOVE = "zero", "below", "above"

_LABELS: list[str] = [
    ZERO if b == 0 else BELOW if e is None and b == 1 else ABOVE if e is None else str(e)
    for b, e in enumerate(hist_bin_exponents())
]


def exponent_histogram_keys(base: str, counts: Any) -> dict[str, float]:
    """``exp_hist/<base>/<label>`` -> count for every nonzero bin of ``counts``
    (HIST_BINS integers: a numpy array, list or 1-D tensor on the host).

    Example:
        >>> import numpy as np
        >>> counts = np.zeros(280, dtype=np.int64); counts[[0, 151, 152]] = [3, 5, 1]
        >>> exponent_histogram_keys("grad", counts)
        {'exp_hist/grad/zero': 3.0, 'exp_hist/grad/0': 5.0, 'exp_hist/grad/1': 1.0}
    """
    values = list(counts.tolist() if hasattr(counts, "tolist") else counts)
    if len(values) != HIST_BINS:
        raise ValueError(f"an exponent histogram has {HIST_BINS} bins, got {len(values)}")
    return {f"{EXP_HIST_PREFIX}{base}/{_LABELS[b]}": float(c) for b, c in enumerate(values) if c}


def exponent_histograms_of(payload: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """The payload's exponent histograms: ``<base>`` -> {label: count}.

    Example:
        >>> exponent_histograms_of({"exp_hist/act/fc/-3": 2.0, "grad/norm": 1.0,
        ...                         "exp_hist/act/fc/zero": 4.0})
        {'act/fc': {'-3': 2.0, 'zero': 4.0}}
    """
    out: dict[str, dict[str, float]] = {}
    for key, value in payload.items():
        if key.startswith(EXP_HIST_PREFIX):
            base, sep, label = key[len(EXP_HIST_PREFIX) :].rpartition("/")
            if sep and base and label in _LABEL_SET:
                out.setdefault(base, {})[label] = value
    return out


_LABEL_SET = frozenset(_LABELS)


def log2_buckets(bins: Mapping[str, float]) -> tuple[list[float], list[float]]:
    """(right edges, counts) of the nonzero-|x| part of one histogram in log2 units:
    bucket e covers [e, e + 1); ``below`` is drawn at HIST_MIN_EXP - 1 and ``above``
    at HIST_MAX_EXP + 1. Empty buckets between the lowest and highest are filled in,
    so that each bucket is one unit wide. Zeros are left out (log2 0 is -inf).

    Example:
        >>> log2_buckets({"-2": 1.0, "0": 3.0, "zero": 7.0})
        ([-1.0, 0.0, 1.0], [1.0, 0.0, 3.0])
    """
    by_exp: dict[int, float] = {}
    for label, count in bins.items():
        if label == ZERO:
            continue
        e = (
            HIST_MIN_EXP - 1
            if label == BELOW
            else HIST_MAX_EXP + 1
            if label == ABOVE
            else int(label)
        )
        by_exp[e] = by_exp.get(e, 0.0) + count
    if not by_exp:
        return [], []
    low, high = min(by_exp), max(by_exp)
    exps = range(low, high + 1)
    return [float(e + 1) for e in exps], [by_exp.get(e, 0.0) for e in exps]
