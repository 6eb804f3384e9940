"""Persistent replay: Zarr storage, RAM cache, writer and samplers composed by ReplayBuffer."""

from buffer.cache import CacheConfig
from buffer.mixing import DemoMix
from buffer.replay_buffer import NothingToSampleError, ReplayBuffer
from buffer.samplers import SAMPLERS, Provenance, Sampler
from buffer.zarr_storage import ZarrStorage

__all__ = ["SAMPLERS", "CacheConfig", "DemoMix", "NothingToSampleError", "Provenance",
           "ReplayBuffer", "Sampler", "ZarrStorage"]
