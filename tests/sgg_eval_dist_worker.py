"""torchrun worker of test_sgg_eval_distributed: each rank evaluates a shard of a fixture.

    torchrun --nproc_per_node=2 tests/sgg_eval_dist_worker.py FIXTURE.npz OUT.json [--legacy-coco-ann-ids]
        [--tree TREE.json]

Rank r takes a contiguous block of images, the last block going to rank 0 so
that image 0 (the one the COCO ann-id quirk touches) lives on another rank;
the sums are all-reduced and rank 0 writes metrics.json.
"""
import argparse

import numpy as np
import torch
import torch.distributed as dist

from maskrcnn_benchmark.data.datasets.evaluation.vg import SGGEvaluator
from maskrcnn_benchmark.data.datasets.evaluation.vg.fixture import fixture_mode, iter_fixture, load_fixture
from maskrcnn_benchmark.structures.predicate_hierarchy import PredicateHierarchy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("fixture")
    parser.add_argument("out")
    parser.add_argument("--legacy-coco-ann-ids", action="store_true")
    parser.add_argument("--tree", help="predicate tree with parent links: adds the hierarchy metrics")
    args = parser.parse_args()
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    fixture = load_fixture(args.fixture)
    blocks = np.array_split(np.arange(len(fixture["image_wh"])), world)
    mine = set(blocks[world - 1 - rank].tolist())
    evaluator = SGGEvaluator(fixture_mode(args.fixture), num_predicates=50,
                             zeroshot_triplets=fixture["zeroshot_triplets"], keep_per_image=True,
                             legacy_coco_ann_ids=args.legacy_coco_ann_ids,
                             hierarchy=PredicateHierarchy.from_json(args.tree) if args.tree else None)
    for index, groundtruth, prediction in iter_fixture(fixture):
        if index in mine:
            evaluator.add(groundtruth, prediction, image_id=index)
    evaluator.all_reduce()
    if rank == 0:
        evaluator.write_json(args.out)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
