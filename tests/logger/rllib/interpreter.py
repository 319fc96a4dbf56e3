"""Runs one generated logger program and records everything it observes.

The same code runs twice: in the test process against fusedstats, and in a subprocess
of the RLlib 2.40 virtualenv against RLlib's ``MetricsLogger`` (``runner.py``). It
imports nothing but the standard library, so it loads in either environment, and it
touches only the public API both loggers share.

A program (plain JSON data, built by ``programs.py``):

    {"keys": [[path...], ...], "settings": [{...} per key], "components": n,
     "plain_merge": {settings} or None,
     "iterations": [{"ops": [[component, op, args...], ...], "key": prefix or None}]}

Ops of a component logger: ``log`` (a key's own settings on its first call, other
settings later, which must be ignored), ``set`` (set_value), ``log_dict`` (keys of one
setting, under a common prefix or not), ``peek`` (a key, a sub-tree, or a missing key
with a default), ``reduce`` (all, or a sub-tree; Stats leaves or plain values) and
``contains``. At the end of every iteration each component is reduced, its result
pickled and unpickled (as a remote worker's result crosses a process boundary;
RLlib's through cloudpickle, as Ray sends it) and the
results merged into a downstream logger (``merge_and_log_n_dicts``, with the
iteration's key), which is peeked, and reduced every other iteration. With
``plain_merge``, the plain ``reduce(return_stats_obj=False)`` values are merged too,
into a second downstream logger, with those settings.

Observations are tagged values: ``["float", x]``, ``["int", n]``, ``["list", [...]]``,
``["dict", {...}]``, ``["stats", peek, previous, values]``, ``["raises", ExcName]``; a
scalar's tag is its exact type name (``numpy.float64`` is not ``float``).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

Observation = list[Any]


def encode(x: Any) -> Any:
    """An observed value as tagged plain data (JSON-safe, NaN and inf included)."""
    if isinstance(x, dict):
        return ["dict", {str(k): encode(v) for k, v in x.items()}]
    if isinstance(x, (list, tuple)):
        return ["list", [encode(v) for v in x]]
    if hasattr(x, "peek") and hasattr(x, "values") and callable(x.peek):
        return [
            "stats",
            encode(x.peek()),
            encode(x.peek(previous=True)),
            encode(list(x.values)),
        ]
    cls = type(x)
    name = cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__name__}"
    if isinstance(x, bool):
        return [name, bool(x)]
    if isinstance(x, int):
        return [name, int(x)]
    if isinstance(x, float):
        return [name, float(x)]
    if x is None:
        return ["None", None]
    return [name, repr(x)]


def key_of(path: list[str]) -> Any:
    """A key as a user writes it: a str for one part, else a tuple."""
    return path[0] if len(path) == 1 else tuple(path)


def _nest(paths: list[list[str]], values: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, value in zip(paths, values, strict=True):
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def _guarded(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The encoded result of ``fn(*args, **kwargs)``, or the exception it raised."""
    try:
        return encode(fn(*args, **kwargs))
    except Exception as err:  # the other implementation must raise the same
        return ["raises", type(err).__name__]


def _op(lg: Any, op: str, args: list[Any], keys: list[list[str]], settings: list[Any]) -> Any:
    """The observation of one operation on logger ``lg`` (encoded, or what it raised)."""
    if op == "log":
        k, value, other = args
        key = key_of(keys[k])
        given = other if (other is not None and key in lg) else settings[k]
        return _guarded(lg.log_value, key, value, **given)
    if op == "set":
        k, value = args
        return _guarded(lg.set_value, key_of(keys[k]), value, **settings[k])
    if op == "log_dict":
        ks, values, prefix_len = args
        paths = [keys[k] for k in ks]
        prefix = paths[0][:prefix_len]
        tree = _nest([p[prefix_len:] for p in paths], values)
        kw = dict(settings[ks[0]])
        if prefix:
            kw["key"] = key_of(prefix)
        return _guarded(lg.log_dict, tree, **kw)
    if op == "peek":
        target, default = args
        kw = {} if default is None else {"default": default}
        return _guarded(lg.peek, key_of(target), **kw)
    if op == "reduce":
        target, stats_obj = args
        if target is None:
            return _guarded(lg.reduce, return_stats_obj=stats_obj)
        if key_of(target) in lg:
            return _guarded(lg.reduce, key_of(target), return_stats_obj=stats_obj)
        return ["skipped", None]  # RLlib 2.40 would add an empty sub-tree (README: differences)
    if op == "contains":
        (target,) = args
        return _guarded(lg.__contains__, key_of(target))
    raise ValueError(f"unknown op {op!r}")


def _label(where: str, op: str, args: list[Any]) -> str:
    """Peeks and membership tests name their target in the observation's label."""
    return f"{where} {args[0]}" if op in ("peek", "contains") else where


def run(
    program: dict[str, Any], logger_cls: type, dumps: Any = pickle.dumps, loads: Any = pickle.loads
) -> list[Observation]:
    """The observations of ``program`` on loggers of ``logger_cls``, in order; results
    cross the process boundary through ``dumps``/``loads`` (RLlib's Stats pickle only
    with cloudpickle, which Ray uses to send them)."""
    keys = [list(p) for p in program["keys"]]
    settings = program["settings"]
    components = [logger_cls() for _ in range(program["components"])]
    downstream = logger_cls()
    plain_downstream = logger_cls()
    plain = program.get("plain_merge")
    seen: list[Observation] = []

    def note(label: str, value: Any) -> None:
        seen.append([label, value])

    for it, iteration in enumerate(program["iterations"]):
        for step, (c, op, *args) in enumerate(iteration["ops"]):
            where = f"iteration {it} op {step} component {c} {op}"
            note(_label(where, op, args), _op(components[c], op, args, keys, settings))
        # End of the iteration: every component hands its reduced result downstream.
        where = f"iteration {it} end"
        results = []
        for c, lg in enumerate(components):
            result = lg.reduce()
            note(f"{where} component {c} reduce()", encode(result))
            results.append(loads(dumps(result)))
        # Read before the merge below: RLlib's merge changes its inputs (a listed
        # difference, pinned down by a hand-written case instead).
        plain_values = [_drop_lists(logger_cls.peek_results(r)) for r in results]
        into = iteration["key"]
        kw = {} if into is None else {"key": key_of(into)}
        note(f"{where} merge", _guarded(downstream.merge_and_log_n_dicts, results, **kw))
        for top in sorted(downstream.stats):
            note(f"{where} downstream peek {[top]}", _guarded(downstream.peek, top))
        if it % 2 == 1:
            note(f"{where} downstream reduce()", _guarded(downstream.reduce))
        if plain is not None:
            merge = plain_downstream.merge_and_log_n_dicts
            note(f"{where} plain merge", _guarded(merge, plain_values, **kw, **plain))
            note(
                f"{where} plain downstream reduce()",
                _guarded(plain_downstream.reduce, return_stats_obj=False),
            )
    return seen


def run_snippet(source: str, logger_cls: type, stats_cls: type, roundtrip: Any) -> Any:
    """The encoded result of ``case(MetricsLogger, Stats, roundtrip)`` defined in
    ``source`` (or the exception it raises): one hand-written case on both sides."""
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    return _guarded(namespace["case"], logger_cls, stats_cls, roundtrip)


def _drop_lists(tree: Any) -> Any:
    """A reduced-values tree without its lists (RLlib walks into list leaves there)."""
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            sub = _drop_lists(v)
            if sub:
                out[k] = sub
        elif not isinstance(v, list):
            out[k] = v
    return out
