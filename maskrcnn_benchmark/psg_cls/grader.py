"""The CE7454 grader's files: ``result.txt`` (3 ids per test image) and ``psg_cls_gt.txt`` (GT ids).

CodaLab layout: ``<input>/res/result.txt`` and ``<input>/ref/psg_cls_gt.txt`` in,
``<output>/scores.txt`` ("score: <fraction>") out. The official grader hard-codes 500 test
images; here the number of lines comes from the GT file, and the result must have one
line of exactly 3 ids per GT line.
"""
from __future__ import annotations

import os
from typing import List, Sequence, Tuple

from .metric import MeanRecall, mean_recall

RESULT_FILE = os.path.join("res", "result.txt")
GT_FILE = os.path.join("ref", "psg_cls_gt.txt")
SCORES_FILE = "scores.txt"
TOP_K = 3


def read_id_lines(path: str) -> List[List[int]]:
    """One list of ints per line (an empty line is an image with no scored GT id)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found")
    lines = []
    with open(path) as f:
        for number, line in enumerate(f, start=1):
            try:
                lines.append([int(token) for token in line.split()])
            except ValueError as err:
                raise ValueError(f"{path} line {number}: expected space-separated ints, got {line!r}") from err
    return lines


def read_result(path: str, num_images: int) -> List[List[int]]:
    """The submission: ``num_images`` lines of exactly ``TOP_K`` ids."""
    lines = read_id_lines(path)
    if len(lines) != num_images:
        raise ValueError(f"{path} has {len(lines)} lines, the GT {num_images}")
    for number, ids in enumerate(lines, start=1):
        if len(ids) != TOP_K:
            raise ValueError(f"{path} line {number}: expected {TOP_K} ids, got {ids}")
    return lines


def write_id_lines(path: str, lines: Sequence[Sequence[int]]) -> None:
    """Write one line of space-separated ids per image."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        for ids in lines:
            f.write(" ".join(str(int(i)) for i in ids) + "\n")


def score_files(result_file: str, gt_file: str) -> MeanRecall:
    """mR@3 of a result file against a GT file."""
    groundtruth = read_id_lines(gt_file)
    return mean_recall(groundtruth, read_result(result_file, len(groundtruth)))


def grade(input_dir: str, output_dir: str) -> Tuple[MeanRecall, str]:
    """Score ``input_dir`` in the CodaLab layout and write ``output_dir/scores.txt``; returns (result, path)."""
    result = score_files(os.path.join(input_dir, RESULT_FILE), os.path.join(input_dir, GT_FILE))
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, SCORES_FILE)
    with open(path, "w") as f:
        f.write(f"score: {result.score}\n")
    return result, path
