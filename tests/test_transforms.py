"""Tests for the paired image/target transforms and build_transforms."""
import random

import pytest
import torch
from PIL import Image

from maskrcnn_benchmark.config import cfg as project_cfg
from maskrcnn_benchmark.data.transforms import (ColorJitter, Compose, Normalize, RandomHorizontalFlip,
                                                RandomVerticalFlip, Resize, ToTensor, build_transforms)
from maskrcnn_benchmark.structures import BoxList

PIXEL_MEAN = [102.9801, 115.9465, 122.7717]


def _target(width, height):
    boxes = BoxList(torch.tensor([[10.0, 20.0, 49.0, 59.0], [0.0, 0.0, 9.0, 9.0]]), (width, height))
    boxes.add_field("labels", torch.tensor([3, 7]))
    relation = torch.zeros(2, 2, dtype=torch.int64)
    relation[0, 1] = 5
    boxes.add_field("relation", relation, is_triplet=True)
    return boxes


def _input_cfg():
    """The project config with small input sizes."""
    cfg = project_cfg.clone()
    cfg.INPUT.MIN_SIZE_TRAIN = (60,)
    cfg.INPUT.MAX_SIZE_TRAIN = 100
    cfg.INPUT.MIN_SIZE_TEST = 30
    cfg.INPUT.MAX_SIZE_TEST = 50
    return cfg


@pytest.mark.parametrize("hw, expected", [
    ((480, 640), (600, 800)),    # shorter side -> 600; longer side 800 stays within 1000
    ((400, 800), (500, 1000)),   # capped: 800 / 400 * 600 > 1000, short = round(1000 * 400 / 800) = 500
    ((500, 1000), (500, 1000)),  # capped size equals the current short side: unchanged
    ((900, 600), (900, 600)),    # short side already 600: unchanged
    ((700, 300), (1001, 429)),   # capped, short = round(428.57) = 429, long = int(429 * 700 / 300) = 1001
])
def test_resize_size_rule(hw, expected):
    assert Resize(600, 1000).get_size(hw) == expected


def test_resize_picks_from_min_size_tuple():
    resize = Resize((10, 20, 30), None)
    random.seed(0)
    seen = {resize.get_size((100, 200))[0] for _ in range(50)}
    assert seen == {10, 20, 30}


def test_resize_scales_image_and_boxes():
    image = Image.new("RGB", (80, 60))
    image_out, target = Resize(30, 1000)(image, _target(80, 60))
    assert image_out.size == (40, 30)
    assert target.size == (40, 30)
    torch.testing.assert_close(target.bbox[0], torch.tensor([5.0, 10.0, 24.5, 29.5]))
    assert target.get_field("relation")[0, 1] == 5
    assert "relation" in target.triplet_extra_fields


def test_resize_without_target():
    image, target = Resize(30, None)(Image.new("RGB", (80, 60)))
    assert image.size == (40, 30) and target is None


def test_horizontal_flip_moves_pixels_and_boxes_consistently():
    width, height = 50, 40
    image = Image.new("RGB", (width, height))
    image.putpixel((12, 7), (255, 0, 0))
    target = BoxList(torch.tensor([[12.0, 7.0, 12.0, 7.0], [10.0, 20.0, 29.0, 39.0]]), (width, height))
    relation = torch.tensor([[0, 4], [0, 0]])
    target.add_field("relation", relation, is_triplet=True)

    flipped, out = RandomHorizontalFlip(1.0)(image, target)
    new_x = width - 12 - 1
    assert flipped.getpixel((new_x, 7)) == (255, 0, 0)
    torch.testing.assert_close(out.bbox[0], torch.tensor([float(new_x), 7.0, float(new_x), 7.0]))
    torch.testing.assert_close(out.bbox[1], torch.tensor([20.0, 20.0, 39.0, 39.0]))
    assert torch.equal(out.get_field("relation"), relation)
    assert "relation" in out.triplet_extra_fields


def test_flips_with_zero_probability_do_nothing():
    image = Image.new("RGB", (5, 4))
    target = _target(5, 4)
    for flip in (RandomHorizontalFlip(0.0), RandomVerticalFlip(0.0)):
        img_out, tgt_out = flip(image, target)
        assert img_out is image and tgt_out is target


def test_vertical_flip_moves_pixels_and_boxes():
    image = Image.new("RGB", (10, 8))
    image.putpixel((3, 2), (0, 255, 0))
    target = BoxList(torch.tensor([[3.0, 2.0, 3.0, 2.0]]), (10, 8))
    flipped, out = RandomVerticalFlip(1.0)(image, target)
    assert flipped.getpixel((3, 8 - 2 - 1)) == (0, 255, 0)
    torch.testing.assert_close(out.bbox[0], torch.tensor([3.0, 5.0, 3.0, 5.0]))


def test_color_jitter_all_zero_is_identity():
    jitter = ColorJitter(0.0, 0.0, 0.0, 0.0)
    assert jitter.color_jitter is None
    image = Image.new("RGB", (4, 4), (10, 20, 30))
    assert jitter(image, None)[0] is image


def test_normalize_gives_bgr255_minus_mean():
    image = Image.new("RGB", (3, 2), (10, 20, 30))
    image.putpixel((1, 1), (200, 100, 50))
    tensor, _ = ToTensor()(image, None)
    out, _ = Normalize(PIXEL_MEAN, [1.0, 1.0, 1.0], to_bgr255=True)(tensor, None)
    expected = torch.tensor([50.0, 100.0, 200.0]) - torch.tensor(PIXEL_MEAN)
    torch.testing.assert_close(out[:, 1, 1], expected, rtol=0, atol=1e-4)


def test_normalize_without_bgr255():
    tensor = torch.full((3, 1, 1), 0.5)
    out, _ = Normalize([0.5, 0.25, 0.0], [0.5, 0.5, 0.25], to_bgr255=False)(tensor, None)
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([0.0, 0.5, 2.0]))


def test_compose_runs_in_order():
    image = Image.new("RGB", (80, 60))
    pipeline = Compose([Resize(30, None), ToTensor()])
    out, target = pipeline(image, _target(80, 60))
    assert out.shape == (3, 30, 40) and target.size == (40, 30)


def test_build_transforms_train_and_test():
    cfg = _input_cfg()
    train = build_transforms(cfg, is_train=True)
    test = build_transforms(cfg, is_train=False)
    names = [type(t).__name__ for t in train.transforms]
    assert names == ["ColorJitter", "Resize", "RandomHorizontalFlip", "RandomVerticalFlip", "ToTensor", "Normalize"]
    assert [type(t).__name__ for t in test.transforms] == names

    assert train.transforms[1].min_size == (60,) and train.transforms[1].max_size == 100
    assert test.transforms[1].min_size == (30,) and test.transforms[1].max_size == 50
    assert train.transforms[2].prob == 0.5
    assert test.transforms[2].prob == 0.0 and test.transforms[3].prob == 0.0
    assert test.transforms[0].color_jitter is None

    image = Image.new("RGB", (80, 40), (10, 20, 30))
    out, target = test(image, _target(80, 40))
    assert out.shape == (3, 25, 50)  # 30 * 80 / 40 = 60 > 50, so short side = round(50 * 40 / 80) = 25
    assert target.size == (50, 25)
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([30.0, 20.0, 10.0]) - torch.tensor(PIXEL_MEAN),
                               rtol=0, atol=1e-4)
