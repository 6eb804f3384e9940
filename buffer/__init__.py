"""Persistent replay: Zarr storage, RAM cache, writer and samplers composed by ReplayBuffer."""

from buffer.cache import CacheConfig
from buffer.mixing import DemoMix
from buffer.replay_buffer import ReplayBuffer
from buffer.samplers import SAMPLERS, Provenance, Sampler
from buffer.zarr_storage import ZarrStorage

__all__ = ["SAMPLERS", "CacheConfig", "DemoMix", "Provenance", "ReplayBuffer", "Sampler",
           "ZarrStorage"]
