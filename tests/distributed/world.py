"""Runs a function on every rank of a real gloo world of spawned processes.

``run_world("tests.distributed.scenarios:fn", 4, args)`` starts 4 processes (spawn),
joins them in a gloo process group on 127.0.0.1 (a file:// rendezvous, so no port can
be taken by someone else), calls ``fn(rank, world_size, *args)`` on each and returns
what each returned, in rank order. A deadline bounds the whole world: a rank that hangs
(a regression in a collective) fails the test instead of hanging it, and the process
group's own timeout makes a stuck collective raise inside the ranks.
"""

from __future__ import annotations

import datetime
import importlib
import os
import pickle
import queue
import tempfile
import time
import traceback
from typing import Any

import pytest
import torch.multiprocessing as mp

# A stuck collective raises after this (inside the ranks); the world as a whole gets
# DEADLINE_S. 4 ranks share 2 cores here: each start imports torch (~2 s of CPU).
COLLECTIVE_TIMEOUT_S = 30
DEADLINE_S = 150


def _entry(
    target: str, rank: int, world_size: int, init_file: str, args: tuple[Any, ...], out: Any
) -> None:
    try:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        import torch.distributed as dist

        dist.init_process_group(
            "gloo",
            init_method=f"file://{init_file}",
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S),
        )
        module_name, fn_name = target.split(":")
        fn = getattr(importlib.import_module(module_name), fn_name)
        try:
            result = fn(rank, world_size, *args)
        finally:
            dist.destroy_process_group()
        out.put((rank, "ok", pickle.dumps(result)))
    except BaseException:
        out.put((rank, "error", traceback.format_exc()))


def run_world(
    target: str, world_size: int, args: tuple[Any, ...] = (), deadline_s: float = DEADLINE_S
) -> list[Any]:
    """Each rank's return value of ``target`` ("module:function"), in rank order."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "rendezvous")
        procs = [
            ctx.Process(
                target=_entry, args=(target, r, world_size, init_file, args, out), daemon=True
            )
            for r in range(world_size)
        ]
        for p in procs:
            p.start()
        results: dict[int, Any] = {}
        errors: dict[int, str] = {}
        end = time.monotonic() + deadline_s
        try:
            while len(results) + len(errors) < world_size:
                left = end - time.monotonic()
                if left <= 0:
                    break
                try:
                    rank, status, body = out.get(timeout=min(left, 1.0))
                except queue.Empty:
                    if any(p.exitcode not in (None, 0) for p in procs):
                        time.sleep(0.5)  # its message may still be in the pipe
                        while not out.empty():
                            rank, status, body = out.get()
                            (results if status == "ok" else errors)[rank] = body
                        break
                    continue
                if status == "ok":
                    results[rank] = pickle.loads(body)
                else:
                    errors[rank] = body
        finally:
            for p in procs:
                p.join(timeout=5)
            for p in procs:
                if p.is_alive():
                    p.kill()
                    p.join(timeout=5)
    if errors:
        text = "\n".join(f"--- rank {r} ---\n{tb}" for r, tb in sorted(errors.items()))
        pytest.fail(f"{target} failed on {len(errors)} rank(s):\n{text}")
    if len(results) < world_size:
        missing = sorted(set(range(world_size)) - set(results))
        codes = [p.exitcode for p in procs]
        pytest.fail(
            f"{target}: ranks {missing} gave no result within {deadline_s} s (exit codes "
            f"{codes}): a hang or a crash"
        )
    return [results[r] for r in range(world_size)]


def fresh_seed() -> int:
    """A seed drawn fresh each run (printed by the tests on failure)."""
    return int.from_bytes(os.urandom(4), "little")


__all__ = ["fresh_seed", "run_world"]


def skip_without_gloo() -> None:
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
