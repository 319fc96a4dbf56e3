"""The metrics-logger races: ``log_value``, ``reduce()`` of many keys, merging results.

Each builder takes the logger classes to race (``{name: class}``: fusedstats'
``MetricsLogger``, :class:`~fusedstats.bench.logger_baseline.PlainLogger`, RLlib's where
it is installed) and returns one :class:`~fusedstats.bench.harness.Method` per logger.
``fusedstats bench`` (its logger part) and ``bench/bench_logger.py`` race the same
builders; :func:`filled_logger` is every rank's logger in ``bench/bench_distributed.py``.

Example:
    >>> from fusedstats.bench.harness import race
    >>> from fusedstats.bench.logger_baseline import PlainLogger
    >>> r = race(reduce_methods({"plain": PlainLogger}, n_keys=3, n_values=2), reps=2)
    >>> r.outputs["plain"][0] == r.outputs["plain"][0], len(r.times["plain"])
    (True, 2)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from ..harness import Method

Loop = Callable[[Any, list[float]], None]

# Literal keyword arguments in the loops, as a trainer writes them (no **kwargs).


def _loop_mean_window(logger: Any, xs: list[float]) -> None:
    for x in xs:
        logger.log_value("loss", x, reduce="mean", window=10)


def _loop_ema(logger: Any, xs: list[float]) -> None:
    for x in xs:
        logger.log_value("reward", x, reduce="mean", ema_coeff=0.01)


def _loop_sum(logger: Any, xs: list[float]) -> None:
    for x in xs:
        logger.log_value("steps", x, reduce="sum")


def _loop_empty(_logger: Any, xs: list[float]) -> None:
    for _x in xs:
        pass


# case id: (title, key, settings of the key's first call, timed loop)
LOG_VALUE_CASES: dict[str, tuple[str, str, dict[str, Any], Loop]] = {
    "log_value_mean_window10": (
        'log_value("loss", x, reduce="mean", window=10)',
        "loss",
        {"reduce": "mean", "window": 10},
        _loop_mean_window,
    ),
    "log_value_ema": (
        'log_value("reward", x, reduce="mean", ema_coeff=0.01)',
        "reward",
        {"reduce": "mean", "ema_coeff": 0.01},
        _loop_ema,
    ),
    "log_value_sum": (
        'log_value("steps", x, reduce="sum")',
        "steps",
        {"reduce": "sum"},
        _loop_sum,
    ),
}
EMPTY_LOOP = "(empty loop)"


def log_values(n: int, seed: int = 0) -> list[float]:
    """``n`` floats in [0, 1) to log."""
    rng = random.Random(seed)
    return [rng.random() for _ in range(n)]


def log_value_methods(
    loggers: Mapping[str, type], case: str, xs: list[float], *, empty_loop: bool = False
) -> dict[str, Method]:
    """The ``log_value`` loop of ``case`` (a key of :data:`LOG_VALUE_CASES`) over ``xs``
    on a fresh logger per call whose key one untimed call created; with ``empty_loop``
    also the bare ``for`` loop (:data:`EMPTY_LOOP`, what every loop includes)."""
    _, key, settings, loop = LOG_VALUE_CASES[case]

    def method(cls: type) -> Method:
        def setup() -> Any:
            logger = cls()
            logger.log_value(key, 0.5, **settings)
            return logger

        return Method(
            run=lambda logger: loop(logger, xs), setup=setup, check=lambda lg: lg.peek(key)
        )

    methods = {name: method(cls) for name, cls in loggers.items()}
    if empty_loop:
        methods[EMPTY_LOOP] = Method(run=lambda _: _loop_empty(None, xs))
    return methods


def metric_keys(n: int) -> list[str]:
    """``metric_0000``, ``metric_0001``, ...: ``n`` flat keys."""
    return [f"metric_{i:04d}" for i in range(n)]


def reduce_methods(
    loggers: Mapping[str, type], n_keys: int = 1000, n_values: int = 20, window: int = 10
) -> dict[str, Method]:
    """``reduce()`` of ``n_keys`` keys, one logger per class kept across calls (a
    trainer's steady state), ``n_values`` new values logged into every key before each
    call (untimed). Output: the first and last key's values after the first reduce."""
    keys = metric_keys(n_keys)
    rng = random.Random(1)
    values = [[rng.random() for _ in range(n_values)] for _ in keys]

    def method(cls: type) -> Method:
        logger = cls()

        def refill() -> Any:
            for key, vs in zip(keys, values, strict=True):
                for v in vs:
                    logger.log_value(key, v, reduce="mean", window=window)
            return logger

        return Method(
            run=lambda lg: lg.reduce(),
            setup=refill,
            check=lambda lg: [lg.peek(keys[0]), lg.peek(keys[-1])],
        )

    return {name: method(cls) for name, cls in loggers.items()}


def upstream_results(
    cls: type, n_results: int = 32, n_keys: int = 200, n_values: int = 20, window: int = 10
) -> list[Any]:
    """``n_results`` upstream loggers' ``reduce()`` results of ``n_keys`` keys each,
    ``n_values`` values logged per key (seeds 100, 101, ...)."""
    keys = metric_keys(n_keys)
    out = []
    for r in range(n_results):
        rng = random.Random(100 + r)
        upstream = cls()
        for key in keys:
            for _ in range(n_values):
                upstream.log_value(key, rng.random(), reduce="mean", window=window)
        out.append(upstream.reduce())
    return out


def merge_methods(
    loggers: Mapping[str, type], results: Mapping[str, list[Any]], n_keys: int = 200
) -> dict[str, Method]:
    """``merge_and_log_n_dicts(results[name])`` on a fresh downstream logger per call.
    Output: the first and last key's merged values."""
    keys = metric_keys(n_keys)

    def method(name: str, cls: type) -> Method:
        return Method(
            run=lambda lg: lg.merge_and_log_n_dicts(results[name]),
            setup=cls,
            check=lambda lg: [lg.peek(keys[0]), lg.peek(keys[-1])],
        )

    return {name: method(name, cls) for name, cls in loggers.items() if name in results}


def filled_logger(n_keys: int, seed: int) -> tuple[Any, Callable[[], None]]:
    """A fusedstats ``MetricsLogger`` of ``n_keys`` keys, a fifth each: window-10 means,
    EMAs, lifetime sums (ints), window-10 maxima, window-10 means of a nested key; 10
    values per key logged. Also returns ``log_once()``, which logs one more per key.

    Example:
        >>> logger, log_once = filled_logger(5, seed=0)
        >>> log_once(); sorted(logger.reduce())
        ['ema/1', 'env', 'loss/0', 'max/3', 'steps/2']
    """
    from fusedstats import MetricsLogger

    rng = random.Random(seed)
    logger = MetricsLogger()
    kinds = [
        lambda k, v: logger.log_value(f"loss/{k}", v, window=10),
        lambda k, v: logger.log_value(f"ema/{k}", v),
        lambda k, v: logger.log_value(f"steps/{k}", int(v * 100), reduce="sum"),
        lambda k, v: logger.log_value(f"max/{k}", v, reduce="max", window=10),
        lambda k, v: logger.log_value(("env", "returns", str(k)), v, window=10),
    ]

    def log_once() -> None:
        for k in range(n_keys):
            kinds[k % len(kinds)](k, rng.random())

    for _ in range(10):
        log_once()
    return logger, log_once


__all__ = [
    "EMPTY_LOOP",
    "LOG_VALUE_CASES",
    "filled_logger",
    "log_value_methods",
    "log_values",
    "merge_methods",
    "metric_keys",
    "reduce_methods",
    "upstream_results",
]
