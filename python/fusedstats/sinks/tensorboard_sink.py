"""TensorBoardSink: payloads as TensorBoard event files, one event per payload.

Which writer, and why: the ``tensorboard`` package's own record writer
(``tensorboard.summary.writer.record_writer.RecordWriter``: the TFRecord framing and
CRCs, which ``torch.utils.tensorboard`` imports too) on a file this sink opens and
closes itself, with ``Event``/``Summary`` protos from ``tensorboard.compat.proto``.
Not torch's ``SummaryWriter``: it needs torch, and the ``tensorboard`` extra does not;
one code path is tested instead of two. Not ``EventFileWriter`` (which ``SummaryWriter``
wraps) either: it adds a writer thread and queue per sink, while the
:class:`~fusedstats.sinks.SinkRunner` lane already keeps I/O off the training thread,
and its ``close()`` leaves the file open when the final flush raises. Writing whole
events ourselves also puts all of a payload's scalars in one event, not one per key.
Tested with tensorboard 2.21; TensorFlow is not needed.

Cost, measured on the shared 2-core dev machine: a 500-key payload with five histograms
takes 6-9 ms per write (about half of it ``tensorboard``'s pure-Python CRC), on the
sink's thread; ``SummaryWriter.add_scalar`` per key and ``add_histogram`` took 65-95 ms
for the same payload in the same run.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import math
import os
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..health.keys import (
    EXP_HIST_PREFIX,
    exponent_histograms_of,
    log2_buckets,
    split_grad_param_key,
)
from .base import float_payload

#: Payload keys ``grad_param/<parameter name>/<stat>`` (see
#: :mod:`fusedstats.health.keys`) are also drawn as histograms.
#: The histogram of one stat across parameters is tagged ``grad_param_hist/<stat>``.
HISTOGRAM_PREFIX = "grad_param_hist/"
#: Payload keys ``act/<module>/<stat>`` and ``act_grad/<module>/<stat>`` (see
#: :func:`fusedstats.watch`) are also drawn as one histogram per stat across modules,
#: tagged ``act_hist/<stat>`` and ``act_grad_hist/<stat>``.
MODULE_HISTOGRAM_TAGS = {"act/": "act_hist/", "act_grad/": "act_grad_hist/"}
#: At most this many buckets per histogram, as in TensorBoard's own histogram summaries.
MAX_BUCKETS = 30

# Event files of one process are told apart by this counter, as TensorBoard's writers do.
_file_ids = itertools.count()


def _tensorboard() -> tuple[Any, Any, Any]:
    """(event_pb2, summary_pb2, RecordWriter) of the ``tensorboard`` package."""
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter
    except ImportError as e:
        raise ImportError(
            "TensorBoardSink needs the `tensorboard` package: pip install 'fusedstats[tensorboard]'"
        ) from e
    return event_pb2, summary_pb2, RecordWriter


def grad_param_histograms(floats: Mapping[str, float]) -> dict[str, list[float]]:
    """Per stat, the finite values of the ``grad_param/<parameter>/<stat>`` keys, in order.

    Example:
        >>> grad_param_histograms({"grad_param/a.weight/norm": 2.0, "grad/norm": 1.0,
        ...                        "grad_param/a.bias/norm": float("nan"),
        ...                        "grad_param/a.bias/mean": 0.5})
        {'norm': [2.0], 'mean': [0.5]}
    """
    values: defaultdict[str, list[float]] = defaultdict(list)
    for key, value in floats.items():
        split = split_grad_param_key(key)
        if split is not None and math.isfinite(value):
            values[split[1]].append(value)
    return dict(values)


def module_histograms(floats: Mapping[str, float]) -> dict[str, list[float]]:
    """Per ``act_hist/<stat>`` (``act_grad_hist/<stat>``) tag, the finite values of the
    ``act/<module>/<stat>`` (``act_grad/<module>/<stat>``) keys, in order.

    Example:
        >>> module_histograms({"act/fc1/mean": 0.5, "act/fc2/mean": 1.5, "act/fc2/max": 2.0,
        ...                    "act_grad/fc1/norm": float("inf"), "grad/norm": 1.0})
        {'act_hist/mean': [0.5, 1.5], 'act_hist/max': [2.0]}
    """
    values: defaultdict[str, list[float]] = defaultdict(list)
    for key, value in floats.items():
        for prefix, tag in MODULE_HISTOGRAM_TAGS.items():
            if key.startswith(prefix):
                module, sep, stat = key[len(prefix) :].rpartition("/")
                if sep and module and stat and math.isfinite(value):
                    values[tag + stat].append(value)
    return dict(values)


def exponent_histogram_fields(bins: Mapping[str, float]) -> dict[str, Any] | None:
    """The ``HistogramProto`` fields of one exponent histogram (``{label: count}`` as
    :func:`fusedstats.health.keys.exponent_histograms_of` gives): x is log2|x|, one
    bucket per power of two, zeros left out; None when it counts no nonzero element.

    Example:
        >>> f = exponent_histogram_fields({"-1": 2.0, "1": 1.0, "zero": 5.0})
        >>> f["bucket_limit"], f["bucket"], f["min"], f["num"]
        ([0.0, 1.0, 2.0], [2.0, 0.0, 1.0], -1.0, 3.0)
    """
    edges, counts = log2_buckets(bins)
    if not counts or sum(counts) == 0:
        return None
    mids = [edge - 0.5 for edge in edges]
    return {
        "min": edges[0] - 1.0,
        "max": edges[-1],
        "num": float(sum(counts)),
        "sum": float(sum(c * m for c, m in zip(counts, mids, strict=True))),
        "sum_squares": float(sum(c * m * m for c, m in zip(counts, mids, strict=True))),
        "bucket_limit": edges,
        "bucket": counts,
    }


def histogram_fields(values: list[float]) -> dict[str, Any]:
    """The fields of a TensorBoard ``HistogramProto`` of finite ``values`` (not empty).

    ``bucket_limit[i]`` is the right edge of ``bucket[i]``; the first bucket starts at
    ``min`` (TensorBoard's convention). At most :data:`MAX_BUCKETS` equal-width buckets.

    Example:
        >>> fields = histogram_fields([1.0, 2.0, 4.0])
        >>> fields["num"], fields["sum"], fields["sum_squares"], fields["min"], fields["max"]
        (3.0, 7.0, 21.0, 1.0, 4.0)
        >>> fields["bucket_limit"], fields["bucket"]
        ([2.0, 3.0, 4.0], [1.0, 1.0, 1.0])
    """
    data = np.asarray(values, dtype=np.float64)
    low, high = float(data.min()), float(data.max())
    # Spans near the float64 limits overflow (max - min, x * x): inf is the honest answer.
    with np.errstate(all="ignore"):
        edges = np.unique(np.linspace(low, high, min(MAX_BUCKETS, data.size) + 1))
        if edges.size < 2 or not np.isfinite(edges).all():
            edges = np.array([low, high])
        if low == high:
            counts = np.array([data.size])
        else:
            counts, _ = np.histogram(data, bins=edges)
        total, squares = float(data.sum()), float((data * data).sum())
    return {
        "min": low,
        "max": high,
        "num": float(data.size),
        "sum": total,
        "sum_squares": squares,
        "bucket_limit": [float(edge) for edge in edges[1:]],
        "bucket": [float(count) for count in counts],
    }


class TensorBoardSink:
    """Writes each payload as one TensorBoard event at ``step``, in ``log_dir``.

    Every numeric value becomes a scalar under its key (``float()`` as in the other
    sinks; values that are not numbers are left out and counted in
    :attr:`dropped_by_key`). TensorBoard stores scalars as float32: NaN and Inf are
    kept as they are (TensorBoard stores and draws them), and finite values beyond the
    float32 range become +-Inf. With ``histograms``, the payload's
    ``grad_param/<parameter>/<stat>`` keys are also written as one histogram per stat
    across parameters, tagged ``grad_param_hist/<stat>``, from the finite values only
    (a stat with none gets no histogram at that step); likewise ``act/<module>/<stat>``
    and ``act_grad/<module>/<stat>`` across modules, tagged ``act_hist/<stat>`` and
    ``act_grad_hist/<stat>``; and each exponent histogram carried as
    ``exp_hist/<base>/<bin>`` keys (:mod:`fusedstats.health.keys`) becomes one
    histogram of log2|x| tagged ``exp_hist/<base>``, in place of those scalars.

    The event file (``events.out.tfevents.<time>.<host>.<pid>.<n>``, parent folders
    created) is opened at the first write. After :meth:`close`, or after a write or
    flush that raised, the file is closed and the next write starts a new file in the
    same folder, which TensorBoard reads as one run: a half-written event is only ever
    at the end of a file nothing writes to any more. Each file starts with a
    ``brain.Event:2`` version event, so TensorBoard does not discard steps that arrive
    out of order (a spool replay). Events are handed to the OS (no fsync) at the first
    write after ``flush_secs`` since the last flush, by :meth:`flush` and by
    :meth:`close`; with the default 0 after every write.

    Example:
        >>> import tempfile
        >>> sink = TensorBoardSink(tempfile.mkdtemp())
        >>> sink.write({"overview/sps": 1200.0, "grad_param/w/norm": 2.0, "note": "x"},
        ...            step=10, epoch=1)
        >>> sink.close()
        >>> sink.path.name.startswith("events.out.tfevents."), dict(sink.dropped_by_key)
        (True, {'note': 1})
    """

    name = "tensorboard"

    def __init__(
        self,
        log_dir: str | os.PathLike[str],
        *,
        histograms: bool = True,
        flush_secs: float = 0.0,
        filename_suffix: str = "",
    ) -> None:
        if not flush_secs >= 0:  # NaN too
            raise ValueError(f"flush_secs must be >= 0, got {flush_secs!r}")
        # Only looked up here: importing tensorboard's protos takes ~0.18 s, which the
        # first write pays on the sink thread instead of the training thread.
        if importlib.util.find_spec("tensorboard") is None:
            _tensorboard()  # raises the ImportError that says what to install
        self._modules: tuple[Any, Any, Any] | None = None
        self.log_dir = Path(log_dir)
        self.histograms = bool(histograms)
        self.flush_secs = float(flush_secs)
        self.filename_suffix = filename_suffix
        self.dropped_by_key: Counter[str] = Counter()
        #: The event file written now, or last; None before the first write.
        self.path: Path | None = None
        self._file: BinaryIO | None = None
        self._records: Any = None
        self._last_flush = 0.0
        self._lock = threading.Lock()  # the runner calls one at a time; direct users may not

    @property
    def _event_pb2(self) -> Any:
        return self._tensorboard_modules()[0]

    @property
    def _summary_pb2(self) -> Any:
        return self._tensorboard_modules()[1]

    @property
    def _record_writer(self) -> Any:
        return self._tensorboard_modules()[2]

    def _tensorboard_modules(self) -> tuple[Any, Any, Any]:
        if self._modules is None:
            self._modules = _tensorboard()
        return self._modules

    def write(self, payload: Mapping[str, float], *, step: int, epoch: int) -> None:
        floats, dropped = float_payload(payload)
        self.dropped_by_key.update(dropped)
        summary = self._summary(floats)
        if not summary.value:
            return
        # Serialized before the file is touched: a bad event never leaves half a record.
        data = self._event_pb2.Event(
            wall_time=time.time(), step=int(step), summary=summary
        ).SerializeToString()
        with self._lock:
            self._write_record(data)
            if time.monotonic() - self._last_flush >= self.flush_secs:
                self._flush_file()

    def flush(self) -> None:
        with self._lock:
            self._flush_file()

    def close(self) -> None:
        """Closes the event file (flushing it); a later write starts a new one."""
        with self._lock:
            file, self._file, self._records = self._file, None, None
            if file is not None:
                file.close()  # closes the descriptor even when the final flush raises

    def _summary(self, floats: Mapping[str, float]) -> Any:
        summary_pb2 = self._summary_pb2
        values = [
            summary_pb2.Summary.Value(tag=k, simple_value=v)
            for k, v in floats.items()
            if not (self.histograms and k.startswith(EXP_HIST_PREFIX))
        ]
        if self.histograms:
            for stat, finite in grad_param_histograms(floats).items():
                histo = summary_pb2.HistogramProto(**histogram_fields(finite))
                values.append(summary_pb2.Summary.Value(tag=HISTOGRAM_PREFIX + stat, histo=histo))
            for tag, finite in module_histograms(floats).items():
                histo = summary_pb2.HistogramProto(**histogram_fields(finite))
                values.append(summary_pb2.Summary.Value(tag=tag, histo=histo))
            for base, bins in exponent_histograms_of(floats).items():
                fields = exponent_histogram_fields(bins)
                if fields is not None:
                    histo = summary_pb2.HistogramProto(**fields)
                    tag = EXP_HIST_PREFIX + base
                    values.append(summary_pb2.Summary.Value(tag=tag, histo=histo))
        return summary_pb2.Summary(value=values)

    def _write_record(self, data: bytes) -> None:
        if self._records is None:
            self._open()
        try:
            self._records.write(data)
        except BaseException:
            self._abandon()
            raise

    def _flush_file(self) -> None:
        if self._file is None:
            return
        try:
            self._file.flush()
        except BaseException:
            self._abandon()
            raise
        self._last_flush = time.monotonic()

    def _open(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # TensorBoard reads a folder's files in name order: the counter is zero-padded so
        # that file 10 of one second sorts after file 9 (unpadded, "10" < "9").
        name = (
            f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
            f"{os.getpid()}.{next(_file_ids):06d}{self.filename_suffix}"
        )
        path = self.log_dir / name
        file = path.open("wb")
        try:
            records = self._record_writer(file)
            version = self._event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2")
            records.write(version.SerializeToString())
        except BaseException:
            file.close()
            raise
        self.path, self._file, self._records = path, file, records
        self._last_flush = time.monotonic()

    def _abandon(self) -> None:
        """Closes a file whose last write or flush failed; the next write opens another."""
        file, self._file, self._records = self._file, None, None
        if file is not None:
            with contextlib.suppress(Exception):  # it failed already; the first error is raised
                file.close()
