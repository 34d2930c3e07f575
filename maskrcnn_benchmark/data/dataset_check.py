"""Check VG150-format dataset files and report every problem at once, each with file, key, image id and index.

``check_vg150(..., deep=False)`` is the cheap part the tools run at start-up: the files are there, the
h5 opens and has its datasets with integer dtypes and consistent shapes, no dataset claims more bytes
than the file stores (a truncated file or a crafted header is refused before anything is read), the
``img_to_first/last_*`` ranges lie inside the arrays without overlapping, and the JSON files have the
expected structure and image count. ``deep=True`` (tools/check_dataset.py) adds the values: boxes with
w or h <= 0, outside the image or NaN/Inf, labels outside the dictionary, relations whose boxes are not
their image's, dictionary tables that disagree, duplicate image ids, and every image decoded.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

import h5py
import numpy as np
from PIL import Image

from .datasets.visual_genome import BOX_SCALE, SKIPPED_IMAGE_IDS, decode_center_boxes

PER_IMAGE_KEYS = ("split", "img_to_first_box", "img_to_last_box", "img_to_first_rel", "img_to_last_rel")
BOX_KEY = f"boxes_{BOX_SCALE}"
PER_BOX_KEYS = ("labels", "attributes", BOX_KEY)
PER_RELATION_KEYS = ("relationships", "predicates")
COLUMNS = {BOX_KEY: 4, "relationships": 2}  # fixed second dimension; the others are (N,) or (N, k)
DICT_TABLES = (("label_to_idx", "idx_to_label", "object_count"), ("predicate_to_idx", "idx_to_predicate",
               "predicate_count"), ("attribute_to_idx", "idx_to_attribute", "attribute_count"))
MAX_COMPRESSION_RATIO = 1000  # beyond what gzip reaches on index arrays: a header claiming more is hostile
MAX_LISTED = 20  # problems listed per kind; the rest are counted in one more entry
# Scale-1024 pixels a box may start left of / above the image. VG150's own boxes often pass the right
# or bottom border (by up to a third of the box; the loader clips them), so only a box that starts
# before the image or does not touch it counts as outside.
BOX_TOLERANCE = 1
FILE_KEYS = ("img_dir", "roidb_file", "dict_file", "image_file")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset: the file, the h5 dataset / JSON key, and where known the image and index."""

    file: str
    key: str
    message: str
    image_id: Optional[int] = None
    index: Optional[int] = None

    def __str__(self) -> str:
        where = [self.file, self.key]
        if self.image_id is not None:
            where.append(f"image id {self.image_id}")
        if self.index is not None:
            where.append(f"index {self.index}")
        return f"{': '.join(where)}: {self.message}"

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


class DatasetCheckError(ValueError):
    """The start-up check found problems in the dataset files."""


class _Report:
    """Collects problems, listing at most MAX_LISTED of each kind (file, key, message template)."""

    def __init__(self) -> None:
        self.problems: List[Problem] = []

    def add(self, file: str, key: str, message: str, image_id: Optional[int] = None,
            index: Optional[int] = None) -> None:
        self.problems.append(Problem(file, key, message, image_id, index))

    def rows(self, file: str, key: str, indices: np.ndarray, message: Callable[[int], str],
             image_id: Callable[[int], Optional[int]]) -> None:
        """One problem per bad index (the first MAX_LISTED), then one that counts the rest."""
        for index in indices[:MAX_LISTED].tolist():
            self.add(file, key, message(index), image_id(index), index)
        if len(indices) > MAX_LISTED:
            self.add(file, key, f"{len(indices) - MAX_LISTED} more like the above (indices up to "
                                f"{int(indices[-1])})")


def _read_json(path: str, key: str, report: _Report) -> Any:
    """The parsed file, or None after reporting why it cannot be read (deep nesting included)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        report.add(path, key, f"cannot be read as JSON ({err})")
    except RecursionError:
        report.add(path, key, "is nested too deeply to parse (hostile or corrupted JSON)")
    return None


def _stored_size_problem(dset: h5py.Dataset, file_size: int) -> Optional[str]:
    """Why ``dset`` cannot hold the bytes its shape claims, or None: checked before reading anything."""
    claimed = int(dset.size) * dset.dtype.itemsize
    layout = dset.id.get_create_plist().get_layout()
    if claimed == 0 or layout == h5py.h5d.COMPACT:
        return None
    if layout == h5py.h5d.CONTIGUOUS:
        offset = dset.id.get_offset()
        if offset is None:
            return f"claims shape {dset.shape} ({claimed} bytes) but stores no data"
        if offset + claimed > file_size:
            return (f"claims shape {dset.shape} ({claimed} bytes from byte {offset}) but the file has "
                    f"{file_size} bytes: truncated")
        return None
    stored = dset.id.get_storage_size()
    ratio = MAX_COMPRESSION_RATIO if dset.compression or dset.id.get_create_plist().get_nfilters() else 1
    if claimed > stored * ratio:
        return f"claims shape {dset.shape} ({claimed} bytes) but stores {stored} bytes: truncated or crafted"
    return None


class _VG150Check:
    """The checks of one set of VG150 files; each method adds what it finds to the report."""

    def __init__(self, img_dir: str, roidb_file: str, dict_file: str, image_file: str) -> None:
        self.img_dir, self.roidb_file, self.dict_file, self.image_file = img_dir, roidb_file, dict_file, image_file
        self.report = _Report()
        self.roidb: Dict[str, np.ndarray] = {}
        self.lengths: Dict[str, int] = {}
        self.entries: Optional[List[Dict[str, Any]]] = None
        self.dictionary: Optional[Dict[str, Any]] = None
        self.ranges_ok = False

    # -------------------------------------------------------------------- cheap
    def files(self) -> bool:
        """Report missing inputs; True when the three files are there (the image folder is checked, not needed)."""
        where = "set DATASETS.DATA_DIR or the dataset's {!r} in the paths catalog"
        if not os.path.isdir(self.img_dir):
            self.report.add(self.img_dir, "img_dir", f"folder not found ({where.format('img_dir')})")
        missing = [(key, path) for key, path in (("roidb_file", self.roidb_file), ("dict_file", self.dict_file),
                                                 ("image_file", self.image_file)) if not os.path.isfile(path)]
        for key, path in missing:
            self.report.add(path, key, f"file not found ({where.format(key)})")
        return not missing

    def roidb_structure(self, read_all: bool) -> None:
        """Open the h5, check keys, dtypes, shapes and stored sizes, and read the datasets that pass
        (only the per-image index arrays unless ``read_all``)."""
        try:
            h5 = h5py.File(self.roidb_file, "r")
        except OSError as err:
            self.report.add(self.roidb_file, "roidb_file", f"cannot be opened as HDF5 (truncated or not HDF5: {err})")
            return
        file_size = os.path.getsize(self.roidb_file)
        with h5:
            for group in (PER_IMAGE_KEYS, PER_BOX_KEYS, PER_RELATION_KEYS):
                lengths = {}
                for key in group:
                    dset = self._valid_dataset(h5, key, file_size)
                    if dset is not None:
                        lengths[key] = dset.shape[0]
                if len(set(lengths.values())) > 1:
                    self.report.add(self.roidb_file, "/".join(lengths), f"should have the same length, got {lengths}")
                    continue
                self.lengths.update(lengths)
                for key in lengths if read_all or group is PER_IMAGE_KEYS else ():
                    self._read(h5, key)

    def _read(self, h5: h5py.File, key: str) -> None:
        try:
            values = h5[key][()]
        except OSError as err:
            self.report.add(self.roidb_file, key, f"cannot be read (truncated? {err})")
            return
        if values.ndim == 2 and key not in COLUMNS and key != "attributes":
            values = values[:, 0]  # (N, 1) -> (N,)
        self.roidb[key] = values

    def _valid_dataset(self, h5: h5py.File, key: str, file_size: int) -> Optional[h5py.Dataset]:
        if key not in h5 or not isinstance(h5[key], h5py.Dataset):
            self.report.add(self.roidb_file, key, "dataset missing")
            return None
        dset = h5[key]
        allowed, expected_type = ("iuf", "a number") if key == BOX_KEY else ("iu", "an integer")
        if dset.dtype.kind not in allowed:
            self.report.add(self.roidb_file, key, f"has dtype {dset.dtype}, expected {expected_type} type")
            return None
        if key in COLUMNS:
            shape_ok = dset.ndim == 2 and dset.shape[1] == COLUMNS[key]
            expected = f"(N, {COLUMNS[key]})"
        elif key == "attributes":
            shape_ok, expected = dset.ndim == 2, "(N, k)"
        else:
            shape_ok, expected = dset.ndim == 1 or (dset.ndim == 2 and dset.shape[1] == 1), "(N,) or (N, 1)"
        if not shape_ok:
            self.report.add(self.roidb_file, key, f"has shape {dset.shape}, expected {expected}")
            return None
        reason = _stored_size_problem(dset, file_size)
        if reason is not None:
            self.report.add(self.roidb_file, key, reason)
            return None
        return dset

    def image_list(self) -> None:
        entries = _read_json(self.image_file, "image_file", self.report)
        if entries is None:
            return
        if not isinstance(entries, list):
            self.report.add(self.image_file, "image_file", f"should hold a list of image records, got "
                                                           f"{type(entries).__name__}")
            return
        valid = True
        for position, entry in enumerate(entries):
            fields = entry if isinstance(entry, dict) else {}
            if not all(isinstance(fields.get(k), int) for k in ("image_id", "width", "height")) or \
                    min(fields.get("width", 0), fields.get("height", 0)) <= 0:
                self.report.add(self.image_file, "image_id/width/height", f"entry lacks an integer image id or "
                                f"positive integer width and height: {str(entry)[:200]}", index=position)
                valid = False
        if not valid:
            return
        self.entries = [e for e in entries if e["image_id"] not in SKIPPED_IMAGE_IDS]
        rows = len(self.roidb.get("split", ()))
        if "split" in self.roidb and len(self.entries) != rows:
            self.report.add(self.image_file, "image_file", f"lists {len(self.entries)} images (after skipping ids "
                            f"{list(SKIPPED_IMAGE_IDS)}) but {self.roidb_file} has {rows} image rows")
            self.entries = None

    def dictionary_structure(self) -> None:
        info = _read_json(self.dict_file, "dict_file", self.report)
        if info is None:
            return
        if not isinstance(info, dict):
            self.report.add(self.dict_file, "dict_file", "should hold an object")
            return
        for name_key, _, _ in DICT_TABLES:
            table = info.get(name_key)
            if not isinstance(table, dict) or not all(isinstance(v, int) for v in table.values()):
                self.report.add(self.dict_file, name_key, "missing, or not a mapping of names to integer ids")
                return
            ids = sorted(table.values())
            if ids and ids != list(range(1, len(ids) + 1)):
                self.report.add(self.dict_file, name_key, f"ids should be 1..{len(ids)}, got {ids[:10]}...")
                return
        self.dictionary = info

    def ranges(self) -> None:
        """img_to_first/last_{box,rel}: -1 together, inside the arrays, not overlapping."""
        if not set(PER_IMAGE_KEYS) <= set(self.roidb):
            return
        ok = True
        for kind, group in (("box", PER_BOX_KEYS), ("rel", PER_RELATION_KEYS)):
            totals = [self.lengths[key] for key in group if key in self.lengths]
            if not totals:
                return
            first_key, last_key = f"img_to_first_{kind}", f"img_to_last_{kind}"
            first, last = self.roidb[first_key].astype(np.int64), self.roidb[last_key].astype(np.int64)
            total = totals[0]
            used = first >= 0
            bad = np.flatnonzero(used & ((last < first) | (last >= total)) | (~used & (last != -1)))
            self.report.rows(self.roidb_file, f"{first_key}/{last_key}", bad,
                             lambda r: f"range [{first[r]}, {last[r]}] is not -1/-1 nor inside [0, {total})",
                             self._image_id)
            rows = np.flatnonzero(used & (last >= first) & (last < total))
            rows = rows[np.argsort(first[rows], kind="stable")]
            overlap = np.flatnonzero(first[rows[1:]] <= last[rows[:-1]])
            self.report.rows(self.roidb_file, f"{first_key}/{last_key}", rows[1:][overlap],
                             lambda r: f"range [{first[r]}, {last[r]}] overlaps another image's", self._image_id)
            ok = ok and not bad.size  # overlapping ranges still give every row an owner: the value checks run
        no_boxes = np.flatnonzero((self.roidb["img_to_first_box"] < 0) & (self.roidb["img_to_first_rel"] >= 0))
        self.report.rows(self.roidb_file, "img_to_first_rel", no_boxes, lambda r: "has relations but no boxes",
                         self._image_id)
        self.ranges_ok = ok

    def _image_id(self, row: int) -> Optional[int]:
        return self.entries[row]["image_id"] if self.entries is not None and row < len(self.entries) else None

    # --------------------------------------------------------------------- deep
    def _owner(self, kind: str, total: int) -> np.ndarray:
        """For each box / relation row, the image row whose range holds it (-1 for none)."""
        owner = np.full(total, -1, dtype=np.int64)
        first, last = self.roidb[f"img_to_first_{kind}"], self.roidb[f"img_to_last_{kind}"]
        for row in np.flatnonzero(first >= 0).tolist():
            owner[first[row]:last[row] + 1] = row
        return owner

    def boxes(self) -> None:
        if BOX_KEY not in self.roidb or not self.ranges_ok:
            return
        boxes = self.roidb[BOX_KEY]
        owner = self._owner("box", len(boxes))
        image_of_box = lambda b: self._image_id(int(owner[b])) if owner[b] >= 0 else None  # noqa: E731
        if boxes.dtype.kind == "f":
            non_finite = ~np.isfinite(boxes).all(axis=1)
            self.report.rows(self.roidb_file, BOX_KEY, np.flatnonzero(non_finite),
                             lambda b: f"(cx, cy, w, h) = {boxes[b].tolist()} holds NaN or Inf", image_of_box)
            boxes = np.where(non_finite[:, None], 1, boxes)
        empty = (boxes[:, 2:] <= 0).any(axis=1)
        self.report.rows(self.roidb_file, BOX_KEY, np.flatnonzero(empty),
                         lambda b: f"(cx, cy, w, h) = {boxes[b].tolist()} has w or h <= 0", image_of_box)
        if self.entries is None:
            return
        sizes = np.array([[e["width"], e["height"]] for e in self.entries], dtype=np.float64).reshape(-1, 2)
        frame = sizes * (BOX_SCALE / sizes.max(axis=1, keepdims=True))
        owned = np.flatnonzero((owner >= 0) & ~empty)
        corners = decode_center_boxes(boxes[owned])
        limits = frame[owner[owned]]
        outside = (corners[:, :2] < -BOX_TOLERANCE).any(axis=1) | (corners[:, :2] >= limits).any(axis=1)
        self.report.rows(self.roidb_file, BOX_KEY, owned[outside],
                         lambda b: f"(cx, cy, w, h) = {boxes[b].tolist()} lies outside its image (frame "
                                   f"{frame[owner[b]].round(1).tolist()} at scale {BOX_SCALE})", image_of_box)

    def labels(self) -> None:
        if self.dictionary is None:
            return
        for key, table, lowest in (("labels", "label_to_idx", 1), ("predicates", "predicate_to_idx", 1),
                                   ("attributes", "attribute_to_idx", 0)):
            if key not in self.roidb:
                continue
            values, highest = self.roidb[key], len(self.dictionary[table])
            bad_rows = np.flatnonzero(((values < lowest) | (values > highest)).reshape(len(values), -1).any(axis=1))
            kind = "rel" if key == "predicates" else "box"
            owner = self._owner(kind, len(values)) if self.ranges_ok else None
            self.report.rows(self.roidb_file, key, bad_rows,
                             lambda r: f"value {values[r].tolist()} outside the dictionary's {lowest}..{highest} "
                                       f"({table})",
                             lambda r: self._image_id(int(owner[r])) if owner is not None and owner[r] >= 0 else None)

    def relations(self) -> None:
        if not self.ranges_ok or "relationships" not in self.roidb:
            return
        pairs = self.roidb["relationships"].astype(np.int64)
        owner = self._owner("rel", len(pairs))
        owned = np.flatnonzero(owner >= 0)
        first = self.roidb["img_to_first_box"][owner[owned]][:, None]
        last = self.roidb["img_to_last_box"][owner[owned]][:, None]
        outside = ((pairs[owned] < first) | (pairs[owned] > last)).any(axis=1)
        self.report.rows(self.roidb_file, "relationships", owned[outside],
                         lambda r: f"(subject, object) boxes {pairs[r].tolist()} are not in the image's box range "
                                   f"[{self.roidb['img_to_first_box'][owner[r]]}, "
                                   f"{self.roidb['img_to_last_box'][owner[r]]}]",
                         lambda r: self._image_id(int(owner[r])))

    def dictionary_tables(self) -> None:
        if self.dictionary is None:
            return
        for name_key, index_key, count_key in DICT_TABLES:
            names = self.dictionary[name_key]
            inverse = self.dictionary.get(index_key)
            if not isinstance(inverse, dict) or {str(v): k for k, v in names.items()} != inverse:
                self.report.add(self.dict_file, index_key, f"is missing or not the inverse of {name_key}")
            counts = self.dictionary.get(count_key)
            if not isinstance(counts, dict):
                self.report.add(self.dict_file, count_key, "missing")
                continue
            missing, extra = sorted(set(names) - set(counts)), sorted(set(counts) - set(names))
            if missing or extra:
                self.report.add(self.dict_file, count_key, f"does not count the names of {name_key}: missing "
                                                           f"{missing[:5]}, extra {extra[:5]}")

    def duplicate_ids(self) -> None:
        if self.entries is None:
            return
        ids = np.array([e["image_id"] for e in self.entries], dtype=np.int64)
        _, first_seen = np.unique(ids, return_index=True)
        repeated = np.setdiff1d(np.arange(len(ids)), first_seen)
        self.report.rows(self.image_file, "image_id", repeated, lambda i: "image id listed more than once",
                         lambda i: int(ids[i]))

    def images(self) -> None:
        if self.entries is None or not os.path.isdir(self.img_dir):
            return
        bad: List[int] = []
        reasons: Dict[int, str] = {}
        for position, entry in enumerate(self.entries):
            path = os.path.join(self.img_dir, f"{entry['image_id']}.jpg")
            try:
                with Image.open(path) as img:
                    img.load()
            except (OSError, ValueError, Image.DecompressionBombError) as err:
                bad.append(position)
                reasons[position] = "missing" if not os.path.exists(path) else f"unreadable ({err})"
        self.report.rows(self.img_dir, "img_dir", np.array(bad, dtype=np.int64),
                         lambda i: f"{self.entries[i]['image_id']}.jpg {reasons[i]}",
                         lambda i: self.entries[i]["image_id"])


def check_vg150(img_dir: str, roidb_file: str, dict_file: str, image_file: str, deep: bool = True) -> List[Problem]:
    """Every problem of one set of VG150 files (see the module docstring for what each depth checks)."""
    check = _VG150Check(img_dir, roidb_file, dict_file, image_file)
    if check.files():
        check.roidb_structure(read_all=deep)
        check.image_list()
        check.dictionary_structure()
        check.ranges()
        if deep:
            for step in (check.boxes, check.labels, check.relations, check.dictionary_tables, check.duplicate_ids,
                         check.images):
                step()
    return check.report.problems


def _dataset_names(cfg) -> Iterable[str]:
    return dict.fromkeys([*cfg.DATASETS.TRAIN, *cfg.DATASETS.VAL, *cfg.DATASETS.TEST])


def check_config_datasets(cfg, deep: bool = True, names: Optional[Sequence[str]] = None) -> List[Problem]:
    """Problems of the VG-format datasets named in DATASETS.TRAIN, VAL and TEST (or ``names``), each set of
    files checked once. Datasets of other formats are not checked yet."""
    from .build import dataset_args  # the catalog resolution lives with the other builders

    problems: List[Problem] = []
    seen = set()
    for name in names if names is not None else _dataset_names(cfg):
        try:
            data = dataset_args(cfg, name)
        except (KeyError, OSError, ValueError) as err:
            problems.append(Problem(cfg.DATASETS.DATA_DIR, name, f"cannot be resolved ({err})"))
            continue
        if data["factory"] != "VGDataset":
            continue
        files = tuple(data["args"][key] for key in FILE_KEYS)
        if files not in seen:
            seen.add(files)
            problems.extend(check_vg150(*files, deep=deep))
    return problems


def require_clean(problems: Sequence[Problem], listed: int = 10) -> None:
    """Raise :class:`DatasetCheckError` listing the first ``listed`` problems, if there are any."""
    if not problems:
        return
    lines = "\n  ".join(str(p) for p in problems[:listed])
    more = f"\n  ... and {len(problems) - listed} more" if len(problems) > listed else ""
    raise DatasetCheckError(f"The dataset check found {len(problems)} problem(s):\n  {lines}{more}\n"
                            f"Run tools/check_dataset.py with the same config for the full report "
                            f"(DATASETS.CHECK_AT_START False skips this check).")
