"""The generator's report: what was generated, the long tail, the true hierarchy and layer purity.

``synthetic_vg_info.json`` schema (``schema_version`` 2); every count covers all
splits unless the key says otherwise, and name -> count maps are ordered by
descending count, then name:

- ``schema_version`` int, ``seed`` int, ``num_images`` int;
- ``config``: every ``SyntheticWorldConfig`` knob -> value;
- ``splits``: {"train", "val", "test"} -> images, as the VG150 loader splits them
  (train excludes val);
- ``num_val_im`` int: the first ``num_val_im`` train-split rows of the h5 form val;
- ``num_boxes``, ``num_relations`` int;
- ``truth_roidb_file``: name of the h5 holding the true predicates (same layout as
  ``VG-SGG-with-attri.h5``);
- ``predicate_counts``: annotated predicate name -> count (what the h5 holds);
- ``predicate_counts_by_split``: split -> (predicate name -> count);
- ``predicate_count_ratio``: max / min of ``predicate_counts``, null when a predicate has count 0;
- ``relation_type_counts``: generating relation type, named by its true predicate
  (fine, genuine coarse or coarse-only) -> count, before coarse annotation;
- ``annotation_kinds_by_split``: split -> counts of ``fine_annotated`` (fine type,
  fine label), ``coarsened`` (fine type annotated with its parent), ``genuine_coarse``
  (genuine-coarse type, always annotated coarse) and ``coarse_only`` relations; the
  truth split differs from the annotated one exactly at the ``coarsened`` relations;
- ``object_counts``: object class name -> boxes;
- ``hierarchy``: ``coarse_to_fine`` (coarse predicate -> fine children, the ground
  truth a predicate tree should recover), ``coarse_only`` (coarse predicates without
  children), ``genuine_coarse`` (parents that are also the true predicate of a
  genuine-coarse type), ``layers`` ({"1": coarse predicates, "2": fine predicates});
- ``layer_purity``: over train images (val excluded), ``images`` and the shares
  ``layer1_pure`` / ``layer2_pure`` / ``mixed`` (an image is layer-k-pure when every
  annotated relation in it has a layer-k predicate), plus ``counts`` of each.
"""
from collections import Counter
from dataclasses import asdict
from typing import Any, Dict, Iterable, List, Optional, Sequence

from .config import SyntheticWorldConfig
from .world import SyntheticWorld
from .writer import TRUTH_ROIDB_FILE, SceneAnnotation

INFO_FILE = "synthetic_vg_info.json"
SCHEMA_VERSION = 2
SPLITS = ("train", "val", "test")
ANNOTATION_KINDS = ("fine_annotated", "coarsened", "genuine_coarse", "coarse_only")


def ordered_counts(names: Iterable[str], counter: Counter) -> Dict[str, int]:
    """Count per name (zeros kept), ordered by descending count then name."""
    return dict(sorted(((name, counter[name]) for name in names), key=lambda item: (-item[1], item[0])))


def count_ratio(counts: Dict[str, int]) -> Optional[float]:
    """max / min of the counts, None when one is zero."""
    values = list(counts.values())
    return None if min(values) == 0 else max(values) / min(values)


def layer_purity(world: SyntheticWorld, scenes: Sequence[SceneAnnotation]) -> Dict[str, Any]:
    """Shares of train images (val excluded) whose annotated relations all lie in layer 1, all in layer 2, or both."""
    coarse_ids = {world.predicate_id(name) for name in world.coarse_predicates()}
    counts = Counter()
    for scene in scenes:
        if scene.split != "train":
            continue
        in_layer1 = [int(predicate) in coarse_ids for predicate in scene.relations[:, 2]]
        counts["layer1_pure" if all(in_layer1) else "layer2_pure" if not any(in_layer1) else "mixed"] += 1
    total = sum(counts.values())
    keys = ("layer1_pure", "layer2_pure", "mixed")
    shares = {key: (counts[key] / total if total else 0.0) for key in keys}
    return {"images": total, **shares, "counts": {key: counts[key] for key in keys}}


def annotation_kinds(world: SyntheticWorld, scenes: Sequence[SceneAnnotation]) -> Dict[str, Dict[str, int]]:
    """Per split, how many relations are fine-annotated, coarsened, genuine coarse and coarse-only."""
    fine_ids = {world.predicate_id(name) for name in world.fine_predicates()}
    genuine_ids = {world.predicate_id(name) for name in world.genuine_coarse_predicates()}
    counts = {split: Counter() for split in SPLITS}
    for scene in scenes:
        for annotated, true in zip(scene.relations[:, 2].tolist(), scene.relation_types.tolist()):
            if true in fine_ids:
                kind = "fine_annotated" if annotated == true else "coarsened"
            else:
                kind = "genuine_coarse" if true in genuine_ids else "coarse_only"
            counts[scene.split][kind] += 1
    return {split: {kind: counts[split][kind] for kind in ANNOTATION_KINDS} for split in SPLITS}


def build_report(world: SyntheticWorld, config: SyntheticWorldConfig, seed: int,
                 scenes: Sequence[SceneAnnotation], num_val_im: int) -> Dict[str, Any]:
    """The report dict written as ``synthetic_vg_info.json`` (schema in the module docstring)."""
    def predicate_counter(selected: Iterable[SceneAnnotation]) -> Counter:
        return Counter(world.predicates[rel[2] - 1] for scene in selected for rel in scene.relations.tolist())

    predicate_counts = ordered_counts(world.predicates, predicate_counter(scenes))
    type_counter = Counter(world.predicates[index - 1] for scene in scenes for index in scene.relation_types.tolist())
    object_counter = Counter(world.object_names[label - 1] for scene in scenes for label in scene.labels.tolist())
    hierarchy = world.coarse_to_fine()
    config_values = asdict(config)
    config_values["aspect_ratios"] = list(config.aspect_ratios)
    return {
        "schema_version": SCHEMA_VERSION,
        "seed": seed,
        "num_images": len(scenes),
        "config": config_values,
        "splits": {split: sum(scene.split == split for scene in scenes) for split in SPLITS},
        "num_val_im": num_val_im,
        "num_boxes": sum(len(scene.labels) for scene in scenes),
        "num_relations": sum(len(scene.relations) for scene in scenes),
        "truth_roidb_file": TRUTH_ROIDB_FILE,
        "predicate_counts": predicate_counts,
        "predicate_counts_by_split": {
            split: {name: predicate_counter(s for s in scenes if s.split == split)[name] for name in predicate_counts}
            for split in SPLITS},
        "predicate_count_ratio": count_ratio(predicate_counts),
        "relation_type_counts": ordered_counts([rule.predicate for rule in world.rules], type_counter),
        "annotation_kinds_by_split": annotation_kinds(world, scenes),
        "object_counts": ordered_counts(world.object_names, object_counter),
        "hierarchy": {
            "coarse_to_fine": {coarse: list(fine) for coarse, fine in hierarchy.items() if fine},
            "coarse_only": [coarse for coarse, fine in hierarchy.items() if not fine],
            "genuine_coarse": list(world.genuine_coarse_predicates()),
            "layers": {"1": list(world.coarse_predicates()), "2": list(world.fine_predicates())},
        },
        "layer_purity": layer_purity(world, scenes),
    }


def format_report(report: Dict[str, Any]) -> str:
    """Human-readable tables of a report: splits, predicates with layer, parent and truth counts,
    annotation kinds per split, purity, objects."""
    hierarchy = report["hierarchy"]
    parent_of = {fine: coarse for coarse, children in hierarchy["coarse_to_fine"].items() for fine in children}
    by_split = report["predicate_counts_by_split"]
    ratio = report["predicate_count_ratio"]
    purity = report["layer_purity"]
    truth = report["relation_type_counts"]
    lines: List[str] = [
        f"seed {report['seed']}, {report['num_images']} images: " + ", ".join(
            f"{split} {count}" for split, count in report["splits"].items())
        + f" (num_val_im {report['num_val_im']}); {report['num_boxes']} boxes, {report['num_relations']} relations",
        "knobs: " + ", ".join(f"{key}={value}" for key, value in report["config"].items()),
        "",
        "annotated relations per predicate (truth: relations whose true predicate it is, all splits)",
        f"{'predicate':<14}{'layer':>6}  {'parent':<8}{'all':>7}{'train':>7}{'val':>6}{'test':>6}{'truth':>7}",
    ]
    for name, count in report["predicate_counts"].items():
        layer = 2 if name in parent_of else 1
        lines.append(f"{name:<14}{layer:>6}  {parent_of.get(name, '-'):<8}{count:>7}"
                     f"{by_split['train'][name]:>7}{by_split['val'][name]:>6}{by_split['test'][name]:>6}"
                     f"{truth.get(name, 0):>7}")
    lines += [
        "max/min predicate count ratio: " + ("n/a (a predicate has no relation)" if ratio is None else f"{ratio:.1f}"),
        "coarse-only predicates: " + (", ".join(hierarchy["coarse_only"]) or "none"),
        "genuine-coarse predicates: " + (", ".join(hierarchy["genuine_coarse"]) or "none"),
    ]
    lines += [f"{split} relations: " + ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in kinds.items())
              for split, kinds in report["annotation_kinds_by_split"].items()]
    lines += [
        f"train images (val excluded), {purity['images']}: layer-1-pure {purity['layer1_pure']:.1%}, "
        f"layer-2-pure {purity['layer2_pure']:.1%}, mixed {purity['mixed']:.1%}",
        "",
        f"{'object':<10}{'boxes':>7}",
    ]
    lines += [f"{name:<10}{count:>7}" for name, count in report["object_counts"].items()]
    return "\n".join(lines)
