"""torch.compile(fullgraph=True) and the custom ops: no graph break, eager numbers."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import pytest
import torch
from tests.helpers import assert_bitwise_equal, assert_matches_reference, to_numpy

import fusedstats
from fusedstats.kernels import ops


def _grads_of_a_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    model(torch.randn(4, 6)).pow(2).sum().backward()
    return model


@pytest.mark.parametrize("extended", [False, True], ids=["default", "extended"])
def test_tensor_stats_compiles_with_no_graph_break(extended: bool) -> None:
    def f(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = fusedstats.tensor_stats([a, b * 2], names=["a", "b"], extended=extended)
        hist = s.exponent_histogram if extended else s.as_tensor()[:, :1]
        return s.as_tensor() + 0, hist

    g = torch.Generator().manual_seed(int.from_bytes(__import__("os").urandom(4), "little"))
    a = torch.randn(300, generator=g) * 1e3 + 5
    b = torch.randn(7, 11, generator=g, dtype=torch.float64).t()  # non-contiguous
    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, backend="inductor")
    got_rows, got_hist = compiled(a, b)
    want_rows, want_hist = f(a, b)
    assert_bitwise_equal(got_rows, want_rows, "compiled vs eager")
    assert torch.equal(got_hist, want_hist)
    assert_matches_reference(to_numpy(got_rows)[:, : fusedstats.NUM_COLUMNS], [a, b * 2])


def test_grad_stats_compiles_and_gives_the_eager_numbers() -> None:
    model = _grads_of_a_model()
    torch._dynamo.reset()
    compiled = torch.compile(
        lambda m: fusedstats.grad_stats(m, per_parameter=True), fullgraph=True, backend="inductor"
    )
    got = compiled(model)
    want = fusedstats.grad_stats(model, per_parameter=True)
    assert set(got) == set(want)
    for key, value in want.items():
        assert isinstance(got[key], torch.Tensor) and got[key].dim() == 0
        assert got[key].item() == value or (math.isnan(value) and got[key].isnan()), key


def test_step_gate_compiles() -> None:
    model = _grads_of_a_model()
    model[2].bias.grad[1] = float("inf")
    flag = torch.zeros(1)

    def gate(m: torch.nn.Module, found_inf: torch.Tensor) -> torch.Tensor:
        stats = fusedstats.gate_nonfinite(m, found_inf)
        assert stats is not None
        return stats.as_tensor()

    torch._dynamo.reset()
    rows = torch.compile(gate, fullgraph=True, backend="inductor")(model, flag)
    assert flag.item() == 1.0
    assert rows[-1, fusedstats.COLUMNS.index("n_inf")].item() == 1.0


def test_the_first_call_may_be_inside_compile() -> None:
    # In a fresh process the ops are not registered until fusedstats first works
    # with torch; that first time is inside tracing here, and must not break the graph.
    code = textwrap.dedent(
        """
        import torch, fusedstats
        f = torch.compile(lambda x: fusedstats.tensor_stats([x]).as_tensor() * 1,
                          fullgraph=True, backend="eager")
        x = torch.arange(10.0)
        print(f(x)[-1, fusedstats.COLUMNS.index("sum")].item())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "45.0"


def test_import_does_not_register_the_ops() -> None:
    code = (
        "import torch, fusedstats; "
        "names = lambda: [n.split('::')[0] for n in torch._C._dispatch_get_all_op_names()]; "
        "print('fusedstats' in names()); "
        "fusedstats.tensor_stats([torch.ones(2)]); "
        "print('fusedstats' in names())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.stdout.split() == ["False", "True"], done.stdout + done.stderr[-2000:]


# opcheck compares eager and AOT outputs with assert_close(equal_nan=False), so lists
# whose statistics hold a NaN (an empty tensor's mean, one finite value's variance)
# skip that one check; the compile tests above compare such outputs bit for bit.
OPCHECK_LISTS = {
    "finite": ([torch.randn(5), torch.randn(3, 4, dtype=torch.float64) + 7], None),
    "nan_results": (
        [torch.randn(2, 3).to(torch.bfloat16), torch.zeros(0), torch.randn(8).to(torch.float16)],
        ("test_schema", "test_autograd_registration", "test_faketensor"),
    ),
    "non_finite_inputs": (
        [torch.tensor([float("nan"), 1.0, float("inf"), -2.0])],
        ("test_schema", "test_autograd_registration", "test_faketensor"),
    ),
}


@pytest.mark.parametrize("extended", [False, True], ids=["default", "extended"])
@pytest.mark.parametrize("case", sorted(OPCHECK_LISTS))
def test_opcheck_passes(case: str, extended: bool) -> None:
    ops.ensure_registered()
    tensors, utils = OPCHECK_LISTS[case]
    if extended and case == "finite":
        tensors = [t * 1e3 + 0.5 for t in tensors]  # every extended column finite
    kwargs = {} if utils is None else {"test_utils": utils}
    torch.library.opcheck(
        torch.ops.fusedstats.tensor_stats.default, (tensors, [], 0.0, extended), **kwargs
    )
    n = len(tensors)
    width = fusedstats.NUM_EXTENDED_COLUMNS if extended else fusedstats.NUM_COLUMNS
    out = torch.empty(n + 1, width, dtype=torch.float64)
    hist = torch.empty((n + 1, 280) if extended else (0,), dtype=torch.int64)
    torch.library.opcheck(
        torch.ops.fusedstats.tensor_stats_out.default,
        (tensors, [], 0.0, extended, out, hist),
        **kwargs,
    )


def test_op_with_row_lengths_counts_dormant_rows() -> None:
    ops.ensure_registered()
    w = torch.randn(6, 4)
    w[2] = 0
    rows, _ = torch.ops.fusedstats.tensor_stats([w], [4], 1e-6, False)
    assert rows[0, fusedstats.COLUMNS.index("n_dormant_rows")].item() == 1.0
