"""Peak RSS of the streaming SGG evaluator over SGDet-sized images generated one at a time (issue 17).

    python tests/eval_memory_worker.py WARM_IMAGES IMAGES

Prints one JSON object: the peak RSS (MiB) after WARM_IMAGES images and after WARM_IMAGES + IMAGES, and
the growth in between. Each image (80 detections, 6,320 scored pairs) is dropped after ``add``, so
growth is only what the evaluator keeps per image.
"""
import json
import os
import resource
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
from eval_speed import NUM_CLASSES, NUM_PREDICATES, make_image  # noqa: E402

from maskrcnn_benchmark.data.datasets.evaluation.vg import SGGEvaluator  # noqa: E402


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


if __name__ == "__main__":
    torch.set_num_threads(1)
    warm, images = int(sys.argv[1]), int(sys.argv[2])
    rng = np.random.default_rng(0)
    zeroshot = np.stack([rng.integers(1, NUM_CLASSES + 1, 500), rng.integers(1, NUM_CLASSES + 1, 500),
                         rng.integers(1, NUM_PREDICATES + 1, 500)], axis=1)
    counts = np.concatenate([[0], np.sort(rng.zipf(1.5, NUM_PREDICATES))[::-1]])
    evaluator = SGGEvaluator("sgdet", NUM_PREDICATES, zeroshot_triplets=zeroshot, train_predicate_counts=counts)
    for index in range(warm + images):
        if index == warm:
            warm_rss = peak_rss_mib()
        gt, pred = make_image(rng, "sgdet")
        evaluator.add(gt, pred, image_id=index)
    end_rss = peak_rss_mib()
    evaluator.result()
    print(json.dumps({"warm_mib": warm_rss, "end_mib": end_rss, "growth_mib": end_rss - warm_rss,
                      "images": images, "pairs_per_image": int(pred.get_field("rel_pair_idxs").shape[0])}))
