"""ConsoleSink: one compact summary line per payload."""

from __future__ import annotations

import io
import math

from fusedstats.sinks import ConsoleSink


def test_default_keys_in_order_shortened_and_compact():
    out = io.StringIO()
    sink = ConsoleSink(stream=out)
    payload = {
        "metric/agent_step": 1_234_567.0,
        "losses/policy_loss": -0.012345,
        "overview/reward": 0.5,
        "overview/sps": 45_678.9,
        "losses/value_loss": 3.0,  # not a chosen key
    }
    sink.write(payload, step=1_234_567, epoch=12)
    assert out.getvalue() == (
        "epoch 12 | step 1,234,567 | sps 45.7k | reward 0.5 | policy_loss -0.01235"
        " | agent_step 1.23M\n"
    )


def test_missing_and_non_numeric_keys_are_left_out_and_nonfinite_shown():
    out = io.StringIO()
    sink = ConsoleSink(keys=("overview/sps", "overview/reward", "a/x", "b/x"), stream=out)
    sink.write({"overview/sps": "fast", "a/x": math.nan, "b/x": math.inf}, step=0, epoch=0)
    # Two chosen keys end in "x": they keep their full names.
    assert out.getvalue() == "epoch 0 | step 0 | a/x nan | b/x inf\n"


def test_default_stream_is_stderr_at_write_time(capsys):
    sink = ConsoleSink()
    sink.write({"overview/sps": 10.0}, step=3, epoch=1)
    sink.flush()
    sink.close()
    captured = capsys.readouterr()
    assert captured.err == "epoch 1 | step 3 | sps 10\n"
    assert captured.out == ""
