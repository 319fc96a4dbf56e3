"""JsonlSink: strict JSON lines, NaN/Inf as null and counted, append mode."""

from __future__ import annotations

import json
import math

import numpy as np
import torch

from fusedstats.sinks import JsonlSink


def strict_loads(line: str) -> dict:
    def refuse(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(line, parse_constant=refuse)


def test_round_trip_with_nan_and_inf_as_null(tmp_path):
    path = tmp_path / "runs" / "stats.jsonl"  # parent folders are created
    sink = JsonlSink(path)
    sink.write({"a": 1.5, "b": math.nan, "c": math.inf}, step=10, epoch=1)
    sink.write({"a": -2.0, "b": 0.25, "c": -math.inf}, step=20, epoch=2)
    sink.close()
    records = [strict_loads(line) for line in path.read_text().splitlines()]
    assert records == [
        {"step": 10, "epoch": 1, "payload": {"a": 1.5, "b": None, "c": None}},
        {"step": 20, "epoch": 2, "payload": {"a": -2.0, "b": 0.25, "c": None}},
    ]
    assert sink.nonfinite == 3
    assert sink.nonfinite_by_key == {"b": 1, "c": 2}


def test_values_float_accepts_are_kept_the_rest_dropped_and_counted(tmp_path):
    sink = JsonlSink(tmp_path / "stats.jsonl")
    payload = {
        "int": 3,
        "bool": True,
        "np": np.float32(0.5),
        "np_int": np.int64(7),
        "tensor": torch.tensor([2.5]),
        "text": "hello",
        "none": None,
        "list": [1.0, 2.0],
        "array": np.arange(3.0),
        7: 1.0,
    }
    sink.write(payload, step=np.int64(5), epoch=1)  # type: ignore[arg-type]
    sink.close()
    record = strict_loads((tmp_path / "stats.jsonl").read_text())
    assert record == {
        "step": 5,
        "epoch": 1,
        "payload": {"int": 3.0, "bool": 1.0, "np": 0.5, "np_int": 7.0, "tensor": 2.5, "7": 1.0},
    }
    assert sink.dropped_by_key == {"text": 1, "none": 1, "list": 1, "array": 1}


def test_appends_to_an_existing_file_and_flush_makes_lines_visible(tmp_path):
    path = tmp_path / "stats.jsonl"
    first = JsonlSink(path)
    first.write({"a": 1.0}, step=1, epoch=0)
    first.close()
    second = JsonlSink(path)
    second.write({"a": 2.0}, step=2, epoch=0)
    second.flush()
    assert [strict_loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2]
    second.close()
    second.close()  # closing twice is fine
    second.write({"a": 3.0}, step=3, epoch=0)  # and a write after close reopens the file
    second.close()
    assert len(path.read_text().splitlines()) == 3
