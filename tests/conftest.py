"""Test-wide settings: one torch thread (CI has 2 shared cores) and the shared data folder."""
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[1]


def locate_shared_dir() -> Path:
    """The shared data folder: $SGG_SHARED_DIR, else ``../shared`` next to the repository."""
    return Path(os.environ.get("SGG_SHARED_DIR", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """Real VG150 files and golden fixtures; CI always has them, a user clone may not."""
    path = locate_shared_dir()
    if not path.is_dir():
        message = f"shared data folder not found at {path} (set SGG_SHARED_DIR)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
