"""Random relation-training inputs for the benchmarks: images of a given size with ground-truth
boxes, labels and relation maps, reproducible from a seed (values do not change the cost)."""
from typing import List, Tuple

import torch

from maskrcnn_benchmark.structures.bounding_box import BoxList
from maskrcnn_benchmark.structures.image_list import ImageList, to_image_list


def random_relation_batch(batch: int, size: Tuple[int, int], num_boxes: int, num_rels: int, num_classes: int,
                          num_predicates: int, min_box: float, size_divisibility: int, seed: int = 0
                          ) -> Tuple[ImageList, List[BoxList]]:
    """``batch`` images of ``size`` (width, height) with ``num_boxes`` boxes (sides at least
    ``min_box``) and ``num_rels`` relations between distinct boxes, labels drawn uniformly."""
    generator = torch.Generator().manual_seed(seed)
    width, height = size
    images, targets = [], []
    for _ in range(batch):
        images.append(torch.randn(3, height, width, generator=generator) * 50)
        xy = torch.rand(num_boxes, 2, generator=generator) * torch.tensor([width * 0.7, height * 0.7])
        wh = min_box + torch.rand(num_boxes, 2, generator=generator) * torch.tensor([width * 0.3, height * 0.3])
        target = BoxList(torch.cat([xy, xy + wh], dim=1), (width, height))
        target.add_field("labels", torch.randint(1, num_classes, (num_boxes,), generator=generator))
        relation = torch.zeros(num_boxes, num_boxes, dtype=torch.int64)
        pairs = [p for p in torch.randperm(num_boxes * num_boxes, generator=generator).tolist()
                 if p // num_boxes != p % num_boxes][:num_rels]
        for p in pairs:
            relation[p // num_boxes, p % num_boxes] = int(torch.randint(1, num_predicates, (1,), generator=generator))
        target.add_field("relation", relation, is_triplet=True)
        targets.append(target)
    return to_image_list(images, size_divisibility), targets
