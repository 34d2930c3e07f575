"""CE7454 PSG classification: mR@3 and the grader pinned by hand computations, the tricks' lists and
sampler, and the train -> predict -> grade tools on a tiny synthetic PSG set."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from maskrcnn_benchmark.data.datasets.synthetic_psg import SyntheticPSGConfig, make_synthetic_psg
from maskrcnn_benchmark.psg_cls.class_lists import REPORT_LISTS, ClassLists, class_lists, derive_lists, image_counts
from maskrcnn_benchmark.psg_cls.engine import ClsSettings, epoch_order, top_k, train_classifier, weighted_bce
from maskrcnn_benchmark.psg_cls.grader import grade, read_result, write_id_lines
from maskrcnn_benchmark.psg_cls.metric import mean_recall
from maskrcnn_benchmark.psg_cls.sampling import balanced_base, balanced_epoch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def reference_mean_recall(gt, pred):
    """The rule in plain code: per class c in 6..55, images with c in GT and in the top 3 over images with c in GT."""
    recalls = []
    for c in range(6, 56):
        with_c = [i for i, labels in enumerate(gt) if c in labels]
        recalls.append(sum(c in pred[i] for i in with_c) / len(with_c) if with_c else 0.0)
    return sum(recalls) / 50


def small(gt, pred):
    """mR over the classes 6..9 only (a 10-class world), for examples small enough to check by hand."""
    return mean_recall(gt, pred, num_classes=10, num_ignored=6)


def test_perfect_top3_scores_one():
    assert small([[6, 7], [8], [6, 9]], [[7, 6, 0], [8, 1, 2], [9, 6, 3]]).score == 1.0


def test_positional_only_predictions_score_zero():
    assert small([[6, 7], [8], [6, 9]], [[0, 1, 2]] * 3).score == 0.0


def test_hand_example_and_order_inside_a_line_does_not_matter():
    gt = [[6, 7], [6], [8, 9]]
    # class 6: 1 of 2 images; 7: 0 of 1; 8: 1 of 1; 9: 1 of 1 -> (0.5 + 0 + 1 + 1) / 4
    assert small(gt, [[6, 0, 1], [2, 3, 4], [8, 9, 7]]).score == 0.625
    assert small(gt, [[1, 0, 6], [4, 2, 3], [7, 9, 8]]).score == 0.625
    assert small(gt, [[6, 6, 6], [2, 3, 4], [8, 9, 7]]).score == 0.625  # a repeated id brings nothing


def test_absent_class_counts_zero_and_is_named():
    result = small([[6], [7]], [[6, 7, 8], [7, 0, 1]])
    assert result.score == 0.5 and result.absent == [8, 9] and result.per_class == [1.0, 1.0, 0.0, 0.0]


def test_matches_the_plain_rule_on_random_lines():
    rng = np.random.default_rng(0)
    gt = [sorted(set(rng.integers(6, 56, size=rng.integers(1, 6)).tolist())) for _ in range(200)]
    pred = [rng.choice(56, size=3, replace=False).tolist() for _ in range(200)]
    assert mean_recall(gt, pred).score == pytest.approx(reference_mean_recall(gt, pred), abs=1e-12)


def test_grader_layout_writes_the_score(tmp_path):
    gt = [[6 + i] for i in range(50)]
    pred = [[6 + i, 0, 1] if i % 2 == 0 else [0, 1, 2] for i in range(50)]
    write_id_lines(str(tmp_path / "in" / "ref" / "psg_cls_gt.txt"), gt)
    write_id_lines(str(tmp_path / "in" / "res" / "result.txt"), pred)
    result, path = grade(str(tmp_path / "in"), str(tmp_path / "out"))
    assert result.score == 0.5 and open(path).read() == "score: 0.5\n"
    with pytest.raises(ValueError, match="has 50 lines, the GT 49"):
        read_result(str(tmp_path / "in" / "res" / "result.txt"), 49)
    write_id_lines(str(tmp_path / "bad.txt"), [[6, 7]])
    with pytest.raises(ValueError, match=r"line 1: expected 3 ids, got \[6, 7\]"):
        read_result(str(tmp_path / "bad.txt"), 1)


def test_lists_by_rule_take_the_reports_sizes_of_the_rarest_classes():
    counts = np.arange(56)  # class c seen in c images: 6 is the rarest
    lists = derive_lists(counts)
    assert lists.low == tuple(range(6, 36)) and lists.rarest == tuple(range(6, 18))
    assert lists.frequent == (52, 53, 54, 55) and lists.multiplied == tuple(range(6, 43))
    assert [len(x) for x in (REPORT_LISTS.low, REPORT_LISTS.frequent, REPORT_LISTS.rarest, REPORT_LISTS.multiplied)] \
        == [30, 4, 12, 37]
    assert class_lists("report", counts) == REPORT_LISTS
    assert image_counts([[6, 6, 7], [7]])[6:8].tolist() == [1, 2]


def test_balanced_sampler_repeats_low_and_rarest_images():
    lists = ClassLists(low=(6, 7), frequent=(11,), rarest=(7,), multiplied=())
    labels = [[6], [6, 11], [7], [11]]
    # low-class images 0, 1, 2; +2 copies of those without a frequent class (0, 2); +3 of those with a rarest (2)
    assert balanced_base(labels, lists).tolist() == [0, 1, 2, 0, 2, 0, 2, 2, 2, 2]
    epoch = balanced_epoch(balanced_base(labels, lists), 9, np.random.default_rng(0))
    assert len(epoch) == 10 + 1  # one random extra per 9 images


def test_epoch_order_is_shared_by_the_processes_and_splits_evenly():
    first = epoch_order([[6]] * 17, None, np.random.default_rng(3), world_size=2)
    again = epoch_order([[6]] * 17, None, np.random.default_rng(3), world_size=2)
    assert first.tolist() == again.tolist() and len(first) == 16 and len(set(first.tolist())) == 16


def test_top3_after_the_multiplier_and_weighted_loss():
    probabilities = np.array([[0.5, 0.4, 0.3, 0.2]])
    assert top_k(probabilities).tolist() == [[0, 1, 2]]
    assert top_k(probabilities, np.array([1, 1, 1, 2.0])).tolist() == [[0, 1, 3]]  # tie 0.4: lower id first
    loss = weighted_bce(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]), torch.tensor([1.2, 1.0]))
    assert loss.item() == pytest.approx(2.2 * np.log(2))


def test_train_predict_and_grade_tools_on_synthetic_psg(tmp_path):
    data = str(tmp_path / "data")
    make_synthetic_psg(data, 40, seed=1, config=SyntheticPSGConfig(image_long_side=64))
    settings = ClsSettings(
        data_file=os.path.join(data, "psg", "psg_cls_basic.json"), img_dir=os.path.join(data, "coco"),
        arch="resnet18", weights="", input_size=32, epochs=2, batch_size=8, base_lr=0.01, min_lr=1e-6,
        momentum=0.9, weight_decay=5e-4, class_lists="rule", low_freq_weight=1.2, balanced_sampler=True,
        rare_multiplier=1.1, num_workers=0, seed=0)
    best = train_classifier(settings, torch.device("cpu"), distributed=False)
    assert len(best["history"]) == 2 and best["best_val"] == max(h["val_mR@3"] for h in best["history"])
    out = tmp_path / "out"
    out.mkdir()
    torch.save(best["state_dict"], out / "model_best.pth")
    overrides = ["DATASETS.DATA_DIR", data, "OUTPUT_DIR", str(out), "PSG_CLS.ARCH", "resnet18",
                 "PSG_CLS.INPUT_SIZE", "32", "PSG_CLS.RARE_MULTIPLIER", "1.1"]
    predicted = subprocess.run([sys.executable, os.path.join(REPO, "tools", "psg_cls_predict.py"), "--config-file",
                                os.path.join(REPO, "configs", "psg", "cls_R50.yaml"), *overrides],
                               cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    result = out / "test" / "res" / "result.txt"
    gt = os.path.join(data, "psg", "psg_cls_gt.txt")
    graded = subprocess.run([sys.executable, os.path.join(REPO, "tools", "psg_cls_grade.py"), "--result", str(result),
                             "--gt", gt], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=60)
    assert graded.returncode == 0, graded.stderr[-3000:]
    lines = [list(map(int, line.split())) for line in open(result)]
    gt_lines = [list(map(int, line.split())) for line in open(gt)]
    assert len(lines) == len(gt_lines) and all(len(line) == 3 for line in lines)
    assert graded.stdout.startswith(f"score: {mean_recall(gt_lines, lines).score}")
