"""``fusedstats bench``: the suite's table and JSON (two quick parts; the others share
the same machinery and are run by hand, see the README)."""

from __future__ import annotations

import json

import pytest

from fusedstats.cli import main


@pytest.mark.slow
def test_bench_quick_prints_one_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--only", "logger", "reporter", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["quick"] is True
    assert [r["part"] for r in result["rows"]] == ["logger"] * 3 + ["reporter"]
    for row in result["rows"]:
        assert row["fusedstats"] > 0 and row["reference"] > 0
        assert row["ratio"] == pytest.approx(row["reference"] / row["fusedstats"])
        assert row["case"] in printed
    assert "plain-Python logger (RLlib not installed)" in printed
    assert "ratio = reference / fusedstats" in printed
    # The reporter part races bench/bench_reporter.py's workload: ~1,500 payload keys.
    assert "1,508 payload keys" in result["rows"][-1]["case"]
    # The machine and the run's settings are recorded, as by every benchmark.
    assert result["machine"]["fusedstats_file"] and result["machine"]["date_utc"]
    assert result["settings"]["parts"] == ["logger", "reporter"]
    assert len(result["load_average_end"] or [0, 0, 0]) == 3
