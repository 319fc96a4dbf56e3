"""Property tests: random logging sessions on fusedstats and on the model agree.

The model (spec_model.py) is docs/logger.md written as plain lists, with no speed or
bounded-memory tricks.

A session: a few component loggers log random values under a few keys (settings drawn
per key; later calls pass other settings, which must be ignored), peek and reduce at
random; at the end of each iteration every component is reduced and the results are
merged into a downstream logger with `merge_and_log_n_dicts`. Several iterations, so
lifetime sums and reduce histories matter. Every peek, every reduce result (and its
`peek(previous=True)`) and every downstream peek must match the model.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.logger import spec_model
from tests.logger.compare import mismatch
from tests.logger.spec_model import as_path, leaves

import fusedstats

INF = math.inf
NAN = math.nan
KEYS: list[Any] = ["a", "b", ("n", "x"), ("n", "y", "z")]
INT_TYPED = ("sum", "min", "max")  # python ints stay ints for these (docs/logger.md)

PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def key_settings(draw: Any) -> dict[str, Any]:
    reduce = draw(st.sampled_from(["mean", "min", "max", "sum", None]))
    window = draw(st.sampled_from([None, 1, 2, 3, 5, INF]))
    clear_on_reduce = True if window == INF else draw(st.booleans())
    ema_coeff = None
    if reduce == "mean" and window is None:
        ema_coeff = draw(st.sampled_from([None, 0.1, 0.5, 1.0]))
    return {
        "reduce": reduce,
        "window": window,
        "ema_coeff": ema_coeff,
        "clear_on_reduce": clear_on_reduce,
    }


@st.composite
def logged_value(draw: Any) -> Any:
    kind = draw(st.sampled_from(["int"] * 3 + ["float"] * 3 + ["nan"]))
    if kind == "int":
        return draw(st.integers(-50, 50))
    if kind == "float":
        return draw(st.floats(-1000, 1000, allow_nan=False, allow_infinity=False))
    return NAN


ops = st.one_of(
    st.tuples(st.just("log"), st.integers(0, len(KEYS) - 1), logged_value(), key_settings()),
    st.tuples(st.just("log"), st.integers(0, len(KEYS) - 1), logged_value(), st.none()),
    st.tuples(st.just("peek"), st.integers(0, len(KEYS) - 1)),
    st.tuples(st.just("reduce"), st.booleans()),
)


class Session:
    """Pairs of (fusedstats, model) loggers driven by the same calls."""

    def __init__(
        self, per_key: list[dict[str, Any]], n_components: int, prefix: Any, int_types: bool
    ) -> None:
        self.per_key = per_key
        self.int_types = int_types
        self.prefix = prefix
        self.components = [
            (fusedstats.MetricsLogger(), spec_model.MetricsLogger()) for _ in range(n_components)
        ]
        self.downstream = (fusedstats.MetricsLogger(), spec_model.MetricsLogger())

    def int_typed(self, path: tuple[str, ...]) -> bool:
        if not self.int_types:
            return False
        for key, chosen in zip(KEYS, self.per_key, strict=True):
            if path[-len(as_path(key)) :] == as_path(key):
                return chosen["reduce"] in INT_TYPED
        raise AssertionError(f"unknown path {path}")

    # ---- checks -------------------------------------------------------------------

    def check_tree(
        self, got: Any, want: Any, what: str, peek: Any = None, base: tuple[str, ...] = ()
    ) -> None:
        """Compares two result trees leaf by leaf (`peek`: how to read a leaf; `base`:
        where the trees sit in the logger)."""
        want_paths = [path for path, _ in leaves(want)]
        got_paths = [path for path, _ in leaves(got)]
        assert sorted(got_paths) == sorted(want_paths), f"{what}: keys differ"
        got_leaves = dict(leaves(got))
        read = peek or (lambda leaf: leaf)
        for path, want_leaf in leaves(want):
            found = mismatch(
                read(got_leaves[path]), read(want_leaf), int_types=self.int_typed(base + path)
            )
            assert found is None, f"{what} {path}: {found}"

    def check_results(self, got: Any, want: Any, what: str) -> None:
        self.check_tree(got, want, what, peek=lambda s: s.peek())
        self.check_tree(got, want, f"{what} previous", peek=lambda s: s.peek(previous=True))

    def check_peeks(self, impl: Any, model: Any, what: str) -> None:
        for name in model.stats:
            self.check_tree(
                impl.peek(name), model.peek(name), f"{what} peek({name!r})", base=(name,)
            )

    # ---- steps ----------------------------------------------------------------------

    def apply(self, component: int, op: tuple[Any, ...]) -> None:
        impl, model = self.components[component]
        what = f"component {component} {op[0]}"
        if op[0] == "log":
            _, k, value, other_settings = op
            key = KEYS[k]
            # A key's first call uses its settings; later calls may pass others (ignored).
            kwargs = other_settings if (key in model and other_settings) else self.per_key[k]
            impl.log_value(key, value, **kwargs)
            model.log_value(key, value, **kwargs)
        elif op[0] == "peek":
            key = KEYS[op[1]]
            assert (key in impl) == (key in model), f"{what}: `{key!r} in logger` differs"
            if key in model:
                found = mismatch(
                    impl.peek(key), model.peek(key), int_types=self.int_typed(as_path(key))
                )
                assert found is None, f"{what} {key!r}: {found}"
            else:
                assert impl.peek(key, default="missing") == "missing"
        else:
            return_stats_obj = op[1]
            got = impl.reduce(return_stats_obj=return_stats_obj)
            want = model.reduce(return_stats_obj=return_stats_obj)
            if return_stats_obj:
                self.check_results(got, want, what)
            else:
                self.check_tree(got, want, what)

    def end_iteration(self, reduce_downstream: bool) -> None:
        got_results, want_results = [], []
        for i, (impl, model) in enumerate(self.components):
            got, want = impl.reduce(), model.reduce()
            self.check_results(got, want, f"component {i} reduce()")
            got_results.append(got)
            want_results.append(want)
        impl, model = self.downstream
        impl.merge_and_log_n_dicts(got_results, key=self.prefix)
        model.merge_and_log_n_dicts(want_results, key=self.prefix)
        self.check_peeks(impl, model, "downstream")
        if reduce_downstream:
            got = impl.reduce(return_stats_obj=False)
            want = model.reduce(return_stats_obj=False)
            self.check_tree(got, want, "downstream reduce()")


def run_session(data: Any, int_types: bool) -> None:
    session = Session(
        per_key=[data.draw(key_settings(), label=f"settings {key!r}") for key in KEYS],
        n_components=data.draw(st.integers(1, 3), label="components"),
        prefix=data.draw(st.sampled_from([None, "down", ("deep", "er")]), label="prefix"),
        int_types=int_types,
    )
    for _ in range(data.draw(st.integers(1, 3), label="iterations")):
        for c in range(len(session.components)):
            for op in data.draw(st.lists(ops, max_size=12), label=f"ops {c}"):
                session.apply(c, op)
            session.check_peeks(*session.components[c], f"component {c}")
        session.end_iteration(reduce_downstream=data.draw(st.booleans(), label="reduce down"))


@PROPERTY_SETTINGS
@given(data=st.data())
def test_logging_sessions_match_the_model(data):
    run_session(data, int_types=False)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_logging_sessions_keep_python_ints(data):
    """As above, and sum/min/max give a python int exactly where the model does."""
    run_session(data, int_types=True)


# ---- Stats on their own -----------------------------------------------------------------

stats_ops = st.one_of(
    st.tuples(st.just("push"), st.integers(0, 2), logged_value()),
    st.tuples(st.just("peek"), st.integers(0, 2)),
    st.tuples(st.just("previous"), st.integers(0, 2)),
    st.tuples(st.just("reduce"), st.integers(0, 2)),
    st.tuples(st.just("parallel"), st.integers(0, 2), st.lists(st.integers(0, 2), max_size=2)),
    st.tuples(st.just("time_axis"), st.integers(0, 2), st.integers(0, 2)),
)


@PROPERTY_SETTINGS
@given(stats_settings=key_settings(), steps=st.lists(stats_ops, max_size=30))
def test_stats_match_the_model(stats_settings, steps):
    """Three Stats with one setting, pushed, peeked, reduced and merged directly (also
    before any reduce: the parallel merge must see what the model's plain list holds)."""
    run_stats(stats_settings, steps, int_types=False)


@PROPERTY_SETTINGS
@given(stats_settings=key_settings(), steps=st.lists(stats_ops, max_size=30))
def test_stats_keep_python_ints(stats_settings, steps):
    run_stats(stats_settings, steps, int_types=stats_settings["reduce"] in INT_TYPED)


def run_stats(stats_settings: dict[str, Any], steps: list[Any], int_types: bool) -> None:
    impl = [fusedstats.Stats(**stats_settings) for _ in range(3)]
    model = [spec_model.Stats(**stats_settings) for _ in range(3)]
    for step, (name, i, *args) in enumerate(steps):
        if name == "push":
            impl[i].push(args[0])
            model[i].push(args[0])
        elif name == "reduce":
            impl[i] = impl[i].reduce()
            model[i] = model[i].reduce()
        elif name == "parallel":
            others = [j for j in args[0] if j != i]
            impl[i].merge_in_parallel(*(impl[j] for j in others))
            model[i].merge_in_parallel(*(model[j] for j in others))
        elif name == "time_axis" and args[0] != i:
            impl[i].merge_on_time_axis(impl[args[0]])
            model[i].merge_on_time_axis(model[args[0]])
        previous = name == "previous"
        for got, want in zip(impl, model, strict=True):
            found = mismatch(
                got.peek(previous=previous), want.peek(previous=previous), int_types=int_types
            )
            assert found is None, f"step {step} {name}: {found}"
