"""Tensors and models the tensor-statistics benchmarks read.

- :func:`make_tensors`: gradient-like tensors sized like a model's parameter list
  (``bench/bench_tensor_stats.py``, ``fusedstats bench --device``);
- :func:`normal_tensors`: equal-sized tensors (``bench/bench_extended.py``);
- :func:`synthetic_model` and :func:`model_gradients`: a small conv + MLP classifier and
  the gradients of one backward pass (the tensor-stats part of ``fusedstats bench``);
- :func:`block_model`: Linear + LayerNorm blocks (``bench/bench_sharded.py``).

torch is imported inside the functions that need it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def gradient_shapes(n_tensors: int, numel: int, seed: int = 0) -> list[tuple[int, ...]]:
    """Shapes like a model's parameter list, with exactly ``numel`` elements in all.

    A third are vectors (biases, norm scales: 64 to 1024 elements); the rest are
    matrices whose sizes spread log-uniformly over two decades, so a few large ones
    hold most of the bytes, as in real models. Deterministic for a seed.

    Example:
        >>> shapes = gradient_shapes(200, 1_000_000)
        >>> len(shapes), sum(math.prod(s) for s in shapes)
        (200, 1000000)
    """
    rng = np.random.default_rng(seed)
    n_vec = n_tensors // 3
    n_mat = n_tensors - n_vec
    vec_sizes = [int(w) for w in rng.choice([64, 128, 256, 512, 768, 1024], size=n_vec)]
    budget = numel - sum(vec_sizes)
    if n_mat < 1 or budget < n_mat:
        raise ValueError(f"{numel} elements are too few for {n_tensors} tensors")
    weights = np.exp(rng.uniform(0.0, math.log(100.0), size=n_mat))
    sizes = np.floor(weights / weights.sum() * budget).astype(np.int64)
    mats: list[list[int]] = []
    for size in sizes:
        cols = int(rng.choice([64, 128, 256, 512, 1024]))
        cols = max(1, min(cols, int(size)))
        mats.append([max(1, int(size) // cols), cols])
    # Put the rounding left-over on the largest matrix, then (< its width) on a vector.
    left = budget - sum(r * c for r, c in mats)
    big = max(range(n_mat), key=lambda i: mats[i][0] * mats[i][1])
    mats[big][0] += left // mats[big][1]
    left -= (left // mats[big][1]) * mats[big][1]
    shapes: list[tuple[int, ...]] = [(r, c) for r, c in mats]
    if vec_sizes:
        vec_sizes[-1] += left
        shapes += [(v,) for v in vec_sizes]
    elif left:
        shapes[big] = (shapes[big][0] * shapes[big][1] + left,)
    order = rng.permutation(len(shapes))
    return [shapes[i] for i in order]


def make_tensors(n_tensors: int, numel: int, dtype: str, device: str, seed: int = 0) -> list[Any]:
    """Gradient-like tensors of :func:`gradient_shapes`: normal, std 1e-3, as ``dtype``
    (a torch dtype's name) on ``device``."""
    import torch

    gen = torch.Generator(device=device).manual_seed(seed)
    out = []
    for shape in gradient_shapes(n_tensors, numel, seed):
        x = torch.randn(shape, generator=gen, device=device, dtype=torch.float32)
        out.append(x.mul_(1e-3).to(getattr(torch, dtype)))
    return out


def normal_tensors(n_tensors: int, numel: int, std: float = 0.02, seed: int = 0) -> list[Any]:
    """``n_tensors`` float32 CPU tensors of ``numel // n_tensors`` normal values each."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(numel // n_tensors, generator=gen) * std for _ in range(n_tensors)]


def transpose_every_other(tensors: list[Any]) -> tuple[list[Any], int, int]:
    """Every other 2-D tensor as its transpose (a non-contiguous view).

    Returns:
        The new list, how many tensors are non-contiguous views, and their bytes.
    """
    out, n, nbytes, k = [], 0, 0, 0
    for t in tensors:
        view = t
        if t.dim() == 2 and min(t.shape) > 1:
            if k % 2 == 0:
                view = t.t()
                n += 1
                nbytes += t.numel() * t.element_size()
            k += 1
        out.append(view)
    return out, n, nbytes


def nbytes_of(tensors: list[Any]) -> int:
    """Bytes of all elements (what one pass over the inputs must read)."""
    return int(sum(t.numel() * t.element_size() for t in tensors))


def synthetic_model() -> Any:
    """A conv + MLP classifier of 32x32 images with ~4.8M parameters in 18 tensors.

    Example:
        >>> model = synthetic_model()
        >>> sum(p.numel() for p in model.parameters())
        4841354
    """
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 64, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(64, 128, 3, padding=1, stride=2),
        nn.BatchNorm2d(128),
        nn.ReLU(),
        nn.Conv2d(128, 256, 3, padding=1, stride=2),
        nn.BatchNorm2d(256),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(256, 2048),
        nn.LayerNorm(2048),
        nn.ReLU(),
        nn.Linear(2048, 1536),
        nn.ReLU(),
        nn.Linear(1536, 512),
        nn.ReLU(),
        nn.Linear(512, 10),
    )


def model_gradients(model: Any, batch: int = 16, seed: int = 0) -> list[Any]:
    """The gradients of one cross-entropy backward pass on random images."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    images = torch.randn(batch, 3, 32, 32, generator=gen).to(device)
    labels = torch.randint(0, 10, (batch,), generator=gen).to(device)
    model.zero_grad(set_to_none=True)
    loss: Any = torch.nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    return [p.grad for p in model.parameters() if p.grad is not None]


def block_model(width: int, blocks: int, seed: int = 0) -> Any:
    """``blocks`` x (Linear(width, width) + LayerNorm(width)), seeded.

    Example:
        >>> sum(1 for _ in block_model(4, 2).parameters())
        8
    """
    import torch

    torch.manual_seed(seed)
    layers: list[Any] = []
    for _ in range(blocks):
        layers += [torch.nn.Linear(width, width), torch.nn.LayerNorm(width)]
    return torch.nn.Sequential(*layers)


__all__ = [
    "block_model",
    "gradient_shapes",
    "make_tensors",
    "model_gradients",
    "nbytes_of",
    "normal_tensors",
    "synthetic_model",
    "transpose_every_other",
]
