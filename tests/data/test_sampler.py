"""The unrepeated sampler: every index on exactly one rank, no padding, deterministic."""

from __future__ import annotations

import pytest
from torch.utils.data import DistributedSampler

from cadkit.data.sampler import SPLITS, UnrepeatedDistributedSampler, rank_indices
from cadkit.errors import CadkitError

CASES = [(0, 1), (0, 3), (1, 1), (1, 4), (3, 4), (5, 2), (10, 3), (16, 4), (17, 5), (101, 8)]


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("n, world", CASES)
def test_ranks_partition_all_indices(n: int, world: int, split: str) -> None:
    per_rank = [list(UnrepeatedDistributedSampler(n, num_replicas=world, rank=r, split=split)) for r in range(world)]
    flat = [i for idx in per_rank for i in idx]
    assert sorted(flat) == list(range(n))  # union is everything, nothing twice
    assert len(flat) == len(set(flat)) == n
    counts = [len(idx) for idx in per_rank]
    assert max(counts) - min(counts) <= (1 if n else 0)
    for r, idx in enumerate(per_rank):
        s = UnrepeatedDistributedSampler(n, num_replicas=world, rank=r, split=split)
        assert len(s) == len(idx) and list(s) == idx == list(s)  # deterministic, re-iterable
        assert idx == sorted(idx)
    if split == "contiguous":
        assert flat == list(range(n))  # blocks in rank order
    else:
        assert per_rank == [list(range(n))[r::world] for r in range(world)]


def test_sized_dataset_and_default_world() -> None:
    data = ["a", "b", "c"]
    s = UnrepeatedDistributedSampler(data)  # no process group: one rank gets everything
    assert list(s) == [0, 1, 2] and s.num_replicas == 1 and s.rank == 0
    assert isinstance(s, DistributedSampler)  # so Lightning leaves it in place
    assert list(UnrepeatedDistributedSampler(data, num_replicas=2, rank=1)) == [1]


@pytest.mark.parametrize(
    "kwargs", [dict(num_replicas=2, rank=2), dict(num_replicas=0, rank=0), dict(num_replicas=2, rank=-1)]
)
def test_bad_rank(kwargs: dict) -> None:
    with pytest.raises(CadkitError):
        UnrepeatedDistributedSampler(4, **kwargs)


def test_bad_split() -> None:
    with pytest.raises(CadkitError):
        rank_indices(4, 2, 0, split="random")
