"""Assign each prediction (anchor or proposal) to the ground-truth box it overlaps most."""
import torch


class Matcher:
    """Per prediction: the index of its best ground truth, or a negative code.

    Codes: ``BELOW_LOW_THRESHOLD`` (-1) when the best IoU is below ``low_threshold``,
    ``BETWEEN_THRESHOLDS`` (-2) when it is in ``[low, high)``. With
    ``allow_low_quality_matches``, each ground truth also keeps the predictions that
    overlap it most, even below the thresholds (the RPN uses this).
    """

    BELOW_LOW_THRESHOLD = -1
    BETWEEN_THRESHOLDS = -2

    def __init__(self, high_threshold: float, low_threshold: float, allow_low_quality_matches: bool = False) -> None:
        if low_threshold > high_threshold:
            raise ValueError(f"low_threshold {low_threshold} must be <= high_threshold {high_threshold}")
        self.high_threshold = high_threshold
        self.low_threshold = low_threshold
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, match_quality_matrix: torch.Tensor) -> torch.Tensor:
        """``match_quality_matrix`` is ``[num_gt, num_predictions]``; returns ``[num_predictions]`` int64."""
        if match_quality_matrix.numel() == 0:
            if match_quality_matrix.shape[0] == 0:
                raise ValueError("No ground-truth boxes available for one of the images during training")
            raise ValueError("No proposal boxes available for one of the images during training")
        matched_vals, matches = match_quality_matrix.max(dim=0)
        all_matches = matches.clone() if self.allow_low_quality_matches else None
        below = matched_vals < self.low_threshold
        between = (matched_vals >= self.low_threshold) & (matched_vals < self.high_threshold)
        matches[below] = self.BELOW_LOW_THRESHOLD
        matches[between] = self.BETWEEN_THRESHOLDS
        if all_matches is not None:
            best_per_gt = match_quality_matrix.max(dim=1)[0]
            best_pairs = torch.nonzero(match_quality_matrix == best_per_gt[:, None])
            update = best_pairs[:, 1]
            matches[update] = all_matches[update]
        return matches
