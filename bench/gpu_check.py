"""The Python half of scripts/gpu_check.sh (run on a machine with a GPU).

1. Records the GPU's buffers for the fixed cases of tests/kernels/emulation.py
   (``--record``) and reports whether the host emulation reproduces them bit for bit.
2. Re-runs the static review's repros for F1 (a captured graph after 40 other lists and
   empty_cache), F2 (warm-up on a side stream, capture without ``stream=``) and F5
   (replays overlapping eager calls of the same list), now expected to pass.
3. Times float32, bfloat16 and float64 tensors of >= 1 GiB: fusedstats.tensor_stats vs
   torch.aminmax + torch.var_mean, and the copy bandwidth (read + write), raced with
   ``fusedstats.bench.harness.race`` (interleaved; each call timed with CUDA events);
   medians, all in the same run.

    python bench/gpu_check.py [--record NPZ] [--out PATH] [--gib G] [--reps N] [--quick]

Target: fusedstats reads at >= 80% of the device's copy bandwidth (read + write bytes
of ``y.copy_(x)`` per second) on every dtype, and its numbers match a float64
recomputation. Writes JSON (default bench/results/gpu_check.json; ``--quick``, 0.25 GiB
and 5 repetitions, writes only where ``--out`` says) with the device named. Imports
fusedstats as installed and, being the GPU half of the test suite, the test helpers
from the checkout (``tests.helpers``, ``tests.kernels.emulation``). Exits 1 when a check
fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

import fusedstats
from fusedstats.bench.harness import (
    add_common_arguments,
    cuda_event_timer,
    finish_report,
    new_report,
    race,
    save_report,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "gpu_check.json"
TARGET_COPY_SHARE = 0.80
sys.path.insert(0, str(ROOT))  # the test helpers


def _close(out: torch.Tensor, tensors: list[torch.Tensor]) -> bool:
    from tests.helpers import assert_matches_reference

    try:
        assert_matches_reference(out, [t.cpu() for t in tensors])
    except AssertionError as err:
        print(err)
        return False
    return True


def _params(seed: int) -> list[torch.Tensor]:
    g = torch.Generator(device="cuda").manual_seed(seed)
    sizes = [3 * 65536 + 5, 65536, 1, 0, 4097, 2 * 65536 - 1]
    return [
        torch.randn(n, device="cuda", generator=g) * 2 + 1e4 * (i % 2) for i, n in enumerate(sizes)
    ]


def repro_f1() -> bool:
    params = _params(1)
    out = torch.empty(len(params) + 1, fusedstats.NUM_COLUMNS, dtype=torch.float64, device="cuda")
    fusedstats.tensor_stats(params, out=out)
    g1 = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g1):
        fusedstats.tensor_stats(params, out=out)
    for i in range(40):
        fusedstats.tensor_stats([torch.randn(1000 + i, device="cuda")])
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    g2 = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g2):
        torch.zeros(1, device="cuda").add_(1)
    for p in params:
        p.add_(1.0)
    g1.replay()
    torch.cuda.synchronize()
    return _close(out, params)


def repro_f2() -> bool:
    params = _params(2)
    out = torch.empty(len(params) + 1, fusedstats.NUM_COLUMNS, dtype=torch.float64, device="cuda")
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        fusedstats.tensor_stats(params, out=out)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fusedstats.tensor_stats(params, out=out)
    for p in params:
        p.mul_(3.0)
    g.replay()
    torch.cuda.synchronize()
    return _close(out, params)


def repro_f5() -> bool:
    params = _params(3)
    out = torch.empty(len(params) + 1, fusedstats.NUM_COLUMNS, dtype=torch.float64, device="cuda")
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        fusedstats.tensor_stats(params, out=out)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g, stream=s):
        fusedstats.tensor_stats(params, out=out)
    torch.cuda.synchronize()
    for _ in range(50):
        g.replay()
        with torch.cuda.stream(s):
            fusedstats.tensor_stats(params)
    torch.cuda.synchronize()
    later = [fusedstats.tensor_stats(params).as_tensor() for _ in range(3)]
    return all(_close(x, params) for x in [out, *later])


def throughput(gib: float, reps: int) -> list[dict[str, Any]]:
    rows = []
    for dtype in (torch.float32, torch.bfloat16, torch.float64):
        n = int(gib * 2**30) // torch.tensor([], dtype=dtype).element_size()
        x = torch.randn(n, device="cuda").to(dtype)
        y = torch.empty_like(x)
        out = torch.empty(2, fusedstats.NUM_COLUMNS, dtype=torch.float64, device="cuda")
        nbytes = x.numel() * x.element_size()
        timed = race(
            {
                "fusedstats": lambda x=x, out=out: fusedstats.tensor_stats([x], out=out),
                "torch": lambda x=x: (torch.aminmax(x), torch.var_mean(x)),
                "copy": lambda x=x, y=y: y.copy_(x),
            },
            reps,
            sync=torch.cuda.synchronize,
            timer=cuda_event_timer,
        )
        fs, tq, cp = (timed.median(name) * 1e3 for name in ("fusedstats", "torch", "copy"))
        got = fusedstats.tensor_stats([x]).global_
        xd = x.double()
        var, mean = torch.var_mean(xd)
        want = {"mean": mean, "var": var, "min": xd.min(), "max": xd.max(), "l1": xd.abs().sum()}
        ok = all(abs(got[k] - float(v)) <= 1e-6 * abs(float(v)) + 1e-9 for k, v in want.items())
        del xd
        rows.append(
            {
                "dtype": str(dtype).removeprefix("torch."),
                "bytes": nbytes,
                "fusedstats_ms": fs,
                "torch_aminmax_var_mean_ms": tq,
                "copy_ms": cp,
                "fusedstats_read_GBps": nbytes / fs / 1e6,
                "torch_read_GBps": nbytes / tq / 1e6,
                "copy_GBps_read_plus_write": 2 * nbytes / cp / 1e6,
                "fusedstats_vs_torch": tq / fs,
                "fusedstats_vs_copy_read": (nbytes / fs) / (2 * nbytes / cp),
                "copy_share_met": (nbytes / fs) / (2 * nbytes / cp) >= TARGET_COPY_SHARE,
                "matches_reference": ok,
            }
        )
        print(json.dumps(rows[-1]))
        del x, y, timed  # timed keeps the first call's outputs (the copy's is y)
        torch.cuda.empty_cache()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_common_arguments(parser, DEFAULT_OUT)
    parser.add_argument("--record", type=Path, default=None, help="record the GPU's buffers")
    parser.add_argument("--gib", type=float, default=None, help="GiB per tensor (1; quick 0.25)")
    parser.add_argument("--reps", type=int, default=None, help="timed calls (20; quick 5)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: torch sees no GPU", file=sys.stderr)
        return 1
    gib = args.gib or (0.25 if args.quick else 1.0)
    reps = args.reps or (5 if args.quick else 20)
    props = torch.cuda.get_device_properties(0)
    result = new_report(
        "gpu_check",
        quick=args.quick,
        device="cuda",
        checkout=ROOT,
        settings={"gib": gib, "reps": reps, "capability": f"{props.major}.{props.minor}"},
    )
    t0 = time.perf_counter()
    if args.record is not None:
        from tests.kernels.emulation import record_gpu

        result["emulation_vs_gpu"] = record_gpu(args.record)
        print("emulation vs GPU:", result["emulation_vs_gpu"])
    result["repros"] = {"F1": repro_f1(), "F2": repro_f2(), "F5": repro_f5()}
    print("repros:", result["repros"])
    result["throughput"] = throughput(gib, reps)
    result["seconds"] = time.perf_counter() - t0
    finish_report(result)
    save_report(result, args.out, args.quick, DEFAULT_OUT)
    emu = result.get("emulation_vs_gpu", {})
    ok = all(result["repros"].values()) and not emu.get("differences")
    ok = ok and all(r["matches_reference"] for r in result["throughput"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
