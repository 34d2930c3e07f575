"""Run by tests/test_trainer.py under ``torchrun --nproc_per_node=2`` (gloo, CPU).

Trains the toy model with DistributedDataParallel through ``do_train`` (each rank
starts from different random weights and sees its own data shard), then runs the
sharded inference loop, and writes what each rank ended with to
``<out_dir>/rank<r>.pt``.
"""
import os
import sys

import torch

torch.set_num_threads(1)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from toy_training import ToyDataset, make_loader, make_training, toy_cfg  # noqa: E402

from maskrcnn_benchmark.data.aspect_ratio_grouping import make_batch_data_sampler  # noqa: E402
from maskrcnn_benchmark.data.samplers import DistributedSampler  # noqa: E402
from maskrcnn_benchmark.engine import do_train, run_inference  # noqa: E402
from maskrcnn_benchmark.utils.checkpoint import Checkpointer  # noqa: E402
from maskrcnn_benchmark.utils.comm import get_rank, get_world_size  # noqa: E402
from maskrcnn_benchmark.utils.distributed import init_distributed  # noqa: E402

MAX_ITER = 8


class RecordingLoader:
    """Passes batches through and remembers the image ids of each one."""

    def __init__(self, loader) -> None:
        self.loader = loader
        self.ids = []

    def __iter__(self):
        for batch in self.loader:
            self.ids.append(list(batch[2]))
            yield batch

    def __len__(self) -> int:
        return len(self.loader)


def main(out_dir: str) -> None:
    distributed, _, device = init_distributed(None, "cpu")
    assert distributed, "expected to run under torchrun with WORLD_SIZE > 1"
    rank, world_size = get_rank(), get_world_size()
    cfg = toy_cfg(max_iter=MAX_ITER)
    model, optimizer, scheduler = make_training(cfg, seed=100 + rank)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    dataset = ToyDataset()
    loader = RecordingLoader(make_loader(dataset, MAX_ITER, num_replicas=world_size, rank=rank))
    checkpointer = Checkpointer(None, ddp, optimizer, scheduler, save_dir=os.path.join(out_dir, "ckpt"))
    do_train(ddp, loader, optimizer, scheduler, checkpointer, device, checkpoint_period=4,
             arguments={"iteration": 0}, grad_clip=5.0)

    test_sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=False)
    test_loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=make_batch_data_sampler(dataset, test_sampler, [], 3),
        collate_fn=loader.loader.collate_fn)
    inferred = []
    run_inference(model, test_loader, device, lambda ids, outputs: inferred.extend(ids))
    torch.save({"initial": initial, "final": model.state_dict(), "train_ids": loader.ids,
                "inference_ids": inferred}, os.path.join(out_dir, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
