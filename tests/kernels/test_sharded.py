"""DTensor / FSDP2 statistics on real gloo worlds of 2 and 4 ranks: equal to the float64
reference over the full tensors, identical bits on every rank, one collective a call."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from tests.distributed.world import fresh_seed, run_world, skip_without_gloo
from tests.helpers import assert_bitwise_equal, assert_extended_close, assert_matches_reference
from tests.kernels import sharded_scenarios as sc

WORLDS = [2, pytest.param(4, marks=pytest.mark.slow)]


@pytest.fixture(scope="module", params=WORLDS, ids=lambda n: f"{n}ranks")
def one_d(request: pytest.FixtureRequest) -> dict[str, Any]:
    skip_without_gloo()
    seed = fresh_seed()
    outs = run_world("tests.kernels.sharded_scenarios:one_d", request.param, (seed,))
    return {"seed": seed, "outs": outs, "size": request.param}


def _same_on_every_rank(outs: list[dict[str, Any]], key: str, field: str = "rows") -> np.ndarray:
    first = outs[0][key][field]
    for rank, out in enumerate(outs[1:], start=1):
        assert_bitwise_equal(out[key][field], first, f"{key} {field} of rank {rank} vs rank 0")
    return first


def test_statistics_of_the_full_tensors(one_d: dict[str, Any]) -> None:
    full = sc.full_tensors(one_d["seed"])
    names = sc.ONE_D_NAMES[:-1]
    rows = _same_on_every_rank(one_d["outs"], "plain")
    assert one_d["outs"][0]["plain"]["path"] == "sharded"
    assert_matches_reference(rows, [full[n] for n in names], names)


def test_extended_statistics_and_histogram_of_the_full_tensors(one_d: dict[str, Any]) -> None:
    full = sc.full_tensors(one_d["seed"])
    names = sc.ONE_D_NAMES[:-1]
    rows = _same_on_every_rank(one_d["outs"], "extended")
    hist = _same_on_every_rank(one_d["outs"], "extended", "hist")
    assert_extended_close(rows, hist, [full[n] for n in names])


def test_one_collective_per_call(one_d: dict[str, Any]) -> None:
    for out in one_d["outs"]:
        assert out["plain_collectives"] == {"all_gather_single": 1}
        assert out["extended_collectives"] == {"all_gather_single": 1}


def test_partial_placements_are_reduced_first(one_d: dict[str, Any]) -> None:
    full = sc.full_tensors(one_d["seed"])
    rows = _same_on_every_rank(one_d["outs"], "with_partial")
    # The shares are integers summing exactly to the full tensor.
    assert_matches_reference(rows, [full[n] for n in sc.ONE_D_NAMES], sc.ONE_D_NAMES)


@pytest.mark.slow
def test_two_dimensional_meshes() -> None:
    skip_without_gloo()
    seed = fresh_seed()
    outs = run_world("tests.kernels.sharded_scenarios:two_d", 4, (seed,))
    full = sc.full_tensors(seed)
    rows = _same_on_every_rank(outs, "plain")
    tensors = [full["uneven_rows"], full["uneven_cols"], full["replicated"], full["half"]]
    assert_matches_reference(rows, tensors, ["a", "b", "c", "d"])
    assert all(out["collectives"] == {"all_gather_single": 1} for out in outs)


def _assert_same_numbers(got: dict[str, float], want: dict[str, float], what: str) -> None:
    assert set(got) == set(want), f"{what}: keys differ: {sorted(set(got) ^ set(want))[:10]}"
    bad = []
    for key, expected in want.items():
        value = got[key]
        if math.isnan(expected):
            ok = math.isnan(value)
        else:
            scale = max(abs(expected), 1e-300)
            # float64 data; sums/means of a sharded tensor merge in another order
            ok = abs(value - expected) <= 1e-9 * scale + 1e-12 * abs(want.get(_l1_key(key), 0.0))
        if not ok:
            bad.append(f"{key}: {value!r} vs {expected!r}")
    assert not bad, f"{what}: {len(bad)} differ: " + "; ".join(bad[:10])


def _l1_key(key: str) -> str:
    prefix, _, rest = key.partition("/")
    _, _, name = rest.partition("/")
    return f"{prefix}/l1/{name}" if name else f"{prefix}/l1"


@pytest.mark.parametrize("size", WORLDS, ids=lambda n: f"{n}ranks")
def test_fully_shard_model_equals_the_unsharded_model(size: int) -> None:
    skip_without_gloo()
    seed = fresh_seed()
    outs = run_world("tests.kernels.sharded_scenarios:fsdp", size, (seed,))
    want_grads, want_weights = sc.expected_net_stats(seed)
    assert len(want_grads) > 21 * 16  # > 20 parameters, every field, per parameter
    for rank, out in enumerate(outs):
        _assert_same_numbers(out["grads"], want_grads, f"grad_stats on rank {rank}")
        _assert_same_numbers(out["weights"], want_weights, f"weight_stats on rank {rank}")
        assert out["collectives"] == {"all_gather_single": 1}
        assert out["grads"] == outs[0]["grads"], "ranks disagree"
    # the planted dormant row of layers.3.weight (11 rows) is counted once
    assert outs[0]["weights"]["weights/dormant_frac/layers.3.weight"] == 1 / 11


def test_dormant_rows_of_a_row_split_weight_raise_clearly() -> None:
    skip_without_gloo()
    outs = run_world("tests.kernels.sharded_scenarios:row_split_weight", 2, ())
    for out in outs:
        message, _, ok_without = out.rpartition("#")
        assert "'w'" in message and "Shard(1)" in message and "dormant_threshold=None" in message
        assert ok_without == "True"


def test_plain_tensors_never_take_the_sharded_path() -> None:
    import fusedstats

    stats = fusedstats.tensor_stats([torch.ones(3)])
    assert stats.path == "cpu"
