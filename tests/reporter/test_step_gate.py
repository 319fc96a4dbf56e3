"""The reporter counts the optimizer steps the non-finite gate skipped."""

from __future__ import annotations

import torch

import fusedstats
from fusedstats.reporter import NoOpStatsReporter


def test_skipped_steps_per_epoch_and_in_total(make_reporter):
    reporter = make_reporter()
    model = torch.nn.Linear(3, 2)
    flag = torch.zeros(())
    pattern = [[True, False, True], [False, False], [True]]
    for epoch, steps in enumerate(pattern, start=1):
        for bad in steps:
            model.zero_grad()
            model(torch.ones(1, 3)).sum().backward()
            if bad:
                model.weight.grad[0, 0] = float("nan")
            fusedstats.gate_nonfinite(model, flag)
            reporter.record_step_gate(flag)
        reporter.report_epoch(epoch=epoch, agent_step=10 * epoch, losses_stats={}, experience=None)
        payload = reporter.get_latest_payload()
        assert payload["overview/skipped_steps"] == sum(steps)
        total = sum(sum(p) for p in pattern[:epoch])
        assert payload["overview/skipped_steps_total"] == total
        assert reporter.state.skipped_steps_total == total
    # An epoch with no gate recorded reports no gate keys.
    reporter.report_epoch(epoch=4, agent_step=40, losses_stats={}, experience=None)
    assert "overview/skipped_steps" not in reporter.get_latest_payload()


def test_the_no_op_reporter_takes_the_gate_too():
    NoOpStatsReporter().record_step_gate(torch.ones(()))
