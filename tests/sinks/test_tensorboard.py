"""TensorBoardSink: real event files, read back with TensorBoard's own readers.

Payloads are drawn fresh each run (the seed is printed, so a failure can be replayed
with ``TB_TEST_SEED=<seed>``); every scalar written is compared with what
TensorBoard's EventAccumulator reads back, at float32 as TensorBoard stores it.
"""

from __future__ import annotations

import itertools
import math
import os
import random
import subprocess
import sys
import textwrap
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing import plugin_event_accumulator
from tensorboard.backend.event_processing.event_accumulator import (
    DEFAULT_SIZE_GUIDANCE,
    EventAccumulator,
)

from fusedstats.reporter.inputs import PER_PARAMETER_GRAD_STATS, policy_grad_stats
from fusedstats.sinks import SinkRunner, TensorBoardSink, tensorboard_sink

ALL = dict.fromkeys(DEFAULT_SIZE_GUIDANCE, 0)  # 0: keep every event, no reservoir sampling
KEY_CHARS = "abcxyz_.-/0123456789é"


@pytest.fixture
def rng() -> np.random.Generator:
    seed = int(os.environ.get("TB_TEST_SEED", random.SystemRandom().randrange(2**32)))
    print(f"TB_TEST_SEED={seed}")
    return np.random.default_rng(seed)


def read(log_dir: Path) -> EventAccumulator:
    return EventAccumulator(str(log_dir), size_guidance=ALL).Reload()


def as_float32(value: float) -> float:
    with np.errstate(over="ignore"):  # beyond float32's range is +-inf, as documented
        return float(np.float32(value))


def random_value(rng: np.random.Generator) -> tuple[Any, float]:
    """A value a sink accepts, and the float TensorBoard must hand back for it."""
    kind = int(rng.integers(9))
    magnitude = 10.0 ** rng.uniform(-30, 30)
    x = float(rng.choice([-1.0, 1.0]) * magnitude)
    value: Any
    if kind == 0:
        value = math.nan
    elif kind == 1:
        value = float(rng.choice([math.inf, -math.inf]))
    elif kind == 2:
        value = int(rng.integers(-(2**62), 2**62))
    elif kind == 3:
        value = bool(rng.integers(2))
    elif kind == 4:
        value = np.float32(x) if abs(x) < 1e38 else np.float32(1.5)
    elif kind == 5:
        value = np.int64(rng.integers(-1000, 1000))
    elif kind == 6:
        value = torch.tensor([x], dtype=torch.float64)
    elif kind == 7:
        value = float(rng.choice([-1.0, 1.0])) * 10.0 ** rng.uniform(38.6, 300)  # > float32
    else:
        value = x
    return value, as_float32(float(value))


def random_key(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list(KEY_CHARS), size=int(rng.integers(1, 16))))


def random_payloads(
    rng: np.random.Generator,
) -> tuple[list[tuple[dict[str, Any], int]], dict[str, list[tuple[int, float]]], Counter[str]]:
    """Payloads at increasing steps, each with a random subset of the keys; the scalars
    (tag -> [(step, float32 value)]) and dropped keys they must give."""
    keys = sorted({random_key(rng) for _ in range(int(rng.integers(20, 40)))})
    text_key, none_key = "notes/text", "notes/none"
    payloads = []
    expected: dict[str, list[tuple[int, float]]] = defaultdict(list)
    dropped: Counter[str] = Counter()
    step = int(rng.integers(0, 100))
    for _ in range(int(rng.integers(4, 8))):
        step += int(rng.integers(1, 1000))
        payload: dict[str, Any] = {}
        for key in keys:
            if rng.random() < 0.8:
                payload[key], expected_value = random_value(rng)
                expected[key].append((step, expected_value))
        payload[text_key] = "must be dropped"
        dropped[text_key] += 1
        if rng.random() < 0.5:
            payload[none_key] = None
            dropped[none_key] += 1
        payloads.append((payload, step))
    return payloads, dict(expected), dropped


def assert_scalars(acc: EventAccumulator, expected: dict[str, list[tuple[int, float]]]) -> None:
    assert sorted(acc.Tags()["scalars"]) == sorted(expected)
    for tag, points in expected.items():
        got = [(event.step, event.value) for event in acc.Scalars(tag)]
        assert len(got) == len(points), tag
        for (step, value), (got_step, got_value) in zip(points, got, strict=True):
            assert got_step == step, tag
            # Exact: the value TensorBoard holds is the float32 of the float written.
            assert got_value == value or (math.isnan(value) and math.isnan(got_value)), (
                tag,
                step,
                value,
                got_value,
            )


@pytest.mark.parametrize("through_runner", [False, True], ids=["direct", "sink_runner"])
def test_every_scalar_reads_back_at_its_step(tmp_path, rng, through_runner):
    payloads, expected, dropped = random_payloads(rng)
    sink = TensorBoardSink(tmp_path / "runs" / "a")  # parent folders are created
    if through_runner:
        runner = SinkRunner([sink], timeout_s=30.0)
        for payload, step in payloads:
            assert runner.submit(payload, step=step, epoch=step // 10) is True
        runner.close()
        nonzero = {k: v for k, v in runner.counters["tensorboard"].items() if v}
        assert nonzero == {"delivered": len(payloads)}
    else:
        for payload, step in payloads:
            sink.write(payload, step=step, epoch=step // 10)
        sink.close()
    assert_scalars(read(tmp_path / "runs" / "a"), expected)
    assert sink.dropped_by_key == dropped
    assert sink.path is not None and sink.path.parent == tmp_path / "runs" / "a"


def grad_param_payload(
    rng: np.random.Generator, names: list[str]
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Random ``grad_param/<name>/<stat>`` values (some NaN/Inf; ``abs_max`` never
    finite), and per stat the finite values a histogram must hold."""
    payload: dict[str, float] = {"grad/norm": float(rng.random())}
    finite: dict[str, list[float]] = defaultdict(list)
    for name in names:
        for stat in PER_PARAMETER_GRAD_STATS:
            draw = rng.random()
            if stat == "abs_max" or draw < 0.1:
                value = float(rng.choice([math.nan, math.inf, -math.inf]))
            elif stat == "n_nonfinite":
                value = float(rng.integers(0, 5))
            else:
                value = float(rng.normal(0.0, 10.0 ** rng.uniform(-8, 3)))
            payload[f"grad_param/{name}/{stat}"] = value
            if math.isfinite(value):
                finite[stat].append(value)
    return payload, dict(finite)


def assert_histogram(histogram: Any, values: list[float]) -> None:
    """A stored histogram holds exactly ``values``: TensorBoard's legacy layout, where
    ``bucket_limit[i]`` is the right edge of ``bucket[i]`` and the first starts at min."""
    data = np.array(values)
    assert histogram.num == len(values)
    assert histogram.min == data.min() and histogram.max == data.max()
    assert histogram.sum == pytest.approx(math.fsum(values), rel=1e-12, abs=1e-300)
    squares = math.fsum(v * v for v in values)
    assert histogram.sum_squares == pytest.approx(squares, rel=1e-12, abs=1e-300)
    limits, counts = list(histogram.bucket_limit), list(histogram.bucket)
    assert 1 <= len(counts) == len(limits) <= tensorboard_sink.MAX_BUCKETS
    assert limits[-1] == data.max() and sum(counts) == len(values)
    assert all(a < b for a, b in itertools.pairwise(limits))
    if len(counts) > 1:  # each value lies in the bucket that counts it
        recount, _ = np.histogram(data, bins=[histogram.min, *limits])
        assert recount.tolist() == counts


def test_per_parameter_stats_become_one_histogram_per_stat(tmp_path, rng):
    names = [f"layers.{i}.{kind}" for i in range(int(rng.integers(3, 60))) for kind in "wb"]
    sink = TensorBoardSink(tmp_path, flush_secs=3600.0)
    written = []
    for step in sorted(rng.choice(10_000, size=4, replace=False).tolist()):
        payload, finite = grad_param_payload(rng, names)
        sink.write(payload, step=step, epoch=0)
        written.append((step, payload, finite))
    sink.flush()  # flush_secs is an hour: only flush() makes the events readable
    acc = read(tmp_path)
    sink.close()
    stats_with_values = {stat for _, _, finite in written for stat in finite}
    assert sorted(acc.Tags()["histograms"]) == sorted(
        tensorboard_sink.HISTOGRAM_PREFIX + stat for stat in stats_with_values
    )
    assert "abs_max" not in stats_with_values  # never finite: no histogram at all
    for stat in stats_with_values:
        events = acc.Histograms(tensorboard_sink.HISTOGRAM_PREFIX + stat)
        expected = [(step, finite[stat]) for step, _, finite in written if stat in finite]
        assert [e.step for e in events] == [step for step, _ in expected]
        for event, (_, values) in zip(events, expected, strict=True):
            assert_histogram(event.histogram_value, values)
    # The per-parameter keys are scalars too, NaN/Inf included.
    scalars = {tag: [] for tag in written[0][1]}
    for step, payload, _ in written:
        for key, value in payload.items():
            scalars[key].append((step, as_float32(value)))
    assert_scalars(acc, scalars)


def test_histograms_off_writes_scalars_only(tmp_path, rng):
    payload, _ = grad_param_payload(rng, ["a.weight", "a.bias"])
    sink = TensorBoardSink(tmp_path, histograms=False)
    sink.write(payload, step=1, epoch=0)
    sink.close()
    acc = read(tmp_path)
    assert acc.Tags()["histograms"] == []
    assert sorted(acc.Tags()["scalars"]) == sorted(payload)


def test_histograms_of_a_real_models_grad_stats(tmp_path, rng):
    torch.manual_seed(int(rng.integers(2**31)))
    width = int(rng.integers(2, 9))
    model = torch.nn.Sequential(
        torch.nn.Linear(5, width), torch.nn.Tanh(), torch.nn.Linear(width, 3)
    )
    model(torch.randn(int(rng.integers(1, 6)), 5)).square().sum().backward()
    payload = policy_grad_stats(model, per_parameter=True)
    sink = TensorBoardSink(tmp_path)
    sink.write(payload, step=7, epoch=1)
    sink.close()
    acc = read(tmp_path)
    for stat in ("norm", "mean", "std", "abs_max"):
        values = [payload[f"grad_param/{name}/{stat}"] for name, _ in model.named_parameters()]
        event = acc.Histograms(tensorboard_sink.HISTOGRAM_PREFIX + stat)[0]
        assert event.step == 7
        assert_histogram(event.histogram_value, values)
    # n_nonfinite is 0 for every parameter: one bucket holding all of them at 0.
    zeros = acc.Histograms(tensorboard_sink.HISTOGRAM_PREFIX + "n_nonfinite")[0].histogram_value
    assert (zeros.num, zeros.min, zeros.max, list(zeros.bucket)) == (4, 0.0, 0.0, [4.0])


def test_tensorboard_sees_scalars_and_histograms_as_its_plugins_do(tmp_path):
    """The reader behind TensorBoard's web UI files the events under the scalar and
    histogram plugins, with the histogram's buckets as (left, right, count)."""
    sink = TensorBoardSink(tmp_path)
    sink.write(
        {"overview/sps": 2.5, "grad_param/w/norm": 1.0, "grad_param/b/norm": 3.0}, step=4, epoch=0
    )
    sink.close()
    acc = plugin_event_accumulator.EventAccumulator(str(tmp_path), size_guidance=ALL).Reload()
    assert set(acc.PluginTagToContent("scalars")) == {
        "overview/sps",
        "grad_param/w/norm",
        "grad_param/b/norm",
    }
    assert set(acc.PluginTagToContent("histograms")) == {"grad_param_hist/norm"}
    (event,) = acc.Tensors("grad_param_hist/norm")
    from tensorboard.util import tensor_util

    buckets = tensor_util.make_ndarray(event.tensor_proto)
    assert event.step == 4
    assert buckets[:, 2].sum() == 2 and buckets[0, 0] == 1.0 and buckets[-1, 1] == 3.0


def test_close_then_write_starts_a_new_file_in_the_same_run(tmp_path):
    sink = TensorBoardSink(tmp_path)
    sink.write({"a": 1.0}, step=1, epoch=0)
    first = sink.path
    sink.flush()
    assert [e.value for e in read(tmp_path).Scalars("a")] == [1.0]  # readable before close
    sink.close()
    sink.close()  # closing twice is fine
    sink.write({"a": 2.0}, step=2, epoch=0)
    sink.write({"a": 3.0}, step=1, epoch=0)  # a step out of order (a spool replay) is kept
    sink.close()
    assert sink.path != first
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, sink.path.name])
    assert [(e.step, e.value) for e in read(tmp_path).Scalars("a")] == [
        (1, 1.0),
        (2, 2.0),
        (1, 3.0),
    ]


def test_a_payload_with_nothing_numeric_writes_nothing(tmp_path):
    sink = TensorBoardSink(tmp_path)
    sink.write({"text": "x", "none": None}, step=1, epoch=0)
    sink.close()
    assert list(tmp_path.iterdir()) == [] and sink.path is None
    assert sink.dropped_by_key == {"text": 1, "none": 1}


def test_bad_arguments_and_an_unwritable_folder_raise(tmp_path):
    with pytest.raises(ValueError, match="flush_secs"):
        TensorBoardSink(tmp_path, flush_secs=-1.0)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    sink = TensorBoardSink(blocker / "runs")
    with pytest.raises(OSError):
        sink.write({"a": 1.0}, step=1, epoch=0)
    assert sink.path is None


def test_a_write_that_fails_midway_leaves_no_open_file_and_the_next_starts_afresh(tmp_path):
    """A real failure: the file size limit (RLIMIT_FSIZE, in a child process) cuts a
    big event short. The sink closes that file; the next write goes to a new one."""
    script = textwrap.dedent(
        f"""
        import os, resource, signal
        from fusedstats.sinks import TensorBoardSink

        def is_open(path):
            fds = os.listdir("/proc/self/fd")
            return any(os.path.realpath(f"/proc/self/fd/{{fd}}") == str(path) for fd in fds)

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG as an OSError, not a kill
        sink = TensorBoardSink({str(tmp_path)!r})
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16384, hard))
        big = {{f"key/{{i:05d}}": float(i) for i in range(2000)}}
        try:
            sink.write(big, step=1, epoch=0)
        except OSError as e:
            print("failed", e.errno, is_open(sink.path))
        first = sink.path
        sink.write({{"small": 2.0}}, step=2, epoch=0)
        sink.close()
        print("new file", sink.path != first, is_open(first), is_open(sink.path))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines == ["failed 27 False", "new file True False False"]  # 27: EFBIG
    acc = read(tmp_path)  # the cut-short file does not stop TensorBoard reading the run
    assert [(e.step, e.value) for e in acc.Scalars("small")] == [(2, 2.0)]
    assert len(list(tmp_path.iterdir())) == 2


def test_histogram_fields_edge_cases():
    one = tensorboard_sink.histogram_fields([5.0, 5.0, 5.0])
    assert (one["bucket_limit"], one["bucket"], one["sum"]) == ([5.0], [3.0], 15.0)
    huge = tensorboard_sink.histogram_fields([-1e308, 1e308, 0.0])  # max - min overflows
    assert huge["num"] == 3.0 and sum(huge["bucket"]) == 3.0 and huge["sum_squares"] == math.inf
    close = tensorboard_sink.histogram_fields([1.0, float(np.nextafter(1.0, 2.0))])
    assert sum(close["bucket"]) == 2.0 and close["bucket_limit"][-1] == close["max"]


def test_files_of_one_second_sort_in_the_order_they_were_opened(tmp_path):
    # TensorBoard reads files in name order; a counter crossing 9 -> 10 must not reorder.
    sink = TensorBoardSink(tmp_path)
    for step in range(12):
        sink.write({"a": float(step)}, step=step, epoch=0)
        sink.close()  # the next write opens a new file
    names = [p.name for p in tmp_path.iterdir()]
    assert len(names) == 12
    assert [(e.step, e.value) for e in read(tmp_path).Scalars("a")] == [
        (step, float(step)) for step in range(12)
    ]


def test_making_the_sink_does_not_import_tensorboard(tmp_path):
    # The reporter makes its sinks at the first payload, on the training thread: the
    # ~0.2 s import of tensorboard's protos belongs to the first write, on the sink thread.
    code = (
        "import sys; from fusedstats.sinks import TensorBoardSink; "
        f"sink = TensorBoardSink({str(tmp_path)!r}); "
        "before = 'tensorboard' in sys.modules; "
        "sink.write({'a': 1.0}, step=1, epoch=0); sink.close(); "
        "print(before, 'tensorboard' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.split() == ["False", "True"]
    assert [e.value for e in read(tmp_path).Scalars("a")] == [1.0]
