"""Logging from several threads loses nothing, also while another thread reduces."""

import sys
import threading
from collections import Counter

import pytest

from fusedstats import MetricsLogger

THREADS = 8
CALLS = 10_000


@pytest.fixture(autouse=True)
def _switch_often():
    # Switch threads every few microseconds instead of every 5 ms, so the loggers'
    # appends, folds and reduces interleave as much as they can under the GIL.
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def _run_all(targets):
    start = threading.Barrier(len(targets))
    errors = []

    def wrapped(target):
        try:
            start.wait()
            target()
        except BaseException as err:  # surfaced below: a thread's error must fail the test
            errors.append(err)

    threads = [threading.Thread(target=wrapped, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_eight_threads_log_exact_counts_and_sums():
    logger = MetricsLogger()
    logger.log_value("count", 0, reduce="sum")  # created once: the threads only push
    logger.log_value("items", 0, reduce=None, clear_on_reduce=True)

    def log(thread):
        def run():
            for i in range(CALLS):
                logger.log_value("count", 1, reduce="sum")
                logger.log_value("total", thread * CALLS + i, reduce="sum")
                logger.log_value("items", (thread, i), reduce=None, clear_on_reduce=True)

        return run

    _run_all([log(t) for t in range(THREADS)])
    n = THREADS * CALLS
    assert logger.peek("count") == n
    assert logger.peek("total") == n * (n - 1) // 2
    items = logger.peek("items")[1:]
    assert len(items) == n
    assert set(items) == {(t, i) for t in range(THREADS) for i in range(CALLS)}
    # Each thread's own values arrive in its order.
    for t in range(THREADS):
        assert [i for tt, i in items if tt == t] == list(range(CALLS))


def test_concurrent_reduce_loses_nothing():
    logger = MetricsLogger()
    logger.log_value("n", 0, reduce="sum", clear_on_reduce=True)
    logger.log_value("lifetime", 0, reduce="sum")
    logger.log_value("items", -1, reduce=None, clear_on_reduce=True)
    done = threading.Event()
    reduced_n = []
    reduced_items = []

    def log(thread):
        def run():
            for i in range(CALLS // 2):
                logger.log_value("n", 1)
                logger.log_value("lifetime", 2)
                logger.log_value("items", thread * CALLS + i)

        return run

    def reduce_repeatedly():
        while not done.is_set():
            results = logger.reduce(return_stats_obj=False)
            reduced_n.append(results["n"])
            reduced_items.extend(results["items"])

    loggers = [log(t) for t in range(THREADS - 1)]
    reducer = threading.Thread(target=reduce_repeatedly)
    reducer.start()
    try:
        _run_all(loggers)
    finally:
        done.set()
        reducer.join()
    final = logger.reduce(return_stats_obj=False)
    n = (THREADS - 1) * (CALLS // 2)
    assert len(reduced_n) > 1, "the reducer never overlapped the loggers"
    assert sum(reduced_n) + final["n"] == n
    assert final["lifetime"] == 2 * n
    everything = Counter(reduced_items) + Counter(final["items"])
    expected = Counter(t * CALLS + i for t in range(THREADS - 1) for i in range(CALLS // 2))
    expected[-1] += 1
    assert everything == expected


def test_threads_creating_the_same_keys():
    # First calls race too: every thread creates the keys it logs to.
    logger = MetricsLogger()

    def log(thread):
        def run():
            for i in range(1000):
                logger.log_value(("shared", f"k{i % 10}"), 1, reduce="sum")
                logger.log_value(("mine", f"t{thread}"), 1, reduce="sum")

        return run

    _run_all([log(t) for t in range(THREADS)])
    assert logger.peek("shared") == {f"k{j}": THREADS * 100 for j in range(10)}
    assert logger.peek("mine") == {f"t{t}": 1000 for t in range(THREADS)}
