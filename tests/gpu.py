"""Helpers of the CUDA tests (which skip without a GPU)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def sync_is_an_error() -> Iterator[None]:
    """Any host sync inside the block raises (torch's sync debug mode), restored after."""
    import torch

    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(previous)
