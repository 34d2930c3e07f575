"""BoxList: the boxes of one image together with named per-box fields."""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Sequence, Tuple, Union

import torch

from .box_convention import pixel_offset

FLIP_LEFT_RIGHT = 0
FLIP_TOP_BOTTOM = 1

_MODES = ("xyxy", "xywh")


class BoxList:
    """Boxes of one image (``[N, 4]``), the image size ``(width, height)`` and fields.

    Fields are tensors (or objects with the same indexing behaviour) whose first
    dimension runs over the boxes. A *triplet* field is an ``[N, N, ...]`` matrix
    over pairs of boxes (the dense relation map): indexing a BoxList indexes both
    of its first two dimensions, so relations follow the boxes they connect.
    """

    def __init__(self, bbox: Any, image_size: Sequence[int], mode: str = "xyxy") -> None:
        device = bbox.device if isinstance(bbox, torch.Tensor) else torch.device("cpu")
        bbox = torch.as_tensor(bbox, dtype=torch.float32, device=device)
        if bbox.ndimension() != 2 or bbox.size(-1) != 4:
            raise ValueError(f"bbox should have shape [N, 4], got {tuple(bbox.shape)}")
        if mode not in _MODES:
            raise ValueError(f"mode should be one of {_MODES}, got {mode!r}")
        self.bbox = bbox
        self.size = (int(image_size[0]), int(image_size[1]))  # (width, height)
        self.mode = mode
        self.extra_fields: Dict[str, Any] = {}
        self.triplet_extra_fields: List[str] = []

    # ----------------------------------------------------------------- fields
    def add_field(self, field: str, field_data: Any, is_triplet: bool = False) -> None:
        self.extra_fields[field] = field_data
        if is_triplet and field not in self.triplet_extra_fields:
            self.triplet_extra_fields.append(field)

    def get_field(self, field: str) -> Any:
        if field not in self.extra_fields:
            raise KeyError(f"BoxList has no field {field!r}; it has {self.fields()}")
        return self.extra_fields[field]

    def has_field(self, field: str) -> bool:
        return field in self.extra_fields

    def fields(self) -> List[str]:
        return list(self.extra_fields.keys())

    def del_field(self, field: str) -> None:
        del self.extra_fields[field]
        if field in self.triplet_extra_fields:
            self.triplet_extra_fields.remove(field)

    def _copy_extra_fields(self, other: "BoxList") -> None:
        for k, v in other.extra_fields.items():
            self.add_field(k, v, is_triplet=k in other.triplet_extra_fields)

    def copy_with_fields(self, fields: Union[str, Iterable[str]], skip_missing: bool = False) -> "BoxList":
        out = BoxList(self.bbox, self.size, self.mode)
        for field in [fields] if isinstance(fields, str) else fields:
            if self.has_field(field):
                out.add_field(field, self.get_field(field), field in self.triplet_extra_fields)
            elif not skip_missing:
                raise KeyError(f"Field {field!r} not found in {self}")
        return out

    # ------------------------------------------------------------ coordinates
    def _split_into_xyxy(self, legacy: bool = True) -> Tuple[torch.Tensor, ...]:
        if self.mode == "xyxy":
            return self.bbox.split(1, dim=-1)
        off = pixel_offset(legacy)
        x, y, w, h = self.bbox.split(1, dim=-1)
        return x, y, x + (w - off).clamp(min=0), y + (h - off).clamp(min=0)

    def convert(self, mode: str, legacy: bool = True) -> "BoxList":
        """Return the same boxes in ``mode`` ("xyxy" or "xywh")."""
        if mode not in _MODES:
            raise ValueError(f"mode should be one of {_MODES}, got {mode!r}")
        if mode == self.mode:
            return self
        xmin, ymin, xmax, ymax = self._split_into_xyxy(legacy)
        if mode == "xyxy":
            bbox = torch.cat((xmin, ymin, xmax, ymax), dim=-1)
        else:
            off = pixel_offset(legacy)
            bbox = torch.cat((xmin, ymin, xmax - xmin + off, ymax - ymin + off), dim=-1)
        out = BoxList(bbox, self.size, mode=mode)
        out._copy_extra_fields(self)
        return out

    def resize(self, size: Sequence[int]) -> "BoxList":
        """Scale the boxes to a new image size ``(width, height)``."""
        ratio_w, ratio_h = (float(s) / float(s_orig) for s, s_orig in zip(size, self.size))
        if ratio_w == ratio_h:
            bbox = self.bbox * ratio_w
        else:
            xmin, ymin, xmax, ymax = self._split_into_xyxy()
            scaled = torch.cat((xmin * ratio_w, ymin * ratio_h, xmax * ratio_w, ymax * ratio_h), dim=-1)
            bbox = BoxList(scaled, size, mode="xyxy").convert(self.mode).bbox
        out = BoxList(bbox, size, mode=self.mode)
        for k, v in self.extra_fields.items():
            out.add_field(k, v.resize(size) if hasattr(v, "resize") and not isinstance(v, torch.Tensor) else v,
                          k in self.triplet_extra_fields)
        return out

    def transpose(self, method: int, legacy: bool = True) -> "BoxList":
        """Flip the boxes with the image (FLIP_LEFT_RIGHT or FLIP_TOP_BOTTOM)."""
        if method not in (FLIP_LEFT_RIGHT, FLIP_TOP_BOTTOM):
            raise ValueError("Only FLIP_LEFT_RIGHT and FLIP_TOP_BOTTOM are implemented")
        off = pixel_offset(legacy)
        width, height = self.size
        xmin, ymin, xmax, ymax = self._split_into_xyxy(legacy)
        if method == FLIP_LEFT_RIGHT:
            xmin, xmax = width - xmax - off, width - xmin - off
        else:
            ymin, ymax = height - ymax - off, height - ymin - off
        out = BoxList(torch.cat((xmin, ymin, xmax, ymax), dim=-1), self.size, mode="xyxy")
        for k, v in self.extra_fields.items():
            out.add_field(k, v.transpose(method) if hasattr(v, "transpose") and not isinstance(v, torch.Tensor) else v,
                          k in self.triplet_extra_fields)
        return out.convert(self.mode, legacy)

    def clip_to_image(self, remove_empty: bool = True, legacy: bool = True) -> "BoxList":
        """Clamp boxes into the image; optionally drop boxes left with no extent.

        Under the legacy convention x is clamped to ``[0, w - 1]`` and y to
        ``[0, h - 1]``. This clips in place, as the benchmark does.
        """
        off = pixel_offset(legacy)
        self.bbox[:, 0].clamp_(min=0, max=self.size[0] - off)
        self.bbox[:, 1].clamp_(min=0, max=self.size[1] - off)
        self.bbox[:, 2].clamp_(min=0, max=self.size[0] - off)
        self.bbox[:, 3].clamp_(min=0, max=self.size[1] - off)
        if remove_empty:
            box = self.bbox
            keep = (box[:, 3] > box[:, 1]) & (box[:, 2] > box[:, 0])
            return self[keep]
        return self

    def area(self, legacy: bool = True) -> torch.Tensor:
        box = self.bbox
        if self.mode == "xywh":
            return box[:, 2] * box[:, 3]
        off = pixel_offset(legacy)
        return (box[:, 2] - box[:, 0] + off) * (box[:, 3] - box[:, 1] + off)

    # ------------------------------------------------------------ containers
    def to(self, device: Union[str, torch.device]) -> "BoxList":
        out = BoxList(self.bbox.to(device), self.size, self.mode)
        for k, v in self.extra_fields.items():
            out.add_field(k, v.to(device) if hasattr(v, "to") else v, k in self.triplet_extra_fields)
        return out

    def __getitem__(self, item: Any) -> "BoxList":
        """Select boxes by index, slice or mask; triplet fields are indexed on both axes."""
        out = BoxList(self.bbox[item], self.size, self.mode)
        for k, v in self.extra_fields.items():
            if k in self.triplet_extra_fields:
                out.add_field(k, v[item][:, item], is_triplet=True)
            else:
                out.add_field(k, v[item])
        return out

    def __len__(self) -> int:
        return self.bbox.shape[0]

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(num_boxes={len(self)}, image_width={self.size[0]}, "
                f"image_height={self.size[1]}, mode={self.mode})")
