"""Persistent replay: Zarr storage, samplers and the ReplayBuffer that composes them."""

from buffer.replay_buffer import ReplayBuffer
from buffer.zarr_storage import ZarrStorage

__all__ = ["ReplayBuffer", "ZarrStorage"]
