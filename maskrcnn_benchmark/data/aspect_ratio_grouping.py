"""Aspect-ratio groups and the batch sampler composition used by the data loaders."""
from __future__ import annotations

import bisect
from typing import Any, Iterable, List, Optional, Sequence, Union

from torch.utils.data import BatchSampler, Sampler

from .samplers import GroupedBatchSampler, IterationBasedBatchSampler

AspectGrouping = Union[float, Sequence[float]]


def _as_bins(aspect_grouping: AspectGrouping) -> List[float]:
    if isinstance(aspect_grouping, (list, tuple)):
        return sorted(float(b) for b in aspect_grouping)
    return [float(aspect_grouping)]


def compute_aspect_ratio_groups(dataset: Any, aspect_grouping: AspectGrouping = (1,)) -> List[int]:
    """Group id of every image: the number of bin edges <= its height / width.

    With the benchmark's bins ``[1]`` this yields two groups: 0 for landscape
    images (h / w < 1) and 1 for portrait or square ones (h / w >= 1).
    ``dataset.get_img_info(i)`` must return a dict with "height" and "width".
    """
    bins = _as_bins(aspect_grouping)
    groups = []
    for i in range(len(dataset)):
        info = dataset.get_img_info(i)
        groups.append(bisect.bisect_right(bins, float(info["height"]) / float(info["width"])))
    return groups


def make_batch_data_sampler(dataset: Any, sampler: Union[Sampler[int], Iterable[int]],
                            aspect_grouping: AspectGrouping, images_per_batch: int,
                            num_iters: Optional[int] = None, start_iter: int = 0) -> Sampler[List[int]]:
    """Batch ``sampler``'s indices as the benchmark does.

    Non-empty ``aspect_grouping`` gives a :class:`GroupedBatchSampler` over the
    aspect-ratio groups, otherwise a plain ``BatchSampler``; partial batches are
    kept in both. With ``num_iters`` the result is wrapped in an
    :class:`IterationBasedBatchSampler` (training).
    """
    if aspect_grouping:
        group_ids = compute_aspect_ratio_groups(dataset, aspect_grouping)
        batch_sampler = GroupedBatchSampler(sampler, group_ids, images_per_batch, drop_uneven=False)
    else:
        batch_sampler = BatchSampler(sampler, images_per_batch, drop_last=False)
    if num_iters is not None:
        batch_sampler = IterationBasedBatchSampler(batch_sampler, num_iters, start_iter)
    return batch_sampler
