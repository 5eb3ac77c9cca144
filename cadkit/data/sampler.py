"""A distributed sampler that never pads or repeats: every index goes to exactly one rank.

PyTorch's ``DistributedSampler`` (and Lightning's default one) pads the index list by repeating
samples so that every rank gets the same count; benchmark counts and attribution sums would then
count some prompts twice. Here ranks may get different counts (a rank may get none when there
are fewer samples than ranks).

The class subclasses ``DistributedSampler`` on purpose: Lightning leaves a ``DistributedSampler``
in a dataloader as it is (with ``use_distributed_sampler=True`` it would otherwise wrap a custom
sampler and split its indices a second time).
"""

from __future__ import annotations

from collections.abc import Iterator, Sized

import torch.distributed as dist
from torch.utils.data import DistributedSampler

from cadkit.errors import bad_arg

__all__ = ["UnrepeatedDistributedSampler", "rank_indices", "SPLITS"]

SPLITS: tuple[str, ...] = ("strided", "contiguous")


def rank_indices(n: int, num_replicas: int, rank: int, split: str = "strided") -> list[int]:
    """The indices of ``range(n)`` that rank ``rank`` of ``num_replicas`` gets, in increasing order.

    ``strided``: ``rank, rank + W, rank + 2W, ...`` (like PyTorch's sampler, without padding).
    ``contiguous``: the block ``[rank * n // W, (rank + 1) * n // W)``. Either way the counts of two
    ranks differ by at most one and the ranks' lists partition ``range(n)``.
    """
    if split not in SPLITS:
        raise bad_arg("split", SPLITS, split)
    if n < 0:
        raise bad_arg("dataset length", "a length >= 0", n)
    if num_replicas < 1:
        raise bad_arg("num_replicas", "an integer >= 1", num_replicas)
    if not 0 <= rank < num_replicas:
        raise bad_arg("rank", f"an integer in [0, {num_replicas - 1}]", rank)
    if split == "strided":
        return list(range(rank, n, num_replicas))
    return list(range(rank * n // num_replicas, (rank + 1) * n // num_replicas))


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class UnrepeatedDistributedSampler(DistributedSampler):
    """Yield this rank's share of ``range(len(dataset))``; no padding, no repeats, no shuffling.

    ``dataset`` is a sized dataset or its length. ``num_replicas`` and ``rank`` default to the
    initialised process group (or 1 and 0 without one). The order is deterministic, so a rerun
    of the same world size visits the same indices in the same order on each rank.
    """

    def __init__(
        self,
        dataset: Sized | int,
        num_replicas: int | None = None,
        rank: int | None = None,
        split: str = "strided",
    ) -> None:
        n = dataset if isinstance(dataset, int) else len(dataset)
        world, this = _world()
        num_replicas = world if num_replicas is None else num_replicas
        rank = this if rank is None else rank
        self.indices = rank_indices(n, num_replicas, rank, split)  # validates everything
        super().__init__(
            range(n) if isinstance(dataset, int) else dataset,  # type: ignore[arg-type]
            num_replicas=num_replicas,
            rank=rank,
            shuffle=False,
            drop_last=False,
        )
        self.split = split
        self.num_samples = len(self.indices)
        self.total_size = n

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return self.num_samples
