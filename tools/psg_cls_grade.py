"""Score a CE7454 submission exactly as the official grader does (mean recall@3 over predicates 6..55).

    python tools/psg_cls_grade.py INPUT_DIR OUTPUT_DIR      # CodaLab layout: INPUT_DIR/res/result.txt,
                                                            # INPUT_DIR/ref/psg_cls_gt.txt -> OUTPUT_DIR/scores.txt
    python tools/psg_cls_grade.py --result result.txt --gt psg_cls_gt.txt

The number of images comes from the GT file (the official grader hard-codes 500). A class
absent from the GT counts 0 (the official val evaluator's guard; the official grader
would give NaN) and is named in the output.
"""
import argparse
import sys

from maskrcnn_benchmark.psg_cls.grader import grade, score_files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="*", metavar="DIR", help="INPUT_DIR OUTPUT_DIR (CodaLab layout)")
    parser.add_argument("--result", default="", metavar="FILE")
    parser.add_argument("--gt", default="", metavar="FILE")
    args = parser.parse_args()
    if len(args.dirs) == 2:
        result, path = grade(*args.dirs)
        print(f"score: {result.score} (written to {path})")
    elif not args.dirs and args.result and args.gt:
        result = score_files(args.result, args.gt)
        print(f"score: {result.score}")
    else:
        parser.error("give INPUT_DIR OUTPUT_DIR, or --result and --gt")
    if result.absent:
        print(f"classes absent from the GT (counted 0): {result.absent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
