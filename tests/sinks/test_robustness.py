"""Whatever a caller hands it, submit returns a bool and never raises; sinks write strict JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fusedstats.sinks import ConsoleSink, JsonlSink, SinkRunner

NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.floats(width=32).map(np.float32),
)
OTHERS = st.one_of(
    st.none(),
    st.text(max_size=5),
    st.lists(st.floats(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.floats(), max_size=2),
    st.builds(object),
    st.complex_numbers(),
)
KEYS = st.one_of(st.text(max_size=12), st.integers(), st.tuples(st.integers()))
PAYLOADS = st.dictionaries(KEYS, st.one_of(NUMBERS, OTHERS), max_size=12)


class ExplodingMapping(Mapping[str, float]):
    def __getitem__(self, key: str) -> float:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("cannot iterate")

    def __len__(self) -> int:
        return 1


class ExplodingFloat:
    def __float__(self) -> float:
        raise ZeroDivisionError("no float for you")


@settings(max_examples=60, deadline=None)
@given(payloads=st.lists(PAYLOADS, min_size=1, max_size=5))
def test_any_payload_is_accepted_and_written_as_strict_json(tmp_path_factory, payloads):
    path = tmp_path_factory.mktemp("robust") / "stats.jsonl"
    jsonl = JsonlSink(path)
    runner = SinkRunner([jsonl, ConsoleSink(stream=_Sink())])
    for step, payload in enumerate(payloads):
        assert runner.submit(payload, step=step, epoch=0) is True
    runner.close()
    assert runner.counters["jsonl"]["delivered"] == len(payloads)
    assert runner.counters["console"]["delivered"] == len(payloads)
    lines = path.read_text().splitlines()
    for step, (line, payload) in enumerate(zip(lines, payloads, strict=True)):
        record = json.loads(line, parse_constant=_refuse)
        assert record["step"] == step
        for value in record["payload"].values():
            assert value is None or (isinstance(value, float) and math.isfinite(value))
        numeric = {str(k) for k, v in payload.items() if isinstance(v, (int, float, np.floating))}
        assert numeric <= set(record["payload"])


def test_unusable_payloads_and_steps_are_refused_without_raising(tmp_path):
    runner = SinkRunner([JsonlSink(tmp_path / "stats.jsonl")])
    bad_calls = [
        (ExplodingMapping(), 1, 0),
        (42, 1, 0),
        ({"a": 1.0}, "ten", 0),
        ({"a": 1.0}, None, 0),
        ({"a": 1.0}, 1, object()),
    ]
    for payload, step, epoch in bad_calls:
        assert runner.submit(payload, step=step, epoch=epoch) is False  # type: ignore[arg-type]
    assert runner.submit({"a": ExplodingFloat(), "b": 2.0}, step=np.int32(3), epoch=1.0)  # type: ignore[arg-type,dict-item]
    runner.close()
    assert runner.counters["runner"] == {"submitted": 6, "dropped_queue_full": 5}
    record = json.loads((tmp_path / "stats.jsonl").read_text())
    assert record == {"step": 3, "epoch": 1, "payload": {"b": 2.0}}


class _Sink:
    """A text stream that keeps nothing."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def _refuse(name: str) -> None:
    raise AssertionError(f"non-standard JSON constant {name}")
