"""Runs in a spawned process (tests/logger/test_state.py): a component that logs,
reduces, and hands its result back pickled, as a remote worker would."""

import pickle

from fusedstats import MetricsLogger


def log_and_reduce(offset: int) -> bytes:
    logger = MetricsLogger()
    for i in range(5):
        logger.log_value("steps", 10 + offset, reduce="sum")
        logger.log_value(("returns", "mean"), float(i + offset), window=3)
        logger.log_value("episodes", i + offset, reduce=None)
    return pickle.dumps(logger.reduce())
