"""A sampler that gives each process its own shard of the dataset."""
from __future__ import annotations

import math
from typing import Iterator, List, Optional, Sized

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


class DistributedSampler(Sampler[int]):
    """Shard dataset indices across ``num_replicas`` processes (the benchmark's scheme).

    The (optionally shuffled) index list is padded by repeating its head until
    its length is a multiple of ``num_replicas``, then rank ``r`` takes the
    CONTIGUOUS block ``[r * num_samples, (r + 1) * num_samples)``. Every rank
    thus gets the same number of samples, so all ranks run the same number of
    iterations. The shuffle is a ``torch.randperm`` seeded with the epoch, so
    all ranks agree on it and :meth:`set_epoch` makes each epoch reproducible.

    ``pad=False`` (evaluation) skips the padding: the shards are then disjoint
    and together hold every image exactly once, so per-image results summed over
    ranks equal those of one process; the last ranks may get fewer images.

    ``num_replicas`` and ``rank`` default to the initialised process group's;
    given explicitly, no process group is needed.
    """

    def __init__(self, dataset: Sized, num_replicas: Optional[int] = None, rank: Optional[int] = None,
                 shuffle: bool = True, pad: bool = True) -> None:
        if num_replicas is None or rank is None:
            if not (dist.is_available() and dist.is_initialized()):
                raise RuntimeError("num_replicas and rank are required when torch.distributed is not initialised")
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside [0, {num_replicas})")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.shuffle = shuffle
        self.pad = pad
        self.epoch = 0
        self.num_samples = int(math.ceil(len(dataset) / num_replicas))
        self.total_size = self.num_samples * num_replicas

    def _padded_indices(self) -> List[int]:
        """All ranks' indices for this epoch, padded to ``total_size``."""
        n = len(self.dataset)
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.epoch)
            indices = torch.randperm(n, generator=generator).tolist()
        else:
            indices = list(range(n))
        if n == 0:
            return indices
        repeats = math.ceil(self.total_size / n)
        return (indices * repeats)[: self.total_size]

    def __iter__(self) -> Iterator[int]:
        offset = self.num_samples * self.rank
        indices = self._padded_indices()
        if not self.pad:
            indices = indices[:len(self.dataset)]
        return iter(indices[offset: offset + self.num_samples])

    def __len__(self) -> int:
        if self.pad:
            return self.num_samples
        return max(0, min(self.num_samples, len(self.dataset) - self.num_samples * self.rank))

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffle for ``epoch`` (same epoch, same order)."""
        self.epoch = epoch
