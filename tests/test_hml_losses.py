"""HML stage losses: class-balanced weights, CR (paper and official) and alpha / beta."""
import pytest
import torch
import torch.nn.functional as F

from hml_patch.losses import (class_balanced_weights, concept_reconstruction_loss,
                              official_concept_reconstruction_loss, stage_loss_weights)


def test_class_balanced_weights_follow_the_formula():
    counts = torch.tensor([999, 100, 10, 0, 1, 50])
    weights = class_balanced_weights(counts, classes=[1, 2, 4], gamma=0.9, background_weight=0.5)
    raw = {c: (1 - 0.9) / (1 - 0.9 ** n) for c, n in ((1, 100), (2, 10), (4, 1))}
    mean = sum(raw.values()) / 3
    expected = torch.tensor([0.5, raw[1] / mean, raw[2] / mean, 0.0, raw[4] / mean, 0.0])
    assert torch.allclose(weights, expected.float())
    assert weights[4] > weights[2] > weights[1]  # rarer classes weigh more


def test_class_balanced_weights_reject_bad_input():
    with pytest.raises(ValueError, match="gamma"):
        class_balanced_weights(torch.ones(4), [1], gamma=1.0)
    with pytest.raises(ValueError, match="predicate ids"):
        class_balanced_weights(torch.ones(4), [0, 1], gamma=0.9)


def test_stage_loss_weights():
    assert stage_loss_weights(num_old=5, num_new=13, lam=0.5) == pytest.approx((5 / 13, 0.5 * 18 / 13))
    with pytest.raises(ValueError):
        stage_loss_weights(3, 0, 0.5)


def test_concept_reconstruction_equals_equation_5_on_a_hand_example():
    # two proposals, three classes; old classes {1, 2}
    student = torch.log(torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]]))
    teacher = torch.log(torch.tensor([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]]))
    # n=0: (0.5-0.7)^2 + (0.3-0.2)^2 = 0.05; n=1: (0.1-0.3)^2 + (0.3-0.1)^2 = 0.08; mean over N=2
    loss = concept_reconstruction_loss(student, teacher, old_classes=[1, 2])
    assert loss.item() == pytest.approx(0.065, abs=1e-6)
    all_columns = concept_reconstruction_loss(student, teacher)
    assert all_columns.item() == pytest.approx((0.05 + 0.01 + 0.08) / 2, abs=1e-6)
    l1 = concept_reconstruction_loss(student, teacher, old_classes=[1, 2], distance="l1")
    assert l1.item() == pytest.approx((0.3 + 0.4) / 2, abs=1e-6)


def test_concept_reconstruction_gradient_reaches_only_the_student():
    torch.manual_seed(0)
    student = torch.randn(4, 5, requires_grad=True)
    teacher = torch.randn(4, 5, requires_grad=True)
    concept_reconstruction_loss(student, teacher, old_classes=[1, 2], temperature=2.0).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None
    assert concept_reconstruction_loss(student, student.detach()).item() == 0.0


def test_concept_reconstruction_needs_the_same_pairs():
    with pytest.raises(ValueError, match="same relation pairs"):
        concept_reconstruction_loss(torch.zeros(3, 4), torch.zeros(2, 4))


def test_official_concept_reconstruction():
    torch.manual_seed(1)
    student, teacher = torch.randn(6, 51), torch.randn(6, 51)
    expected = 0.5 * F.l1_loss(F.softmax(teacher, 1), F.softmax(student, 1)) * 6
    assert torch.allclose(official_concept_reconstruction_loss(student, teacher), expected)
