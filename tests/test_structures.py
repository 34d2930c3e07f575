"""BoxList, boxlist_iou and ImageList under the benchmark's +1 convention and the continuous one."""
import pytest
import torch
import torchvision

from maskrcnn_benchmark.structures import (FLIP_LEFT_RIGHT, FLIP_TOP_BOTTOM, BoxList, boxlist_iou, cat_boxlist,
                                           to_image_list)


def _boxes():
    boxes = BoxList(torch.tensor([[0.0, 0.0, 9.0, 9.0], [5.0, 5.0, 14.0, 24.0], [30.0, 2.0, 39.0, 5.0]]), (40, 30))
    boxes.add_field("labels", torch.tensor([1, 2, 3]))
    relation = torch.zeros(3, 3, dtype=torch.int64)
    relation[0, 1], relation[2, 0] = 7, 9
    boxes.add_field("relation", relation, is_triplet=True)
    return boxes


def test_legacy_iou_counts_inclusive_pixels():
    boxes = _boxes()
    iou = boxlist_iou(boxes, boxes)
    inter = 5 * 5  # pixels 5..9 on both axes
    expected = inter / (100 + 10 * 20 - inter)
    assert iou[0, 1].item() == pytest.approx(expected)
    assert torch.allclose(iou.diagonal(), torch.ones(3))


def test_continuous_iou_matches_torchvision():
    boxes = _boxes()
    assert torch.allclose(boxlist_iou(boxes, boxes, legacy=False), torchvision.ops.box_iou(boxes.bbox, boxes.bbox))


def test_convert_round_trip_and_area():
    boxes = _boxes()
    xywh = boxes.convert("xywh")
    assert xywh.bbox[1].tolist() == [5.0, 5.0, 10.0, 20.0]
    assert torch.equal(xywh.convert("xyxy").bbox, boxes.bbox)
    assert boxes.area().tolist() == [100.0, 200.0, 40.0]
    assert boxes.area(legacy=False).tolist() == [81.0, 171.0, 27.0]
    assert xywh.get_field("relation")[0, 1] == 7


def test_flip_is_its_own_inverse_and_uses_plus_one():
    boxes = _boxes()
    flipped = boxes.transpose(FLIP_LEFT_RIGHT)
    assert flipped.bbox[0].tolist() == [30.0, 0.0, 39.0, 9.0]  # 40 - 9 - 1, 40 - 0 - 1
    assert torch.equal(flipped.transpose(FLIP_LEFT_RIGHT).bbox, boxes.bbox)
    assert boxes.transpose(FLIP_TOP_BOTTOM).bbox[0].tolist() == [0.0, 20.0, 9.0, 29.0]  # 30 - 9 - 1, 30 - 0 - 1
    assert torch.equal(flipped.get_field("relation"), boxes.get_field("relation"))


def test_clip_to_image_legacy_and_remove_empty():
    boxes = BoxList(torch.tensor([[-5.0, 2.0, 50.0, 40.0], [45.0, 1.0, 60.0, 8.0]]), (40, 30))
    kept = boxes.clip_to_image(remove_empty=True)
    assert kept.bbox.tolist() == [[0.0, 2.0, 39.0, 29.0]]
    boxes = BoxList(torch.tensor([[45.0, 1.0, 60.0, 8.0]]), (40, 30))
    assert len(boxes.clip_to_image(remove_empty=False)) == 1


def test_indexing_slices_relation_on_both_axes():
    boxes = _boxes()
    sub = boxes[torch.tensor([True, False, True])]
    assert sub.get_field("labels").tolist() == [1, 3]
    assert sub.get_field("relation").tolist() == [[0, 0], [9, 0]]


def test_resize_scales_per_axis():
    boxes = _boxes().resize((80, 15))
    assert boxes.size == (80, 15)
    assert boxes.bbox[1].tolist() == [10.0, 2.5, 28.0, 12.0]


def test_cat_boxlist_joins_relations_block_diagonally():
    a, b = _boxes(), _boxes()[torch.tensor([0, 1])]
    cat = cat_boxlist([a, b])
    assert len(cat) == 5 and cat.get_field("labels").tolist() == [1, 2, 3, 1, 2]
    relation = cat.get_field("relation")
    assert relation.shape == (5, 5) and relation[3, 4] == 7 and relation[:3, 3:].sum() == 0


def test_image_list_pads_to_divisibility():
    images = to_image_list([torch.ones(3, 10, 17), torch.full((3, 20, 5), 2.0)], size_divisible=32)
    assert images.tensors.shape == (2, 3, 32, 32)
    assert images.image_sizes == [(10, 17), (20, 5)]
    assert images.tensors[0, :, 10:].abs().sum() == 0 and images.tensors[1, :, :20, :5].eq(2).all()
