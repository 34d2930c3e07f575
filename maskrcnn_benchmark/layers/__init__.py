"""Neural-network layers and box operations with the benchmark's semantics, on torchvision ops."""
from .frozen_batch_norm import FrozenBatchNorm2d
from .legacy_box_ops import batched_nms, boxlist_nms, decode_boxes, encode_boxes, nms, remove_small_boxes
from .roi_align import ROIAlign
from .smooth_l1_loss import smooth_l1_loss

__all__ = ["FrozenBatchNorm2d", "ROIAlign", "batched_nms", "boxlist_nms", "decode_boxes", "encode_boxes", "nms",
           "remove_small_boxes", "smooth_l1_loss"]
