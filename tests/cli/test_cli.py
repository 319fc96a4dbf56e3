"""The ``fusedstats`` command: demo -> store/JSONL/TensorBoard -> report, exit codes, --help.

The demo runs once per module, as a subprocess (``python -m fusedstats``), the way the
README's first command runs it; ``report`` and the argument errors run in-process
through ``fusedstats.cli.main``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fusedstats.cli import main
from fusedstats.demo.env import NUM_ACTIONS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EPOCHS = 3


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("runs")
    cmd = [sys.executable, "-m", "fusedstats", "demo", "--epochs", str(EPOCHS), "--envs", "8",
           "--out", str(out), "--name", "cli-test"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    return {"done": done, "run_dir": out / "cli-test"}


def test_demo_exits_0_and_prints_progress_and_stats_share(demo_run):
    done = demo_run["done"]
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == ["1/3", "2/3", "3/3"]
    assert any(line.startswith("stats: ") and "% of the training time" in line for line in lines)
    assert f"fusedstats report {demo_run['run_dir']}" in done.stdout


def test_the_store_holds_the_run_its_epochs_and_payloads(demo_run):
    from fusedstats.store import connect

    store = connect(demo_run["run_dir"])
    try:
        (run,) = store.list_runs()
        assert run["name"] == "cli-test"
        assert run["status"] == "completed"
        epochs = store.epochs(run["id"])
        assert [(e["start_training_epoch"], e["end_training_epoch"]) for e in epochs] == [
            (1, 1),
            (2, 2),
            (3, 3),
        ]
        assert all(0.0 <= e["attributes"]["stats_fraction"] < 1.0 for e in epochs)
        rewards = store.metric_series(run["id"], "overview/reward")
        steps = [step for step, _ in rewards]
        assert len(rewards) == EPOCHS and steps == sorted(steps) and steps[0] > 0
        keys = set(store.metric_keys(run["id"]))
        for key in ("grad/norm", "losses/policy_loss", "env_agent/hearts", "eval_forage/score",
                    "timing_per_epoch/frac/_process_stats", "overview/sps",
                    "grad/underflow_e4m3", "act/trunk.1/dormant_frac", "act/actor/mean",
                    "act_grad/trunk.3/norm", "optim/exp_avg/norm",
                    "optim/exp_avg_sq/n_nan"):  # fmt: skip
            assert key in keys, key
        assert any(k.startswith("exp_hist/grad/") for k in keys)
        # Activation stats are reported every second epoch, from one forward in ten.
        assert [s for s, _ in store.metric_series(run["id"], "act/actor/calls")] == [steps[1]]
        # Only update steps are watched (rollouts and evaluation are paused): 2 epochs of
        # 2 passes x 8 minibatches = 32 steps, of which 0, 10, 20 and 30 are recorded.
        assert store.metric_series(run["id"], "act/actor/calls") == [(steps[1], 4.0)]
        minibatch = 8 * 4 * 128 // 8
        numel = store.metric_series(run["id"], "act/actor/numel")
        assert numel == [(steps[1], 4.0 * minibatch * NUM_ACTIONS)]
        # The info dict's non-numeric leaf never becomes a key.
        assert not any(k.startswith("env_map/name") for k in keys)
    finally:
        store.close()


def test_jsonl_has_one_strict_json_line_per_epoch(demo_run):
    lines = (demo_run["run_dir"] / "stats.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert all(isinstance(r["payload"]["grad/norm"], float) for r in records)


def test_tensorboard_event_files_hold_the_scalars(demo_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb_dir = demo_run["run_dir"] / "tensorboard"
    assert list(tb_dir.glob("events.out.tfevents.*"))
    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0}).Reload()
    assert len(acc.Scalars("overview/reward")) == EPOCHS


def test_report_writes_pngs_and_an_html_page_naming_the_run(demo_run, tmp_path, capsys):
    from matplotlib import image

    summary = json.loads((demo_run["run_dir"] / "summary.json").read_text())
    assert main(["report", str(demo_run["run_dir"]), "--out", str(tmp_path)]) == 0
    assert summary["run_id"] in capsys.readouterr().out
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == [
        "grad_norm.png",
        "health.png",
        "losses.png",
        "reward.png",
        "sps.png",
        "timing.png",
    ]
    for name in pngs:
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE), name
        pixels = image.imread(tmp_path / name)
        assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    page = (tmp_path / "index.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert summary["run_id"] in page
    for name in pngs:
        assert f'<img src="{name}"' in page


def test_report_defaults_to_run_dir_report(demo_run):
    assert main(["report", str(demo_run["run_dir"])]) == 0
    assert (demo_run["run_dir"] / "report" / "index.html").is_file()


def test_report_of_a_directory_without_a_store_fails_with_1(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 1
    assert "no stats store at" in capsys.readouterr().err
    assert not (tmp_path / "stats.db").exists()  # reading never creates a store


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--epochs", "0"],
        ["demo", "--envs", "x"],
        ["demo", "--device", "tpu"],
        ["report"],
        ["bench", "--only", "nothing"],
        ["no-such-command"],
    ],
)
def test_bad_arguments_exit_2_with_a_usage_message(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "usage: fusedstats" in err
    assert "error:" in err


def test_bad_arguments_exit_2_from_the_command_line_too():
    done = subprocess.run(
        [sys.executable, "-m", "fusedstats", "demo", "--epochs", "-1"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "usage: fusedstats demo" in done.stderr


def test_help_lists_every_command_without_loading_heavy_modules():
    code = (
        "import sys, json; from fusedstats.cli import main; status = main(['--help']); "
        "heavy = [m for m in ('torch', 'matplotlib', 'sqlalchemy', 'fastapi', 'numba') "
        "if m in sys.modules]; print(json.dumps([status, heavy]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    status, heavy = json.loads(done.stdout.strip().splitlines()[-1])
    assert status == 0 and heavy == []
    for command in ("demo", "report", "bench", "serve"):
        assert f"    {command} " in done.stdout


def test_serve_is_wired_to_the_store_server(capsys):
    assert main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: fusedstats serve" in out and "--db" in out and "--port" in out


def test_serve_rejects_a_bad_port_with_2(capsys):
    assert main(["serve", "--port", "70000", "--db", "sqlite://"]) == 2
    assert "is not a port" in capsys.readouterr().err


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("fusedstats ")


def test_a_missing_run_dir_fails_with_1(tmp_path: Path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 1
    assert "no stats store" in capsys.readouterr().err
