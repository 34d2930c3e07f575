"""Scene-graph evaluation with the Scene-Graph-Benchmark's protocol, streaming and vectorised.

Entry point: ``SGGEvaluator`` (``add`` per image, ``all_reduce``, ``result`` /
``log_lines`` / ``write_json``), built from the config by ``build_sgg_evaluator``.

Benchmark behaviours reproduced (they decide the numbers):

* Graph-constrained metrics take the prediction rows in the order given (the
  post-processor's triplet-score order) and never re-sort; one predicate per
  row, the argmax over the non-background columns (lowest id on a tie); the
  background column plays no other part.
* No-graph-constraint metrics rank every (row, predicate) by
  ``score_subject * score_object * P(predicate)`` in float32 and keep the best
  100 (every entry when there are at most 100).
* A match needs equal subject, object and predicate labels and IoU >= the
  threshold (inclusive) on both boxes, IoU in float32 with the "+1" width.
  One prediction may match several GT rows and the reverse; duplicate GT rows
  count in numerator and denominator.
* PredCls uses the GT boxes and labels with object score 1; SGCls and SGDet use
  the predicted ones.
* Recall is the mean over images of per-image recall. Images without GT
  relations (or without candidate pairs) are skipped by every relation metric
  but still count for the box mAP.
* mR sums, over all predicates, the mean over images containing the predicate
  of its per-image recall, and divides by the number of predicates: an absent
  predicate contributes 0.
* zR / ng-zR average over images with at least one zero-shot GT relation; the
  list's columns are (subject label, object label, predicate).
* A@K (PredCls/SGCls only): rows whose (subject, object) is a GT pair, first K
  of them; mean hits over mean GT count.
* Box mAP: pycocotools bbox on the faux COCO of the benchmark; "mAp" is
  stats[1] (AP at IoU 0.5), PredCls scoring GT labels with score 1.
* The COCO annotation-id quirk (ids from 0, so the first GT box of image 0 can
  never match) is reproduced only with ``legacy_coco_ann_ids=True``
  (``TEST.COCO_LEGACY_ANN_IDS True``); by default ids start at 1.

Differences: ties in the no-graph-constraint ranking are broken by row then
predicate (the benchmark's unstable sort leaves them to the CPU); pair keys do
not wrap at 1024 boxes; MULTIPLE_PREDS is recorded but, as in the benchmark,
changes nothing; zR is null (not NaN) when no image has a zero-shot relation.
Added: Mean@K, F@K and head/body/tail mR (see ``derived``).
"""
from .evaluator import SGGEvaluator, build_sgg_evaluator, load_zeroshot_triplets

__all__ = ["SGGEvaluator", "build_sgg_evaluator", "load_zeroshot_triplets"]
