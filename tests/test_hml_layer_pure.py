"""Layer-pure image selection: the index hook keeps exactly the images a brute-force pass
over the h5 finds, and the training data loader (grouped, iteration-based, distributed
samplers) then yields only those images, with one process and with two ranks."""
import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from hml_patch.layer_pure import LayerPureFilter, image_predicates, layer_pure_indices
from hml_patch.tree import PredicateTree
from maskrcnn_benchmark.config import cfg as default_cfg
from maskrcnn_benchmark.data import build as data_build
from maskrcnn_benchmark.data.build import build_dataset, make_data_loader
from maskrcnn_benchmark.data.datasets.subset import IndexSubset
from maskrcnn_benchmark.data.datasets.synthetic_vg import make_synthetic_vg
from maskrcnn_benchmark.data.samplers import DistributedSampler, GroupedBatchSampler

REPO_ROOT = Path(__file__).resolve().parents[1]
NUM_IMAGES = 60


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    make_synthetic_vg(str(root / "synthetic_vg"), NUM_IMAGES, seed=0)
    return root


@pytest.fixture(scope="module")
def info(data_dir):
    return json.loads((data_dir / "synthetic_vg" / "synthetic_vg_info.json").read_text())


def make_cfg(data_dir, tmp_path, *overrides):
    cfg = default_cfg.clone()
    cfg.merge_from_file(str(REPO_ROOT / "configs" / "synthetic_vg" / "dataset.yaml"))
    cfg.merge_from_list(["DATASETS.DATA_DIR", str(data_dir), "OUTPUT_DIR", str(tmp_path), *overrides])
    return cfg


@pytest.fixture(scope="module")
def train_set(data_dir, tmp_path_factory):
    (dataset,) = build_dataset(make_cfg(data_dir, tmp_path_factory.mktemp("out")), ["synthetic_vg_train"])
    return dataset


@pytest.fixture(scope="module")
def layers(train_set, info):
    """Predicate ids of the generator's two layers (coarse, fine)."""
    return [sorted(train_set.ind_to_predicates.index(n) for n in info["hierarchy"]["layers"][k]) for k in ("1", "2")]


def brute_force_pure_image_ids(data_dir, num_val_im, layer):
    """Image ids of train images (h5 split 0, val = the first num_val_im, with boxes and
    relations) whose every relation row has a predicate in ``layer``, one image at a time."""
    folder = data_dir / "synthetic_vg"
    image_ids = [entry["image_id"] for entry in json.loads((folder / "image_data.json").read_text())]
    with h5py.File(folder / "VG-SGG-with-attri.h5", "r") as h5:
        split, first_box = h5["split"][()], h5["img_to_first_box"][()]
        first_rel, last_rel = h5["img_to_first_rel"][()], h5["img_to_last_rel"][()]
        predicates = h5["predicates"][()].reshape(-1)
    train_rows = [row for row in range(len(split)) if split[row] == 0 and first_box[row] >= 0 and first_rel[row] >= 0]
    kept = []
    for row in train_rows[num_val_im:]:
        if all(int(p) in layer for p in predicates[first_rel[row]:last_rel[row] + 1]):
            kept.append(image_ids[row])
    return kept


def test_hook_keeps_exactly_the_brute_force_images(data_dir, info, train_set, layers):
    for layer in layers:
        kept = layer_pure_indices(train_set, layer)
        expected = brute_force_pure_image_ids(data_dir, info["num_val_im"], set(layer))
        assert 0 < len(kept) < len(train_set)
        assert [train_set.get_img_info(int(i))["image_id"] for i in kept] == expected
    # The generator's own layer-purity report counts the same images.
    counts = [len(layer_pure_indices(train_set, layer)) for layer in layers]
    assert counts == [info["layer_purity"]["counts"]["layer1_pure"], info["layer_purity"]["counts"]["layer2_pure"]]


def test_shipped_hierarchy_tree_matches_the_generator(train_set, layers):
    tree = PredicateTree.from_json(str(REPO_ROOT / "configs" / "hml" / "synthetic_vg_hierarchy_tree.json"),
                                   train_set.ind_to_predicates)
    assert tree.layers == layers
    cluster = PredicateTree.from_json(str(REPO_ROOT / "configs" / "hml" / "synthetic_vg_tree.json"),
                                      train_set.ind_to_predicates)
    assert cluster.source == "cluster" and "make_synthetic_vg.py" in cluster.metadata["note"]


def test_images_without_relations_and_wrappers(train_set, layers):
    everything = list(range(1, len(train_set.ind_to_predicates)))
    assert len(layer_pure_indices(train_set, everything)) == len(train_set)
    subset = IndexSubset(train_set, np.arange(len(train_set))[::2])
    kept = layer_pure_indices(subset, layers[0])
    assert np.array_equal(subset.indices[kept], np.intersect1d(layer_pure_indices(train_set, layers[0]),
                                                              subset.indices))
    concat = torch.utils.data.ConcatDataset([train_set, train_set])
    single = layer_pure_indices(train_set, layers[1])
    assert np.array_equal(layer_pure_indices(concat, layers[1]), np.concatenate([single, single + len(train_set)]))

    class NoRelations:
        relationships = [np.zeros((0, 3), dtype=np.int64), np.array([[0, 1, 3]])]

        def __len__(self):
            return 2
    assert layer_pure_indices(NoRelations(), [3]).tolist() == [1]
    assert [p.tolist() for p in image_predicates(NoRelations())] == [[], [3]]
    with pytest.raises(TypeError, match="cannot read relation predicates from a list"):
        layer_pure_indices([1, 2], [3])


def test_loader_yields_only_kept_images(data_dir, tmp_path, train_set, layers, caplog):
    cfg = make_cfg(data_dir, tmp_path, "SOLVER.MAX_ITER", "30")
    stage_filter = LayerPureFilter(layers[1], stage=2)
    with caplog.at_level(logging.INFO, logger="hml_patch.layer_pure"):
        loader = make_data_loader(cfg, "train", index_filter=stage_filter)
    kept = layer_pure_indices(train_set, layers[1])
    assert (stage_filter.kept, stage_filter.total) == (len(kept), len(train_set))
    assert f"Stage 2: kept {len(kept)} of {len(train_set)} images" in caplog.text
    subset = loader.dataset
    assert isinstance(subset, IndexSubset) and np.array_equal(subset.indices, kept)
    assert isinstance(loader.batch_sampler.batch_sampler, GroupedBatchSampler)
    seen = set()
    for images, targets, positions in loader:
        for target, position in zip(targets, positions):
            base = int(subset.indices[position])
            seen.add(base)
            assert target.get_field("labels").tolist() == train_set.gt_classes[base].tolist()
            predicates = set(target.get_field("relation").unique().tolist()) - {0}
            assert predicates and predicates <= set(layers[1])
    assert seen == set(kept.tolist())  # 30 iterations of 4 cover every kept image


@pytest.mark.parametrize("aspect_grouping", ["True", "False"])
def test_two_ranks_split_the_kept_images(data_dir, tmp_path, train_set, layers, monkeypatch, aspect_grouping):
    kept = layer_pure_indices(train_set, layers[0])
    cfg = make_cfg(data_dir, tmp_path, "SOLVER.MAX_ITER", "40", "DATALOADER.ASPECT_RATIO_GROUPING", aspect_grouping)
    monkeypatch.setattr(data_build, "get_world_size", lambda: 2)
    first_epoch, all_iterations = [], []
    for rank in range(2):
        monkeypatch.setattr(data_build, "get_rank", lambda rank=rank: rank)
        loader = make_data_loader(cfg, "train", is_distributed=True, index_filter=LayerPureFilter(layers[0], 1))
        epoch_sampler = loader.batch_sampler.batch_sampler
        sampler = epoch_sampler.sampler
        assert isinstance(sampler, DistributedSampler) and (sampler.num_replicas, sampler.rank) == (2, rank)
        sampler.set_epoch(0)
        positions = [i for batch in epoch_sampler for i in batch]
        assert len(positions) == sampler.num_samples and all(len(b) <= 2 for b in epoch_sampler)
        first_epoch.append(set(loader.dataset.indices[positions].tolist()))
        all_iterations.append({int(loader.dataset.indices[i]) for batch in loader.batch_sampler for i in batch})
    assert first_epoch[0] | first_epoch[1] == set(kept.tolist())
    # Padding repeats at most one image when the kept count is odd.
    assert len(first_epoch[0] & first_epoch[1]) == len(kept) % 2
    assert all(seen <= set(kept.tolist()) for seen in all_iterations)


def test_empty_selection_is_an_error(data_dir, tmp_path):
    cfg = make_cfg(data_dir, tmp_path, "SOLVER.MAX_ITER", "2")
    with pytest.raises(ValueError, match="kept none of the dataset's"):
        make_data_loader(cfg, "train", index_filter=LayerPureFilter([999], stage=1))
