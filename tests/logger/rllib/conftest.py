from collections.abc import Iterator

import pytest
from tests.logger.rllib.client import RllibProcess
from tests.logger.rllib.venv import rllib_python


@pytest.fixture(scope="session")
def rllib() -> Iterator[RllibProcess]:
    """RLlib 2.40's MetricsLogger in a subprocess of its own virtualenv (created on the
    first run: see venv.py)."""
    process = RllibProcess(rllib_python())
    try:
        yield process
    finally:
        process.close()
