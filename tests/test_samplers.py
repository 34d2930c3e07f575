"""Tests for the samplers, aspect-ratio grouping and batch collation."""
import random

import pytest
import torch
from torch.utils.data import BatchSampler, SequentialSampler

from maskrcnn_benchmark.data.aspect_ratio_grouping import compute_aspect_ratio_groups, make_batch_data_sampler
from maskrcnn_benchmark.data.collate_batch import BatchCollator
from maskrcnn_benchmark.data.samplers import DistributedSampler, GroupedBatchSampler, IterationBasedBatchSampler


class _InfoDataset:
    """Only what the samplers need: a length and per-image height/width."""

    def __init__(self, sizes):
        self.sizes = sizes

    def __len__(self):
        return len(self.sizes)

    def get_img_info(self, index):
        height, width = self.sizes[index]
        return {"height": height, "width": width}


def _random_dataset(n, seed=0):
    rng = random.Random(seed)
    return _InfoDataset([(rng.choice([300, 600, 800]), rng.choice([300, 600, 800])) for _ in range(n)])


@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("n", [12, 10])
def test_distributed_shards_partition_padded_order(world_size, n):
    dataset = list(range(n))
    shards = [list(DistributedSampler(dataset, world_size, rank, shuffle=True)) for rank in range(world_size)]
    assert len({len(s) for s in shards}) == 1
    assert len(shards[0]) == len(DistributedSampler(dataset, world_size, 0))
    joined = [i for shard in shards for i in shard]
    assert set(joined) == set(range(n))
    padding = len(joined) - n
    assert 0 <= padding < world_size
    # Contiguous shards of the padded order: the extras repeat its head.
    assert joined[n:] == joined[:padding]
    assert len(set(joined[:n])) == n
    if padding == 0:
        for a in range(world_size):
            for b in range(a + 1, world_size):
                assert not set(shards[a]) & set(shards[b])


def test_distributed_set_epoch_is_deterministic():
    dataset = list(range(50))
    a, b = DistributedSampler(dataset, 2, 1), DistributedSampler(dataset, 2, 1)
    a.set_epoch(3)
    b.set_epoch(3)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(4)
    assert list(a) != first
    assert list(DistributedSampler(dataset, 2, 0, shuffle=False)) == list(range(25))


def test_distributed_pads_tiny_datasets():
    shards = [list(DistributedSampler([0, 1], 5, rank, shuffle=False)) for rank in range(5)]
    assert shards == [[0], [1], [0], [1], [0]]


@pytest.mark.parametrize("world_size", [1, 2, 3, 5])
@pytest.mark.parametrize("n", [2, 10, 12])
def test_unpadded_shards_hold_every_image_exactly_once(world_size, n):
    samplers = [DistributedSampler(list(range(n)), world_size, rank, shuffle=False, pad=False)
                for rank in range(world_size)]
    shards = [list(s) for s in samplers]
    assert [len(s) for s in samplers] == [len(s) for s in shards]
    assert [i for shard in shards for i in shard] == list(range(n))


def test_distributed_needs_world_when_not_initialised():
    with pytest.raises(RuntimeError):
        DistributedSampler([0, 1])


@pytest.mark.parametrize("drop_uneven", [False, True])
def test_grouped_batches_never_mix_groups(drop_uneven):
    n, batch_size = 103, 4
    rng = random.Random(1)
    group_ids = [rng.randint(0, 1) for _ in range(n)]
    order = list(range(n))
    rng.shuffle(order)
    sampler = GroupedBatchSampler(order, group_ids, batch_size, drop_uneven=drop_uneven)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    for batch in batches:
        assert len({group_ids[i] for i in batch}) == 1
        assert 0 < len(batch) <= batch_size
    flat = [i for batch in batches for i in batch]
    assert len(flat) == len(set(flat))
    if drop_uneven:
        assert all(len(b) == batch_size for b in batches)
    else:
        assert sorted(flat) == list(range(n))
        assert sum(len(b) < batch_size for b in batches) <= 2
    # Within a group the sampled order is kept, and batches follow their first element.
    position = {idx: p for p, idx in enumerate(order)}
    for g in (0, 1):
        in_group = [i for batch in batches for i in batch if group_ids[i] == g]
        assert in_group == sorted(in_group, key=position.get)
    firsts = [position[b[0]] for b in batches]
    assert firsts == sorted(firsts)


def test_grouped_known_example():
    order = [0, 1, 2, 3, 4, 5, 6]
    groups = [0, 1, 0, 1, 1, 0, 0]
    batches = list(GroupedBatchSampler(order, groups, 2))
    assert batches == [[0, 2], [1, 3], [4], [5, 6]]


@pytest.mark.parametrize("num_replicas", [1, 2])
def test_iteration_based_yields_exact_count_and_resumes_as_tail(num_replicas):
    dataset = _random_dataset(23)
    total = 17

    def run(start_iter):
        sampler = DistributedSampler(dataset, num_replicas=num_replicas, rank=num_replicas - 1, shuffle=True)
        return list(make_batch_data_sampler(dataset, sampler, [1], 3, num_iters=total, start_iter=start_iter))

    full = run(0)
    assert len(full) == total
    for start_iter in (0, 5, 9, 16, 17):
        resumed = run(start_iter)
        assert len(resumed) == total - start_iter
        assert resumed == full[start_iter:]


def test_iteration_based_calls_set_epoch_at_pass_starts():
    class Recording(SequentialSampler):
        def __init__(self, data):
            super().__init__(data)
            self.epochs = []

        def set_epoch(self, epoch):
            self.epochs.append(epoch)

    inner = Recording(range(10))
    batches = list(IterationBasedBatchSampler(BatchSampler(inner, 4, drop_last=False), 7))
    assert len(batches) == 7
    assert inner.epochs == [0, 3, 6]
    assert batches[3] == [0, 1, 2, 3]
    assert len(IterationBasedBatchSampler(BatchSampler(inner, 4, drop_last=False), 7, start_iter=2)) == 7


def test_compute_aspect_ratio_groups():
    dataset = _InfoDataset([(600, 800), (800, 600), (500, 500), (499, 500)])
    assert compute_aspect_ratio_groups(dataset) == [0, 1, 1, 0]
    assert compute_aspect_ratio_groups(dataset, 1) == [0, 1, 1, 0]


def test_make_batch_data_sampler_types():
    dataset = _random_dataset(10)
    sampler = SequentialSampler(range(10))
    assert isinstance(make_batch_data_sampler(dataset, sampler, [1], 2), GroupedBatchSampler)
    plain = make_batch_data_sampler(dataset, sampler, [], 4)
    assert isinstance(plain, BatchSampler)
    assert list(plain)[-1] == [8, 9]
    assert isinstance(make_batch_data_sampler(dataset, sampler, [], 4, num_iters=5), IterationBasedBatchSampler)


def test_collate_pads_to_divisibility_and_keeps_sizes():
    images = [torch.ones(3, 30, 45), torch.full((3, 50, 20), 2.0)]
    targets = ["t0", "t1"]
    batch = [(img, tgt, idx) for img, tgt, idx in zip(images, targets, (7, 3))]
    image_list, out_targets, indices = BatchCollator(size_divisible=32)(batch)
    assert image_list.tensors.shape == (2, 3, 64, 64)
    assert image_list.image_sizes == [(30, 45), (50, 20)]
    assert out_targets == ("t0", "t1") and indices == (7, 3)
    assert image_list.tensors[0, :, :30, :45].eq(1).all() and image_list.tensors[0, :, 30:].eq(0).all()
    assert image_list.tensors[1, :, :50, :20].eq(2).all() and image_list.tensors[1, :, :, 20:].eq(0).all()

    unpadded, _, _ = BatchCollator()(batch)
    assert unpadded.tensors.shape == (2, 3, 50, 45)
