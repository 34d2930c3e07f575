"""Batches that only mix images of the same group (e.g. aspect-ratio bin)."""
from __future__ import annotations

from collections import Counter
from typing import Dict, Iterable, Iterator, List, Sequence

from torch.utils.data import Sampler


class GroupedBatchSampler(Sampler[List[int]]):
    """Form batches whose indices all share a group id, following the sampler's order.

    Grouping by aspect ratio keeps padding small when images are batched.
    Algorithm (the benchmark's): walk the sampler's order, split each group's
    subsequence into consecutive chunks of ``batch_size``, then emit the chunks
    sorted by the position of their first element in the sampled order. With
    ``drop_uneven`` the incomplete chunks (at most one per group) are dropped;
    otherwise they are kept. Indices repeated by the sampler (padding of a
    distributed shard) are kept as separate entries.

    Args:
        sampler: yields dataset indices.
        group_ids: group id of every dataset index.
        batch_size: images per batch.
        drop_uneven: drop batches smaller than ``batch_size``.
    """

    def __init__(self, sampler: Iterable[int], group_ids: Sequence[int], batch_size: int,
                 drop_uneven: bool = False) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size should be positive, got {batch_size}")
        self.sampler = sampler
        self.group_ids = [int(g) for g in group_ids]
        self.batch_size = batch_size
        self.drop_uneven = drop_uneven

    def _prepare_batches(self) -> List[List[int]]:
        open_batch: Dict[int, List[int]] = {}
        batches: List[List[int]] = []
        for idx in self.sampler:
            group = self.group_ids[idx]
            if group not in open_batch:
                # Appending now fixes the batch's place at its first element's position.
                open_batch[group] = []
                batches.append(open_batch[group])
            batch = open_batch[group]
            batch.append(idx)
            if len(batch) == self.batch_size:
                del open_batch[group]
        if self.drop_uneven:
            batches = [b for b in batches if len(b) == self.batch_size]
        return batches

    def __iter__(self) -> Iterator[List[int]]:
        return iter(self._prepare_batches())

    def __len__(self) -> int:
        """Number of batches for the sampler's current order, counted without building them."""
        counts = Counter(self.group_ids[idx] for idx in self.sampler)
        if self.drop_uneven:
            return sum(c // self.batch_size for c in counts.values())
        return sum(-(-c // self.batch_size) for c in counts.values())
