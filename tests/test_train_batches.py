"""Multi-process batches: N processes together take exactly one process's batches."""

from __future__ import annotations

import pytest

from emo_toolkit.features.distributed import Ranks
from emo_toolkit.train.loop import TrainConfig, check_global_batch, epoch_batches


@pytest.mark.parametrize("n", [1, 7, 29, 30, 33])
@pytest.mark.parametrize("world", [2, 3, 4])
def test_the_processes_share_each_global_batch(n: int, world: int):
    config = TrainConfig(batch_size=12, seed=5)
    orders = []
    for epoch in (1, 2):
        single = [b for b, _ in epoch_batches(n, config, epoch, Ranks())]
        shares = [epoch_batches(n, config, epoch, Ranks(r, world)) for r in range(world)]
        assert {len(s) for s in shares} == {len(single)}  # equal step counts: no hang
        for step, batch in enumerate(single):
            counted = sorted(i for s in shares
                             for i, c in zip(*s[step], strict=True) if c)
            assert counted == sorted(batch)  # every clip once; the repeats count for nothing
        assert sorted(i for b in single for i in b) == list(range(n))
        orders.append(single)
    assert orders[0] != orders[1] or n == 1  # each epoch reshuffles


def test_the_global_batch_must_divide_among_the_processes():
    check_global_batch(16, 4)
    with pytest.raises(ValueError, match="multiple of 3"):
        check_global_batch(16, 3)
