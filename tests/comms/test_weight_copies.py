"""Budgeted copies of a weight sync, on a clock the test moves: every byte is accounted, more
copy threads never mean more bytes per interval, and rebuilding a version goes through them."""

from __future__ import annotations

import numpy as np
import pytest

from comms.cuda_copies import cuda_available
from comms.weight_copies import HostCopier
from comms.weight_sync import WeightSet, encode_transfer, rebuild
from comms.weight_sync_budget import ByteBudget
from tests.comms.test_weight_sync_budget import Clock


@pytest.mark.parametrize("threads", [1, 3])
def test_a_budgeted_copy_is_exact_and_takes_the_budget_it_says(threads: int) -> None:
    clock = Clock()
    budget = ByteBudget(1 << 20, interval_s=0.01, clock=clock, sleep=clock.sleep)
    copier = HostCopier(budget, threads)
    src = np.random.default_rng(0).standard_normal((5 << 20) // 8)  # 5 MiB of float64
    out = copier.copy(src)
    np.testing.assert_array_equal(out, src)
    assert out.flags.c_contiguous and out.flags.writeable
    assert budget.granted == src.nbytes
    assert budget.waited_s == pytest.approx(0.04, abs=1e-6)  # four intervals past the first
    copier.close()


def test_a_widening_copy_is_charged_for_its_wider_side() -> None:
    clock = Clock()
    budget = ByteBudget(1 << 20, interval_s=0.01, clock=clock, sleep=clock.sleep)
    copier = HostCopier(budget)
    half = np.arange(1 << 20, dtype=np.float16)  # 2 MiB in, 4 MiB out
    out = copier.copy(half, np.dtype(np.float32))
    assert out.dtype == np.float32 and np.array_equal(out, half.astype(np.float32))
    assert budget.granted == 4 << 20
    copier.close()
    with pytest.raises(ValueError, match="at least one thread"):
        HostCopier(budget, 0)


def test_rebuilding_a_patch_and_an_fp16_version_copies_under_the_budget() -> None:
    clock = Clock()
    budget = ByteBudget(1 << 20, interval_s=0.01, clock=clock, sleep=clock.sleep)
    rng = np.random.default_rng(1)
    base = WeightSet.of({"a": rng.standard_normal((1 << 18,)).astype(np.float32)}, 1)
    new = {"a": base.tensors["a"].copy()}
    new["a"][::1000] += 1
    version = WeightSet.of(new, 2)
    for mode, against in (("patch", base), ("fp16", None)):
        before = budget.granted
        transfer = encode_transfer(version, mode, 1, against)
        stream = np.zeros(transfer.offer.total_bytes, np.uint8)
        for at, data in transfer.parts:
            stream[at:at + len(data)] = np.frombuffer(data, np.uint8)
        copier = HostCopier(budget)
        built = rebuild(transfer.offer, stream, against, copier)
        copier.close()
        assert built.version == 2 and (built.exact == (mode == "patch"))
        # the copy (base or widened tensor) and the digest of the result, 1 MiB each
        assert budget.granted - before == 2 * version.tensors["a"].nbytes


def test_the_cuda_path_is_taken_only_where_torch_sees_a_gpu() -> None:
    import torch

    assert cuda_available() is torch.cuda.is_available()
