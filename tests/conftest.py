"""Test-wide settings: one torch thread (CI has 2 shared cores)."""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory):
    """DATASETS.DATA_DIR holding a 60-image synthetic VG150-format set under ``synthetic_vg/``."""
    from maskrcnn_benchmark.data.datasets.synthetic_vg import make_synthetic_vg

    data_dir = tmp_path_factory.mktemp("datasets")
    make_synthetic_vg(str(data_dir / "synthetic_vg"), num_images=60, seed=0)
    return str(data_dir)
