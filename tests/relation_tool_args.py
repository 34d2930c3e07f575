"""Command-line overrides that make the synthetic relation configs small enough for tests."""
import os
import socket

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = os.path.join(REPO, "configs", "synthetic_vg")


def config_file(mode: str) -> str:
    return os.path.join(CONFIG_DIR, f"relation_R_18_FPN_{mode}.yaml")


def small_overrides(data_dir: str, output_dir: str, max_iter: int, **extra) -> list:
    """Random frozen detector, 128 px images, few iterations, no validation unless asked."""
    opts = {
        "DATASETS.DATA_DIR": data_dir, "OUTPUT_DIR": output_dir, "MODEL.PRETRAINED_DETECTOR_CKPT": "",
        "INPUT.MIN_SIZE_TRAIN": "(128,)", "INPUT.MAX_SIZE_TRAIN": 171, "INPUT.MIN_SIZE_TEST": 128,
        "INPUT.MAX_SIZE_TEST": 171, "SOLVER.MAX_ITER": max_iter, "SOLVER.CHECKPOINT_PERIOD": max_iter,
        "SOLVER.TO_VAL": False, "SOLVER.IMS_PER_BATCH": 2, "TEST.IMS_PER_BATCH": 2,
        "SOLVER.WARMUP_ITERS": 0, "MODEL.RPN.POST_NMS_TOP_N_TEST": 50, "MODEL.RPN.FPN_POST_NMS_TOP_N_TEST": 50,
        "MODEL.ROI_HEADS.DETECTIONS_PER_IMG": 10,
    }
    opts.update(extra)
    return [str(item) for pair in opts.items() for item in pair]


def free_port() -> int:
    """A TCP port nobody listens on (for torchrun's rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
