"""A version's host-to-device copies on CUDA, kept from crowding out inference on the same GPU.

The copies run on a dedicated stream of the least priority CUDA has (inference on the default
or a higher-priority stream goes first), in slices of at most the byte budget's capacity, each
slice waiting for the ByteBudget, through two pinned staging buffers so that filling one
overlaps the copy of the other. torch is imported here only, when a copier is made.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from comms.weight_copies import slice_bytes
from comms.weight_sync import WeightSet
from comms.weight_sync_budget import ByteBudget


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (False where torch or CUDA is missing)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


class CudaCopier:
    """Moves WeightSets to `device` on its own low-priority stream under `budget`."""

    def __init__(self, budget: ByteBudget | None = None, device: str = "cuda") -> None:
        import torch

        self.torch, self.budget, self.device = torch, budget, torch.device(device)
        least, _ = torch.cuda.Stream.priority_range()  # (least, greatest); least is 0
        self.stream = torch.cuda.Stream(device=self.device, priority=least)
        step = slice_bytes(budget)
        self._staging = [torch.empty(step, dtype=torch.uint8, pin_memory=True) for _ in range(2)]
        self._done = [torch.cuda.Event(), torch.cuda.Event()]
        self.copied = 0

    def to_device(self, ws: WeightSet) -> dict[str, Any]:
        """`ws`'s tensors on the device (torch tensors), copied slice by slice on the stream;
        returns once every copy finished."""
        torch = self.torch
        step, out, turn = self._staging[0].numel(), {}, 0
        with torch.cuda.stream(self.stream):
            for name, arr in ws.tensors.items():
                src = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
                dtype = torch.from_numpy(np.empty(0, arr.dtype)).dtype
                dst = torch.empty(arr.shape, dtype=dtype, device=self.device)
                dst_bytes = dst.reshape(-1).view(torch.uint8)
                for start in range(0, src.size, step):
                    end = min(start + step, src.size)
                    if self.budget is not None:
                        self.budget.acquire(end - start)
                    self._done[turn].synchronize()  # its last copy left this staging buffer
                    staging = self._staging[turn]
                    staging.numpy()[:end - start] = src[start:end]
                    dst_bytes[start:end].copy_(staging[:end - start], non_blocking=True)
                    self._done[turn].record(self.stream)
                    turn ^= 1
                out[name] = dst
                self.copied += src.size
        self.stream.synchronize()
        return out
