"""Hypothesis strategies for logger programs (the format of ``interpreter.py``).

Every reduce kind RLlib 2.40 has: EMA with the default and custom coefficients, windowed
and infinite-window (cleared) means, min/max/sum with and without a window, lifetime
sums, clear_on_reduce, lists (``reduce=None``) with and without a window; python ints and
floats, NaN, +-inf, huge and tiny floats, -0.0; nested keys; several components whose
results merge downstream under a key or not.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

INF = math.inf
NAN = math.nan

KEYS: list[list[str]] = [
    ["a"],
    ["b"],
    ["c"],
    ["n", "x"],
    ["n", "y", "z"],
    ["n", "y", "w"],
    ["m", "p"],
]
PREFIXES: list[list[str]] = [["n"], ["n", "y"], ["m"]]
MISSING: list[list[str]] = [["zz"], ["n", "nope"], ["a", "deeper"]]
WINDOWS = [1, 2, 3, 5]


@st.composite
def settings(draw: Any) -> dict[str, Any]:
    """One key's settings, as a first ``log_value`` call passes them."""
    kind = draw(st.sampled_from(["ema", "mean", "min", "max", "sum", "list"]))
    out: dict[str, Any] = {"reduce": None if kind == "list" else kind}
    if kind == "ema":
        out["reduce"] = "mean"
        coeff = draw(st.sampled_from([None, 0.01, 0.1, 0.3, 0.5, 1.0]))
        if coeff is not None:
            out["ema_coeff"] = coeff
    else:
        window = draw(st.sampled_from([None, *WINDOWS, INF]))
        if kind == "mean" and window is None:
            window = draw(st.sampled_from([*WINDOWS, INF]))  # (no window: the EMA above)
        if window is not None:
            out["window"] = window
    if out.get("window") == INF:
        out["clear_on_reduce"] = True
    elif draw(st.booleans()):
        out["clear_on_reduce"] = draw(st.booleans())
    return out


values = st.one_of(
    st.integers(-50, 50),
    st.integers(-50, 50),
    st.floats(-1e3, 1e3, allow_nan=False),
    st.floats(-1e3, 1e3, allow_nan=False),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([NAN, NAN, INF, -INF, -0.0, 0.0, 5e-324, 1e308, -1e308, 0.1, 1 / 3]),
)


@st.composite
def program(draw: Any) -> dict[str, Any]:
    per_key: list[dict[str, Any]] = []
    for _ in KEYS:
        if per_key and draw(st.integers(0, 2)) == 0:  # shared settings: log_dict groups
            per_key.append(dict(draw(st.sampled_from(per_key))))
        else:
            per_key.append(draw(settings()))
    n_components = draw(st.integers(1, 3))
    component = st.integers(0, n_components - 1)
    key = st.integers(0, len(KEYS) - 1)
    targets = st.sampled_from(KEYS + PREFIXES + MISSING)

    @st.composite
    def log_dict(draw: Any) -> list[Any]:
        k = draw(key)
        group = [j for j, s in enumerate(per_key) if s == per_key[k]]
        ks = draw(st.lists(st.sampled_from(group), min_size=1, max_size=4, unique=True))
        first = {KEYS[j][0] for j in ks}
        nested = all(len(KEYS[j]) > 1 for j in ks) and len(first) == 1
        prefix_len = draw(st.sampled_from([0, 1])) if nested else 0
        vals = draw(st.lists(values, min_size=len(ks), max_size=len(ks)))
        return [draw(component), "log_dict", ks, vals, prefix_len]

    op = st.one_of(
        st.tuples(component, st.just("log"), key, values, st.none()).map(list),
        st.tuples(component, st.just("log"), key, values, st.none()).map(list),
        st.tuples(component, st.just("log"), key, values, settings()).map(list),
        st.tuples(component, st.just("set"), key, values).map(list),
        log_dict(),
        st.tuples(component, st.just("peek"), targets, st.sampled_from([None, None, -1, "d"])).map(
            list
        ),
        st.tuples(
            component, st.just("reduce"), st.sampled_from([None, *PREFIXES]), st.booleans()
        ).map(list),
        st.tuples(component, st.just("contains"), targets).map(list),
    )
    iterations = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "ops": st.lists(op, max_size=14),
                    "key": st.sampled_from([None, ["down"], ["deep", "er"]]),
                }
            ),
            min_size=1,
            max_size=4,
        )
    )
    plain = draw(st.one_of(st.none(), settings().filter(lambda s: s["reduce"] is not None)))
    return {
        "keys": KEYS,
        "settings": per_key,
        "components": n_components,
        "iterations": iterations,
        "plain_merge": plain,
    }
