"""Checkpoint save / resume / weight loading with the benchmark's semantics."""
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from maskrcnn_benchmark.utils import checkpoint as checkpoint_module
from maskrcnn_benchmark.utils.checkpoint import (UNSAFE_LOAD_ENV, Checkpointer, CheckpointLoadError,
                                                 DetectronCheckpointer)
from maskrcnn_benchmark.utils.model_serialization import (align_and_update_state_dicts, group_keys,
                                                          load_state_dict)

LOAD_MAPPING = {
    "roi_heads.relation.box_feature_extractor": "roi_heads.box.feature_extractor",
    "roi_heads.relation.union_feature_extractor.feature_extractor": "roi_heads.box.feature_extractor",
}


class MLPExtractor(nn.Module):
    def __init__(self, with_reduce=False):
        super().__init__()
        if with_reduce:
            self.pooler = nn.Module()
            self.pooler.reduce_channel = nn.Sequential(nn.Conv2d(4, 2, 1))
        self.fc6 = nn.Linear(8, 6)
        self.fc7 = nn.Linear(6, 6)


class BoxHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.feature_extractor = MLPExtractor()
        self.predictor = nn.Linear(6, 3)


class UnionExtractor(nn.Module):
    def __init__(self):
        super().__init__()
        self.feature_extractor = MLPExtractor(with_reduce=True)
        self.rect_conv = nn.Sequential(nn.Conv2d(2, 2, 3), nn.ReLU(), nn.BatchNorm2d(2))


class RelationHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.box_feature_extractor = MLPExtractor()
        self.union_feature_extractor = UnionExtractor()
        self.predictor = nn.Linear(6, 5)


class ToyDetector(nn.Module):
    """The benchmark's module tree in miniature: backbone, rpn, roi_heads.box (and .relation)."""

    def __init__(self, relation=False):
        super().__init__()
        self.backbone = nn.Sequential(OrderedDict(body=nn.Conv2d(3, 4, 3), fpn=nn.Conv2d(4, 4, 1)))
        self.rpn = nn.Module()
        self.rpn.head = nn.Conv2d(4, 3, 1)
        self.rpn.register_buffer("cell_anchors", torch.zeros(3, 4))
        self.roi_heads = nn.ModuleDict({"box": BoxHead()})
        if relation:
            self.roi_heads["relation"] = RelationHead()


def randomized(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn_like(tensor))
    return model


def save_benchmark_layout(path, model, prefix="module.", **extra):
    """A file as the benchmark's tools wrote it from a DDP-wrapped model (torch 1.x pickle format)."""
    state = OrderedDict((prefix + k, v) for k, v in model.state_dict().items())
    torch.save({"model": state, **extra}, path, _use_new_zipfile_serialization=False)


def assert_same(a, b, keys=None):
    sa, sb = a.state_dict(), b.state_dict()
    for key in keys or sa:
        assert torch.equal(sa[key], sb[key]), key


def test_benchmark_layout_with_module_prefix_loads_every_detector_key(tmp_path):
    source = randomized(ToyDetector(), 1)
    optimizer = torch.optim.SGD(source.parameters(), lr=0.1, momentum=0.9)
    sum(p.sum() for p in source.parameters()).backward()
    optimizer.step()
    scheduler_state = {"milestones": (90000, 120000), "gamma": 0.1, "warmup_factor": 1 / 3, "warmup_iters": 500,
                       "warmup_method": "linear", "base_lrs": [0.008], "last_epoch": 500, "_step_count": 501}
    path = tmp_path / "model_final.pth"
    save_benchmark_layout(path, source, optimizer=optimizer.state_dict(), scheduler=scheduler_state, iteration=500)
    target = ToyDetector()
    checkpointer = DetectronCheckpointer(None, target, save_dir=str(tmp_path / "out"))
    extra = checkpointer.load(str(path), with_optim=False)
    assert extra == {"iteration": 500}
    report = checkpointer.last_load_report
    assert report.missing == [] and report.unexpected == [] and report.shape_mismatch == []
    assert len(report.loaded) == len(target.state_dict())
    assert_same(source, target)


def test_bare_state_dict_file_loads(tmp_path):
    source = randomized(ToyDetector(), 2)
    torch.save(source.state_dict(), tmp_path / "weights.pth")
    target = ToyDetector()
    assert Checkpointer(None, target).load(str(tmp_path / "weights.pth")) == {}
    assert_same(source, target)


def test_longest_suffix_wins():
    model_state = OrderedDict([("a.fc.weight", torch.zeros(1)), ("b.fc.weight", torch.zeros(1)),
                               ("c.other", torch.zeros(1))])
    loaded = {"fc.weight": torch.ones(1), "b.fc.weight": torch.full((1,), 2.0), "unused": torch.ones(1)}
    report = align_and_update_state_dicts(model_state, loaded)
    assert float(model_state["a.fc.weight"]) == 1.0 and float(model_state["b.fc.weight"]) == 2.0
    assert sorted(report.loaded) == [("a.fc.weight", "fc.weight"), ("b.fc.weight", "b.fc.weight")]
    assert report.missing == ["c.other"] and report.unexpected == ["unused"]


def test_load_mapping_copies_box_head_fc_into_relation_extractors(tmp_path):
    detector = randomized(ToyDetector(), 3)
    path = tmp_path / "detector.pth"
    save_benchmark_layout(path, detector)
    relation_model = randomized(ToyDetector(relation=True), 4)
    before = {k: v.clone() for k, v in relation_model.state_dict().items()}
    checkpointer = DetectronCheckpointer(None, relation_model, save_dir=str(tmp_path / "out"))
    checkpointer.load(str(path), with_optim=False, load_mapping=LOAD_MAPPING)
    state, det = relation_model.state_dict(), detector.state_dict()
    for layer in ("fc6", "fc7"):
        for param in ("weight", "bias"):
            source = det[f"roi_heads.box.feature_extractor.{layer}.{param}"]
            assert torch.equal(state[f"roi_heads.relation.box_feature_extractor.{layer}.{param}"], source)
            assert torch.equal(state[f"roi_heads.relation.union_feature_extractor.feature_extractor.{layer}.{param}"],
                               source)
    report = checkpointer.last_load_report
    assert not [k for k in report.missing if not k.startswith("roi_heads.relation.")]
    union = "roi_heads.relation.union_feature_extractor"
    not_in_detector = ("roi_heads.relation.predictor", f"{union}.rect_conv", f"{union}.feature_extractor.pooler")
    assert set(report.missing) == {k for k in state if k.startswith(not_in_detector)}
    for key in report.missing:  # unmatched keys keep their values
        assert torch.equal(state[key], before[key]), key
    assert report.unexpected == []
    assert_same(detector, relation_model, keys=list(det))


def test_shape_mismatch_is_skipped_and_reported(tmp_path, caplog):
    source = randomized(ToyDetector(), 5)
    state = source.state_dict()
    state["roi_heads.box.predictor.weight"] = torch.randn(7, 6)
    torch.save({"model": state}, tmp_path / "bad.pth")
    target = randomized(ToyDetector(), 6)
    kept = target.roi_heads["box"].predictor.weight.detach().clone()
    with caplog.at_level(logging.WARNING):
        Checkpointer(None, target).load(str(tmp_path / "bad.pth"))
    assert torch.equal(target.roi_heads["box"].predictor.weight, kept)
    assert torch.equal(target.roi_heads["box"].predictor.bias, state["roi_heads.box.predictor.bias"])
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "roi_heads.box.predictor.weight" in warning and "(3, 6)" in warning and "(7, 6)" in warning
    report = load_state_dict(target, state)
    assert report.shape_mismatch == [("roi_heads.box.predictor.weight", "roi_heads.box.predictor.weight",
                                      (3, 6), (7, 6))]
    assert "shape mismatch" in report.summary()


def test_report_summary_groups_keys_by_module():
    assert group_keys(["a.b.weight", "a.b.bias", "c.weight", "top"]) == "a.b.{weight, bias}; c.weight; top"


def make_checkpointer(save_dir, seed=0, **kwargs):
    model = randomized(ToyDetector(), seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 10)
    return Checkpointer(None, model, optimizer, scheduler, save_dir=str(save_dir), save_to_disk=True, **kwargs)


def test_save_writes_benchmark_layout_and_relative_last_checkpoint(tmp_path):
    checkpointer = make_checkpointer(tmp_path / "out")
    path = checkpointer.save("model_0000010", iteration=10)
    assert path == str(tmp_path / "out" / "model_0000010.pth")
    data = torch.load(path, weights_only=True)
    assert set(data) == {"model", "optimizer", "scheduler", "iteration"} and data["iteration"] == 10
    assert (tmp_path / "out" / "last_checkpoint").read_text() == "model_0000010.pth"
    custom = make_checkpointer(tmp_path / "custom", custom_scheduler=True)
    assert "scheduler" not in torch.load(custom.save("model_final", iteration=1), weights_only=True)
    # The whole output folder can move: the relative name still resolves.
    os.rename(tmp_path / "out", tmp_path / "moved")
    resumed = make_checkpointer(tmp_path / "moved", seed=9)
    assert resumed.get_checkpoint_file() == str(tmp_path / "moved" / "model_0000010.pth")
    assert resumed.load() == {"iteration": 10}
    assert_same(checkpointer.model, resumed.model)


def test_last_checkpoint_takes_precedence_over_given_file(tmp_path):
    checkpointer = make_checkpointer(tmp_path / "out", seed=1)
    checkpointer.save("model_0000005", iteration=5)
    other = randomized(ToyDetector(), 2)
    torch.save({"model": other.state_dict()}, tmp_path / "pretrained.pth")
    resumed = make_checkpointer(tmp_path / "out", seed=3)
    assert resumed.load(str(tmp_path / "pretrained.pth")) == {"iteration": 5}
    assert_same(checkpointer.model, resumed.model)


def test_old_benchmark_last_checkpoint_paths_are_accepted(tmp_path, monkeypatch):
    out = tmp_path / "output" / "relation_baseline"
    checkpointer = make_checkpointer(out)
    checkpointer.save("model_0000020", iteration=20)
    last = out / "last_checkpoint"
    last.write_text(str(out / "model_0000020.pth"))  # absolute, as the benchmark wrote it
    assert make_checkpointer(out).get_checkpoint_file() == str(out / "model_0000020.pth")
    monkeypatch.chdir(tmp_path)  # relative to the working directory: OUTPUT_DIR ./output/relation_baseline
    last.write_text("./output/relation_baseline/model_0000020.pth")
    assert os.path.samefile(make_checkpointer("./output/relation_baseline").get_checkpoint_file(),
                            out / "model_0000020.pth")
    last.write_text("/somewhere/else/output/model_0000020.pth")  # absolute, folder moved since
    assert make_checkpointer(out).get_checkpoint_file() == str(out / "model_0000020.pth")
    last.write_text("/somewhere/else/model_0000099.pth")
    with pytest.raises(CheckpointLoadError, match="model_0000099.pth"):
        make_checkpointer(out).get_checkpoint_file()


def test_failed_save_leaves_no_partial_file(tmp_path, monkeypatch):
    checkpointer = make_checkpointer(tmp_path)
    checkpointer.save("model_0000010", iteration=10)

    def broken_save(obj, f):
        with open(f, "wb") as handle:
            handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        checkpointer.save("model_0000020", iteration=20)
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000010.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000010.pth"


@dataclass
class NotAWeight:
    value: int


def test_file_needing_full_unpickling_is_refused_with_instructions(tmp_path, monkeypatch):
    path = tmp_path / "legacy.pth"
    torch.save({"model": randomized(ToyDetector(), 1).state_dict(), "meta": NotAWeight(3)}, path)
    monkeypatch.delenv(UNSAFE_LOAD_ENV, raising=False)
    with pytest.raises(CheckpointLoadError) as err:
        Checkpointer(None, ToyDetector()).load(str(path))
    message = str(err.value)
    assert str(path) in message and f"{UNSAFE_LOAD_ENV}=1" in message and "execute code" in message
    monkeypatch.setenv(UNSAFE_LOAD_ENV, "1")
    assert Checkpointer(None, ToyDetector()).load(str(path))["meta"] == NotAWeight(3)


def test_unsupported_sources_are_rejected(tmp_path):
    checkpointer = DetectronCheckpointer(None, ToyDetector())
    with pytest.raises(CheckpointLoadError, match="not a local file"):
        checkpointer.load("catalog://ImageNetPretrained/FAIR/20171220/X-101-32x8d")
    with pytest.raises(CheckpointLoadError, match="does not exist"):
        checkpointer.load(str(tmp_path / "missing.pth"))
    assert checkpointer.load("") == {}
